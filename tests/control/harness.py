"""A real runtime serving its control socket in this process, and raw clients to talk to it.

Sockets live in short directories under /tmp: a pytest tmp_path can exceed the 107 bytes a
unix socket path may have.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schnitzel import Runtime, RuntimeControl
from schnitzel.control.server import ControlServer
from tests.runtime.harness import assert_counts_add_up, graph_from

ENDLESS = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 500.0}}
  - {id: mid, kind: transform, plugin: passthrough, inbox: {max: 64}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: mid}
  - {from: mid, to: out}
"""
GUARD_S = 60.0
"""Hang guard of every wait (never a timing assertion)."""


@contextmanager
def socket_dir() -> Iterator[Path]:
    """A fresh private directory with a short path, removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="sz-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Served:
    """A running runtime and its control server."""

    runtime: Runtime
    control: RuntimeControl
    server: ControlServer
    path: Path


@asynccontextmanager
async def serving(
    tmp_path: Path,
    body: str = ENDLESS,
    control_class: type[RuntimeControl] = RuntimeControl,
    **server_options: Any,
) -> AsyncIterator[Served]:
    """Run `body` with a control server; on exit stop it, and check that every packet is
    accounted for and the socket file is gone."""
    graph = graph_from(tmp_path, body)
    runtime = Runtime(graph, state_dir=tmp_path / "state")
    control = control_class(runtime)
    with socket_dir() as directory:
        path = directory / "control.sock"
        server = ControlServer(control, path, **server_options)
        await server.start()
        task = asyncio.create_task(runtime.run())
        try:
            yield Served(runtime, control, server, path)
            assert not task.done(), "the runtime stopped while being steered"
        finally:
            await server.close()
            runtime.request_stop("signal", "test over")
            report = await asyncio.wait_for(task, GUARD_S)
        assert not path.exists()
    assert_counts_add_up(report, graph)


class RawClient:
    """Bytes in, reply lines out: no protocol help, so tests can send anything."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, path: Path) -> RawClient:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=64 << 20)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self) -> dict[str, Any]:
        """The next reply line (hang guard: GUARD_S)."""
        line = await asyncio.wait_for(self.reader.readline(), GUARD_S)
        assert line.endswith(b"\n"), f"the connection ended without a reply: {line!r}"
        reply = json.loads(line)
        assert reply["v"] == 1 and isinstance(reply["ok"], bool)
        return reply

    async def ask(self, cmd: str, **args: Any) -> dict[str, Any]:
        await self.send(json.dumps({"id": cmd, "cmd": cmd, "args": args}).encode() + b"\n")
        return await self.reply()

    async def rest(self) -> bytes:
        """Everything until the server closes its end (hang guard: GUARD_S)."""
        try:
            return await asyncio.wait_for(self.reader.read(), GUARD_S)
        except ConnectionResetError:
            return b""

    async def close(self) -> None:
        self.writer.close()
        with suppress(ConnectionError):
            await self.writer.wait_closed()


async def status_still_answers(path: Path) -> dict[str, Any]:
    """A fresh connection gets the live status: the runtime was not harmed."""
    client = await RawClient.connect(path)
    try:
        reply = await client.ask("status")
    finally:
        await client.close()
    assert reply["ok"], reply
    assert reply["result"]["status"] == "running"
    return reply["result"]
