"""`AsyncControlClient`: the asyncio client of the control socket, for an attached console.

Apart from the blocking `ControlClient` so that `schnitzel ctl` never imports asyncio. The
checks before connecting, the errors and the request encoding are the blocking client's
(`client.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

from schnitzel.control.client import (
    MAX_REPLY_BYTES,
    ControlDisconnected,
    ControlTimeout,
    ControlUnreachable,
    ControlUntrusted,
    _check_before_connect,
    _check_peer,
    _Client,
    _connect_error,
    _result,
    _ssh_connection,
)
from schnitzel.control.protocol import ProtocolError, decode_reply, encode_request

__all__ = ["AsyncControlClient"]


class AsyncControlClient(_Client):
    """An asyncio client: requests from many tasks are sent one at a time, in order."""

    default_via = "attach"

    def __init__(self, path: Path, **options: Any) -> None:
        super().__init__(path, **options)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        """True while a connection is open (it may still turn out to be broken)."""
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self) -> None:
        """Connect to the runtime; ControlUnreachable when it cannot be."""
        if self.connected:
            return
        _check_before_connect(self.path)
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                reader, writer = await asyncio.open_unix_connection(
                    os.fsencode(str(self.path)),  # type: ignore[arg-type]  # bytes: the
                    limit=MAX_REPLY_BYTES,  # socket accepts any path; the stubs say str only
                )
        except OSError as exc:  # TimeoutError included
            raise ControlUnreachable(self.path, _connect_error(exc, self.path)) from None
        try:
            _check_peer(self.path, writer.get_extra_info("socket"))
        except ControlUntrusted:
            writer.close()
            raise
        self._reader, self._writer = reader, writer

    async def close(self) -> None:
        """Close the connection (the runtime goes on)."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()

    async def request(self, cmd: str, *, why: str = "", **args: Any) -> Any:
        """Send one command and return its result (see ControlClient.request). Connects
        first when not connected."""
        async with self._lock:
            await self.connect()
            reader, writer = self._reader, self._writer
            assert reader is not None and writer is not None
            request_id = next(self._ids)
            line = encode_request(
                cmd, args, request_id=request_id, why=why, via=self.via, ssh=_ssh_connection()
            )
            try:
                async with asyncio.timeout(self.timeout_s):
                    writer.write(line)
                    await writer.drain()
                    raw = await reader.readuntil(b"\n")
                reply = decode_reply(raw)
            except TimeoutError:
                await self.close()
                raise ControlTimeout(
                    self.path, f"no reply to {cmd} within {self.timeout_s:g} s"
                ) from None
            except asyncio.IncompleteReadError:
                await self.close()
                raise ControlDisconnected(
                    self.path, "the runtime closed the connection (did it stop?)"
                ) from None
            except (asyncio.LimitOverrunError, ValueError, ProtocolError) as exc:
                await self.close()
                raise ControlDisconnected(self.path, f"the reply was unusable: {exc}") from None
            except OSError as exc:
                await self.close()
                raise ControlDisconnected(
                    self.path, f"the connection broke: {_connect_error(exc)}"
                ) from None
            return _result(reply)
