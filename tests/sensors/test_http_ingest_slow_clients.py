"""`http_ingest` against slow clients (slowloris): a client that never finishes its headers
or its body is cut off after `request_timeout_s`, while an honest client still gets its 202
and nothing accepted is lost. Real sockets against the real server in a real runtime."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from schnitzel import Runtime, RuntimeControl
from schnitzel_plugins.sensors.http_ingest import HttpIngest
from tests.certificates import self_signed_certificate, trusting
from tests.runtime import plugins
from tests.runtime.harness import assert_counts_add_up
from tests.sensors.test_http_ingest import (
    GUARD_S,
    free_port,
    ingest_graph,
    steer,
    until,
    until_listening,
)

HEADER_ATTACKERS = 40
BODY_ATTACKERS = 5


async def _connect(port: int, first: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(first)
    await writer.drain()
    return reader, writer


async def _until_cut_off(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection (guarded against a hang)."""
    received = b""
    deadline = time.monotonic() + GUARD_S
    with contextlib.suppress(ConnectionError):  # a reset is a close too
        while chunk := await asyncio.wait_for(reader.read(65536), deadline - time.monotonic()):
            received += chunk
    return received


async def _trickle(writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
    """Slowloris proper: one more header line now and then, never the blank line, until the
    server closes the connection."""
    for n in itertools.count():
        try:
            writer.write(f"X-Slow-{n}: still here\r\n".encode())
            await writer.drain()
            # waits for the server between lines: a close (b"") ends the loop at once
            await asyncio.wait_for(reader.read(65536), 0.1)
        except TimeoutError:
            continue  # still open: the next line
        except ConnectionError:
            return  # closed while writing: cut off
        await _until_cut_off(reader)
        return


def test_slow_clients_are_cut_off_while_an_honest_client_gets_its_202(tmp_path: Path) -> None:
    port = free_port()
    graph = ingest_graph(tmp_path, port, "Recorder", source_extra=", request_timeout_s: 0.5")
    head = f"POST /ingest HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
    partial_body = (
        head + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n" + b'{"t": 1'
    )

    async def steps(runtime: Runtime, plugin: HttpIngest) -> None:
        headers = [await _connect(port, head) for _ in range(HEADER_ATTACKERS)]
        bodies = [await _connect(port, partial_body) for _ in range(BODY_ATTACKERS)]
        trickler = await _connect(port, head)
        trickling = asyncio.create_task(_trickle(trickler[1], trickler[0]))
        async with httpx.AsyncClient(timeout=GUARD_S) as client:
            answer = await client.post(f"http://127.0.0.1:{port}/ingest", json={"t": 21.5})
        assert answer.status_code == 202, answer.text
        for reader, _writer in headers:
            assert await _until_cut_off(reader) == b""  # closed without an answer
        for reader, _writer in bodies:
            assert b" 408 " in (await _until_cut_off(reader)).split(b"\r\n")[0]
        await asyncio.wait_for(trickling, GUARD_S)
        for _reader, writer in (*headers, *bodies, trickler):
            writer.close()

    report = steer(graph, tmp_path, steps)
    assert [p.payload for p in plugins.RECORDS["out"]] == [{"t": 21.5}]
    assert report["totals"]["delivered"] == 1
    answers = report["nodes"]["src"]["plugin_stats"]["answers"]
    assert answers == {"202": 1, "408": BODY_ATTACKERS}, answers


@pytest.mark.parametrize(
    ("option", "bad_values"),
    [
        ("request_timeout_s", ("0", "-1", "7200", "soon")),
        ("max_connections", ("0", "-1", "100000", "many")),
    ],
)
def test_a_bad_limit_is_a_validation_problem_naming_it(
    option: str, bad_values: tuple[str, ...]
) -> None:
    from schnitzel.validate.validator import validate_text

    for bad in bad_values:
        text = f"""version: 2
nodes:
  - {{id: src, kind: source, plugin: http_ingest, config: {{{option}: {bad}}}}}
  - {{id: out, kind: sink, plugin: "null"}}
edges:
  - {{from: src, to: out}}
"""
        result = validate_text(text, source="graph.yaml")
        messages = " ".join(p.render() for p in result.report.problems)
        assert option in messages, (bad, messages)


HANDSHAKE_GUARD_S = 20.0
"""Far beyond the 0.5 s allowed, far below the 60 s an event loop waits for a TLS handshake
by default: a connection still open after this was not bounded by `request_timeout_s`."""


async def _closed_within(reader: asyncio.StreamReader, guard_s: float) -> bytes:
    with contextlib.suppress(ConnectionError):
        return await asyncio.wait_for(reader.read(), guard_s)
    return b""


def test_a_tls_client_that_never_finishes_its_handshake_or_its_shutdown_is_cut_off_too(
    tmp_path: Path,
) -> None:
    """Under TLS the server's HTTP side only sees a connection once its handshake is done: a
    client that connects and sends nothing, or half a ClientHello, is bounded by the TLS
    handshake timeout, which must be `request_timeout_s` as well (not the loop's 60 s)."""
    self_signed_certificate(tmp_path)
    port = free_port()
    head = f"POST /ingest HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
    graph = ingest_graph(
        tmp_path,
        port,
        "Recorder",
        source_extra=", request_timeout_s: 0.5, tls_cert: cert.pem, tls_key: key.pem",
    )

    def never_answers_close_notify() -> bytes:
        """Handshake, half the headers, then only raw TCP reads: the server's close_notify
        is never answered (the TLS shutdown a cut-off connection waits for)."""
        verify = trusting(tmp_path)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = verify.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        with socket.create_connection(("127.0.0.1", port), timeout=GUARD_S) as raw:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    raw.sendall(outgoing.read())
                    incoming.write(raw.recv(65536))
            tls.write(head)
            raw.sendall(outgoing.read())
            raw.settimeout(HANDSHAKE_GUARD_S)
            received = b""
            while chunk := raw.recv(65536):
                received += chunk
            return received

    async def steps(runtime: Runtime, plugin: HttpIngest) -> None:
        unanswered = asyncio.create_task(asyncio.to_thread(never_answers_close_notify))
        silent = await _connect(port, b"")
        half_hello = await _connect(port, b"\x16\x03\x01\x02\x00\x01")  # record + hello start
        verify = trusting(tmp_path)
        async with httpx.AsyncClient(timeout=GUARD_S, verify=verify) as client:
            answer = await client.post(f"https://127.0.0.1:{port}/ingest", json={"t": 1})
        assert answer.status_code == 202, answer.text
        for reader, writer in (silent, half_hello):
            assert await _closed_within(reader, HANDSHAKE_GUARD_S) == b""
            writer.close()
        await asyncio.wait_for(unanswered, GUARD_S)  # a socket.timeout there: not closed

    steer(graph, tmp_path, steps)
    assert [p.payload for p in plugins.RECORDS["out"]] == [{"t": 1}]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_connections_over_max_connections_are_refused_while_an_honest_client_is_served(
    tmp_path: Path, loop: str
) -> None:
    """No cap on open connections: idle or slow clients could each hold a file descriptor
    for `request_timeout_s`, as many as they liked. Over `max_connections` one more is
    answered 503 with Retry-After and closed; once a place is free an honest client gets its
    202 and its record is delivered. On both loops (`schnitzel run` takes uvloop where it
    is installed; its transports are not asyncio's classes)."""
    port = free_port()
    graph = ingest_graph(tmp_path, port, "Recorder", source_extra=", max_connections: 3")
    head = f"POST /ingest HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()

    async def steps(runtime: Runtime, plugin: HttpIngest) -> None:
        held = [await _connect(port, head) for _ in range(3)]
        await until(lambda: plugin.stats()["connections"] == 3, "three connections held")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await _until_cut_off(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert b"\r\nRetry-After: 1\r\n" in answer, answer
        held.pop()[1].close()
        await until(lambda: plugin.stats()["connections"] == 2, "a place freed")
        async with httpx.AsyncClient(timeout=GUARD_S) as client:
            accepted = await client.post(f"http://127.0.0.1:{port}/ingest", json={"t": 1})
        assert accepted.status_code == 202, accepted.text
        for _reader, held_writer in held:
            held_writer.close()

    with _event_loops(loop):
        report = steer(graph, tmp_path, steps)
    assert [p.payload for p in plugins.RECORDS["out"]] == [{"t": 1}]
    assert report["totals"]["delivered"] == 1
    stats = report["nodes"]["src"]["plugin_stats"]
    assert stats["connections_refused"] == 1, stats
    assert stats["answers"] == {"202": 1}, stats


def _served_in_tls(tmp_path: Path) -> tuple[str, ssl.SSLContext]:
    """The source config that serves https with a certificate made in `tmp_path`, and a
    client's context that trusts it."""
    self_signed_certificate(tmp_path)
    return ", tls_cert: cert.pem, tls_key: key.pem", trusting(tmp_path)


def _answer_parts(answer: bytes) -> tuple[str, dict[str, str], bytes]:
    """An HTTP/1.1 answer read to its close: status line, headers (lower-case names), body."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return status, {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_refused_connection_is_answered_a_whole_json_503(tmp_path: Path, loop: str) -> None:
    """The refusal said `Content-Length: 29` over a 28-byte text body: a client reading it
    (httpx, curl, http.client) saw an answer cut short, an error, instead of a 503 to retry
    after; and docs/sensors.md promises every answer a JSON body saying why in `error`.
    (Under TLS a refused connection is closed before its handshake: see
    `test_connections_in_their_tls_handshake_count_against_max_connections`.)"""
    port = free_port()
    extra = ", max_connections: 1, retry_after_s: 2"
    graph = ingest_graph(tmp_path, port, "Recorder", source_extra=extra)

    async def steps(runtime: Runtime, plugin: HttpIngest) -> None:
        _held_reader, held = await asyncio.open_connection("127.0.0.1", port)
        await until(lambda: plugin.stats()["connections"] == 1, "one connection held")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await _until_cut_off(reader)
        writer.close()
        held.close()
        status, headers, body = _answer_parts(answer)
        assert status == "HTTP/1.1 503 Service Unavailable", answer
        assert int(headers["content-length"]) == len(body), answer
        assert headers["content-type"] == "application/json; charset=utf-8", answer
        assert headers["retry-after"] == "2", answer
        assert "max_connections" in json.loads(body)["error"], answer

    with _event_loops(loop):
        report = steer(graph, tmp_path, steps)
    assert report["nodes"]["src"]["plugin_stats"]["connections_refused"] == 1


async def _closed_before_its_handshake(port: int, verify: ssl.SSLContext) -> None:
    """A TLS client's connection is closed by the server before its handshake ends (not
    left waiting: a timeout is a failure)."""
    try:
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=verify), GUARD_S)
    except TimeoutError:
        raise AssertionError("the handshake was left waiting, not refused") from None
    except OSError:  # a reset, or the end of the stream in the handshake
        return
    raise AssertionError("the handshake succeeded: the connection was not refused")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_connections_in_their_tls_handshake_count_against_max_connections(
    tmp_path: Path, loop: str
) -> None:
    """Under TLS a connection was counted only once its handshake was done: a client could
    hold as many half-done handshakes as it liked, each a file descriptor for
    `request_timeout_s`. A connection counts from its accept now. One over the cap is closed
    at once, before its handshake: no 503 can be sent before the handshake, and a handshake
    for a client about to be refused costs what the cap is there to bound. Once places are
    free an honest TLS client gets its 202."""
    port = free_port()
    tls_extra, verify = _served_in_tls(tmp_path)
    graph = ingest_graph(
        tmp_path, port, "Recorder", source_extra=", max_connections: 2" + tls_extra
    )

    async def steps(runtime: Runtime, plugin: HttpIngest) -> None:
        silent = [await _connect(port, b"") for _ in range(2)]  # no ClientHello, ever
        await until(lambda: plugin.stats()["connections"] == 2, "two handshakes counted")
        await _closed_before_its_handshake(port, verify)
        assert plugin.stats()["connections_refused"] == 1
        for _reader, writer in silent:
            writer.close()
        await until(lambda: plugin.stats()["connections"] == 0, "their places freed")
        async with httpx.AsyncClient(timeout=GUARD_S, verify=verify) as client:
            accepted = await client.post(f"https://127.0.0.1:{port}/ingest", json={"t": 1})
        assert accepted.status_code == 202, accepted.text

    with _event_loops(loop):
        report = steer(graph, tmp_path, steps)
    assert [p.payload for p in plugins.RECORDS["out"]] == [{"t": 1}]
    stats = report["nodes"]["src"]["plugin_stats"]
    assert stats["connections_refused"] == 1, stats
    assert stats["answers"] == {"202": 1}, stats


CHURN = 400
"""Connections of each way of ending: a count leaking one place per connection refuses
everyone after `max_connections` of them, so a few hundred of each show it."""

HELD_AT_ONCE = 40
"""Connections left to the server's timers at once, more than `max_connections`: the rest
of each round is refused."""


def _hang_up(port: int, way: str, tls: ssl.SSLContext | None) -> None:
    """One connection, ended by the client: `way` says how."""
    ask = f"GET /elsewhere HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    client = socket.create_connection(("127.0.0.1", port), timeout=GUARD_S)
    try:
        if way == "garbage":  # not HTTP: a 400; under TLS a failed handshake
            client.sendall(b"\x16\x03\x01\x00\x05hello" * 4)
        elif tls is not None:
            client = tls.wrap_socket(client, server_hostname="127.0.0.1")
        if way in ("request", "answered"):
            client.sendall(ask.encode())
        if way in ("answered", "garbage"):
            with contextlib.suppress(OSError):  # a reset (refused with the request unread)
                while client.recv(65536):  # until the server closes
                    pass
        if way == "rst":
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        client.close()


def _left_to_the_server(port: int, first: bytes, tls: ssl.SSLContext | None) -> None:
    """`HELD_AT_ONCE` connections at once, each sending `first` and waiting for the server to
    close it (after request_timeout_s: headers never finished, an idle keep-alive, under TLS
    a handshake never begun; or at once: refused)."""
    clients = []
    for _ in range(HELD_AT_ONCE):
        client = socket.create_connection(("127.0.0.1", port), timeout=GUARD_S)
        if tls is not None and first:
            try:
                client = tls.wrap_socket(client, server_hostname="127.0.0.1")
            except OSError:  # refused past the cap: closed before its handshake (and here)
                continue
        clients.append(client)
    for client in clients:
        with client, contextlib.suppress(OSError):
            client.sendall(first)
            while client.recv(65536):
                pass


def _churn(port: int, tls: ssl.SSLContext | None) -> None:
    for _ in range(CHURN):
        for way in ("fin", "rst", "request", "answered", "garbage"):
            _hang_up(port, way, tls)
    idle = f"GET /elsewhere HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    for first in (b"", b"GET /elsewhere HTTP/1.1\r\n", idle):
        _left_to_the_server(port, first, tls)


@pytest.mark.parametrize(
    ("loop", "tls"),
    [
        ("asyncio", False),
        ("uvloop", False),
        pytest.param("asyncio", True, marks=pytest.mark.slow),  # a handshake each: ~10 s
        pytest.param("uvloop", True, marks=pytest.mark.slow),
    ],
)
def test_connections_ended_every_way_free_their_places(
    tmp_path: Path, loop: str, tls: bool
) -> None:
    """A place not freed when a connection ends (a client's FIN or reset, a failed TLS
    handshake, a cut-off or an idle keep-alive ended by the server, a refusal) would leak:
    after `max_connections` of them every client is refused. Thousands of connections
    ended each way, then none is counted open and an honest client gets its 202."""
    port = free_port()
    extra = ", max_connections: 4, request_timeout_s: 0.2"
    tls_extra, verify = _served_in_tls(tmp_path) if tls else ("", None)
    extra += tls_extra
    graph = ingest_graph(tmp_path, port, "Recorder", source_extra=extra)

    async def steps(runtime: Runtime, plugin: HttpIngest) -> None:
        await asyncio.to_thread(_churn, port, verify)
        await until(lambda: plugin.stats()["connections"] == 0, "every place freed")
        async with httpx.AsyncClient(timeout=GUARD_S, verify=verify or True) as client:
            scheme = "https" if tls else "http"
            accepted = await client.post(f"{scheme}://127.0.0.1:{port}/ingest", json={"t": 1})
        assert accepted.status_code == 202, accepted.text

    with _event_loops(loop):
        report = steer(graph, tmp_path, steps)
    assert [p.payload for p in plugins.RECORDS["out"]] == [{"t": 1}]
    assert report["nodes"]["src"]["plugin_stats"]["connections_refused"] > 0


@contextlib.contextmanager
def _event_loops(loop: str) -> Iterator[None]:
    """`asyncio.run` makes `loop`'s event loops meanwhile (asyncio's or uvloop's)."""
    if loop != "uvloop":
        yield
        return
    import uvloop

    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(previous)


def test_a_body_still_arriving_when_the_run_stops_does_not_hold_up_the_stop(
    tmp_path: Path,
) -> None:
    """aiohttp's shutdown waited up to 60 s (AppRunner's shutdown_timeout) for a handler
    still reading a slow body: the node's close() outran the runtime's bound on it, so the
    stop counted an error ("close() did not return within 5 s") and the run ended degraded,
    the connection still open. The handler is now cancelled soon after the stop."""
    port = free_port()
    graph = ingest_graph(tmp_path, port, "Recorder")
    head = (
        f"POST /ingest HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nExpect: 100-continue\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    ).encode()

    kept: list[asyncio.StreamWriter] = []  # open through the stop

    async def steps(runtime: Runtime, plugin: HttpIngest) -> None:
        reader, writer = await _connect(port, head)
        kept.append(writer)
        # 100 Continue: the handler is reading the body
        assert b" 100 " in await asyncio.wait_for(reader.readline(), GUARD_S)
        writer.write(b'{"t": ')
        await writer.drain()

    report = steer(graph, tmp_path, steps)
    source = report["nodes"]["src"]
    assert source["errors"] == 0, source["recent_errors"]
    assert report["status"] == "ok", report
    assert plugins.RECORDS["out"] == []


async def _until_not_listening(port: int) -> None:
    """Until the server's socket is closed: the stop has begun to close the server."""
    deadline = time.monotonic() + GUARD_S
    while True:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return
        writer.close()
        assert time.monotonic() < deadline, f"port {port} still listens"
        await asyncio.sleep(0.01)


def test_a_body_that_finishes_arriving_during_the_stop_is_answered_a_json_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body still arriving when the run stopped, finished once the stop closed the
    server: aiohttp's shutdown dropped the rest of it, the handler waited until it was cut
    off, and the client saw its connection closed without an answer. Nothing was lost (no
    202), but a client expects an answer: a JSON 503 with Retry-After, as a request that
    came during the stop gets."""
    from schnitzel_plugins.sensors import http_ingest

    # the stop waits this long for a body still arriving: the test's timing is not a race
    monkeypatch.setattr(http_ingest, "SHUTDOWN_S", GUARD_S)
    port = free_port()
    graph = ingest_graph(tmp_path, port, "Recorder", source_extra=", retry_after_s: 3")
    body = b'{"t": 1}'.ljust(100)  # JSON, spaces after it
    head = (
        f"POST /ingest HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nExpect: 100-continue\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()

    async def scenario() -> tuple[bytes, dict[str, Any]]:
        runtime = Runtime(graph, state_dir=tmp_path / "state")
        task = asyncio.create_task(runtime.run())
        await until(lambda: "src" in runtime.nodes, "the runtime built its nodes")
        await until_listening(port)
        reader, writer = await _connect(port, head)
        # 100 Continue: the handler is reading the body
        assert b" 100 " in await asyncio.wait_for(reader.readline(), GUARD_S)
        assert await asyncio.wait_for(reader.readline(), GUARD_S) == b"\r\n"
        writer.write(body[:10])
        await writer.drain()
        RuntimeControl(runtime).stop()
        await _until_not_listening(port)
        writer.write(body[10:])
        await writer.drain()
        answer = await _until_cut_off(reader)
        writer.close()
        return answer, dict(await asyncio.wait_for(task, GUARD_S))

    answer, report = asyncio.run(scenario())
    status, headers, content = _answer_parts(answer)
    assert status == "HTTP/1.1 503 Service Unavailable", answer
    assert headers["retry-after"] == "3", answer
    assert headers["content-type"] == "application/json; charset=utf-8", answer
    assert "stopping" in json.loads(content)["error"], answer
    source = report["nodes"]["src"]
    assert source["errors"] == 0, source["recent_errors"]
    assert source["plugin_stats"]["answers"] == {"503": 1}, source["plugin_stats"]
    assert plugins.RECORDS["out"] == []
    assert_counts_add_up(report, graph)
