"""Hostile and broken clients against a running runtime's control socket: every bad request
gets an error reply and nothing else; after each, the runtime still runs, still answers a
fresh `status`, and in the end every packet is accounted for (checked by `serving`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
from pathlib import Path
from typing import Any

import pytest

from schnitzel.control.protocol import MAX_REQUEST_BYTES
from tests.control.harness import (
    GUARD_S,
    RawClient,
    Served,
    serving,
    status_still_answers,
)
from tests.waits import until

BAD_LINES: list[tuple[bytes, str]] = [
    (b"hello", "bad-request"),
    (b"\x00\x01\x02\xff\xfe", "bad-request"),
    (b'{"cmd": "status"', "bad-request"),
    (b"[]", "bad-request"),
    (b"42", "bad-request"),
    (b'{"cmd": "throttle", "args": {"node": "src", "rate_hz": NaN}}', "bad-request"),
    (b'{"cmd": "throttle", "args": {"node": "src", "rate_hz": Infinity}}', "bad-request"),
    (b'{"cmd": "events", "args": {"after": ' + b"7" * 6000 + b"}}", "bad-request"),
    (b"[" * 200_000 + b"]" * 200_000, "bad-request"),
    (b'{"cmd": "swap", "args": {"node": "mid", "plugin": "sample", "config": '
     + b'{"a": ' * 50 + b"1" + b"}" * 50 + b"}}", "bad-request"),
    (b'{"cmd": 5}', "bad-request"),
    (b'{"cmd": "pause", "args": {"node": 5}}', "bad-request"),
    (b'{"cmd": "pause", "args": {}}', "bad-request"),
    (b'{"cmd": "events", "args": {"limit": "10"}}', "bad-request"),
    (b'{"cmd": "events", "args": {"limit": 0}}', "bad-request"),
    (b'{"cmd": "throttle", "args": {"node": "src", "sample_every": true}}', "bad-request"),
    (b'{"cmd": "throttle", "args": {"node": "src"}}', "bad-request"),
    (b'{"cmd": "throttle", "args": {"node": "src", "concurrency": null}}', "bad-request"),
    (b'{"cmd": "stop", "args": {"force": "yes"}}', "bad-request"),
    (b'{"cmd": "swap", "args": {"node": "mid", "plugin": "sample", "config": [1]}}',
     "bad-request"),
    (b'{"cmd": "pause", "args": {"node": "src", "sudo": true}}', "bad-request"),
    (b'{"cmd": "status", "token": "x"}', "bad-request"),
    (b'{"cmd": "status", "cmd": "stop"}', "bad-request"),
    (b'{"cmd": "rm -rf /"}', "unknown-command"),
    (b'{"cmd": "__class__"}', "unknown-command"),
    (b'{"cmd": "' + b"x" * 5000 + b'"}', "bad-request"),
]  # fmt: skip


def scenario(tmp_path: Path, steps: Any, **options: Any) -> None:
    async def main() -> None:
        async with serving(tmp_path, **options) as served:
            await steps(served)
            await status_still_answers(served.path)

    asyncio.run(main())


@pytest.mark.parametrize(("line", "code"), BAD_LINES, ids=range(len(BAD_LINES)))
def test_a_bad_request_gets_an_error_reply_and_the_connection_goes_on(
    tmp_path: Path, line: bytes, code: str
) -> None:
    async def steps(served: Served) -> None:
        client = await RawClient.connect(served.path)
        await client.send(line + b"\n")
        reply = await client.reply()
        assert reply["ok"] is False and reply["error"]["code"] == code, reply
        assert reply["error"]["message"]
        assert (await client.ask("status"))["ok"]  # framing survived: same connection
        await client.close()
        assert served.runtime.nodes["src"].paused is False
        assert served.control.audit() == []  # nothing bad reached the control API

    scenario(tmp_path, steps)


def test_random_garbage_is_answered_line_by_line(tmp_path: Path) -> None:
    chooser = random.Random(6)
    lines = [bytes(chooser.randrange(256) for _ in range(chooser.randrange(1, 400)))
             for _ in range(300)]  # fmt: skip
    lines = [line.replace(b"\n", b" ") for line in lines if line.strip()]

    async def steps(served: Served) -> None:
        client = await RawClient.connect(served.path)
        await client.send(b"\n".join(lines) + b"\n")
        for _ in lines:
            reply = await client.reply()
            assert reply["ok"] is False and reply["error"]["code"] == "bad-request"
        assert (await client.ask("status"))["ok"]
        await client.close()

    scenario(tmp_path, steps)


def test_pipelined_requests_are_answered_in_order(tmp_path: Path) -> None:
    async def steps(served: Served) -> None:
        client = await RawClient.connect(served.path)
        batch = [{"id": n, "cmd": "events" if n % 2 else "hello"} for n in range(20)]
        await client.send(b"\n\n".join(json.dumps(r).encode() for r in batch) + b"\n")
        replies = [await client.reply() for _ in batch]
        assert [r["id"] for r in replies] == list(range(20))
        assert all(r["ok"] for r in replies)
        await client.close()

    scenario(tmp_path, steps)


@pytest.mark.parametrize("newline", [True, False], ids=["one-long-line", "never-ending-line"])
def test_an_oversized_line_is_too_large_and_ends_the_connection(
    tmp_path: Path, newline: bool
) -> None:
    async def steps(served: Served) -> None:
        body = b'{"cmd": "status", "why": "' + b"x" * MAX_REQUEST_BYTES + b'"}'
        data = body + b"\n" + b'{"cmd": "stop"}\n' if newline else body + b"x" * 100_000
        received = await asyncio.to_thread(_send_all_then_read_to_end, served.path, data)
        assert received.count(b"\n") == 1  # one reply, then the end of the connection
        reply = json.loads(received)
        assert reply["error"]["code"] == "too-large" and reply["id"] is None

    scenario(tmp_path, steps)


def _send_all_then_read_to_end(path: Path, data: bytes) -> bytes:
    """A blocking client: what the kernel received stays readable when our sending fails
    because the server closed (an asyncio stream would drop it on the write error)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(GUARD_S)
        sock.connect(str(path))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:  # the server closed with our bytes unread
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_request_just_under_the_limit_is_served(tmp_path: Path) -> None:
    async def steps(served: Served) -> None:
        client = await RawClient.connect(served.path)
        head = b'{"id": 1, "cmd": "status", "args": {}, "why": "'
        why = b"y" * (MAX_REQUEST_BYTES - len(head) - 2)
        await client.send(head + why + b'"}\n')
        reply = await client.reply()
        assert reply["error"]["code"] == "bad-request"  # why is limited to 4096 characters
        assert "why" in reply["error"]["message"] and reply["id"] == 1
        await client.close()

    scenario(tmp_path, steps)


def test_forty_connections_at_once_the_extra_ones_are_told_busy(tmp_path: Path) -> None:
    async def steps(served: Served) -> None:
        clients = [await RawClient.connect(served.path) for _ in range(40)]
        replies = [asyncio.create_task(client.reply()) for client in clients]
        await until(lambda: served.server.connections == 32)
        await until(lambda: sum(task.done() for task in replies) == 8)  # told at once
        for client, task in zip(clients, replies, strict=True):
            if task.done():
                assert task.result()["error"]["code"] == "busy"
                assert "32 control connections" in task.result()["error"]["message"]
                assert await client.rest() == b""
            else:
                await client.send(b'{"cmd": "hello"}\n')
                assert (await task)["ok"]
        for client in clients:
            await client.close()
        await until(lambda: served.server.connections == 0)

    scenario(tmp_path, steps)


def test_a_slow_sender_is_cut_off_and_others_are_served_meanwhile(tmp_path: Path) -> None:
    async def steps(served: Served) -> None:
        slow = await RawClient.connect(served.path)
        await slow.send(b'{"cmd": "sta')
        await status_still_answers(served.path)
        reply = await slow.reply()
        assert reply["error"]["code"] == "bad-request"
        assert "did not arrive whole" in reply["error"]["message"]
        assert await slow.rest() == b""
        await slow.close()

    scenario(tmp_path, steps, request_timeout_s=1.0)


def test_an_idle_connection_is_closed(tmp_path: Path) -> None:
    async def steps(served: Served) -> None:
        idle = await RawClient.connect(served.path)
        assert (await idle.ask("hello"))["ok"]
        assert await idle.rest() == b""  # closed without a word
        await idle.close()
        await until(lambda: served.server.connections == 0)

    scenario(tmp_path, steps, idle_timeout_s=1.0)


def test_a_client_that_leaves_mid_request_harms_nothing(tmp_path: Path) -> None:
    async def steps(served: Served) -> None:
        for partial in (b'{"cmd": "pau', b'{"cmd": "pause", "args": {"node": "src"}}'):
            client = await RawClient.connect(served.path)
            await until(lambda: served.server.connections == 1)
            await client.send(partial)  # no newline: never a request
            await client.close()
            await until(lambda: served.server.connections == 0)  # read to its end
        assert served.runtime.nodes["src"].paused is False
        leaver = await RawClient.connect(served.path)  # a whole request, reply never read
        await leaver.send(b'{"cmd": "pause", "args": {"node": "src"}}\n')
        await leaver.close()
        await until(lambda: served.runtime.nodes["src"].paused)  # asked for: it is done
        await until(lambda: served.server.connections == 0)
        client = await RawClient.connect(served.path)
        assert (await client.ask("resume", node="src"))["ok"]
        await client.close()

    scenario(tmp_path, steps)


def test_many_clients_hammering_at_once_all_get_their_answers(tmp_path: Path) -> None:
    async def one(served: Served, n: int) -> list[bool]:
        client = await RawClient.connect(served.path)
        answers = []
        for cmd in ("status", "nodes", "events", "bogus", "describe"):
            answers.append((await client.ask(cmd))["ok"])
        await client.close()
        return answers

    async def steps(served: Served) -> None:
        results = await asyncio.gather(*(one(served, n) for n in range(30)))
        assert all(r == [True, True, True, False, True] for r in results)

    scenario(tmp_path, steps)
