"""At most `limit` connections open at once on `http_ingest`'s socket.

aiohttp has no setting for it (its maintainers leave it to a proxy in front, aiohttp#675),
and every connection a client holds open is a file descriptor: `request_timeout_s` bounds
how long each is held, not how many there are. `ConnectionCap` is the protocol factory given
to `loop.create_server` in aiohttp's place (the way aiohttp's low-level server is served):
each connection is counted once it is made (under TLS, after its handshake, which
`request_timeout_s` bounds), and one beyond the limit is answered 503 with `Retry-After` and
closed before aiohttp sees it; one that ends frees its place. A client whose request had
already arrived when it was refused may see the connection reset instead of the 503 (the
kernel resets a connection closed with unread data); an honest client retries either way.
Imports nothing from aiohttp.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import cast

__all__ = ["ConnectionCap"]


class ConnectionCap:
    """A protocol factory: `make()`'s protocols, at most `limit` of them connected at once."""

    def __init__(
        self, make: Callable[[], asyncio.Protocol], limit: int, retry_after_s: int
    ) -> None:
        self.make = make
        self.limit = limit
        self.open = 0
        """Connections made and not yet lost (refused ones are not counted)."""
        self.refused = 0
        """Connections refused because `limit` were open."""
        why = f"{limit} connections are open (max_connections): retry after {retry_after_s} s"
        body = json.dumps({"error": why}).encode()  # every answer's body is JSON
        self.refusal = (
            "HTTP/1.1 503 Service Unavailable\r\n"
            f"Retry-After: {retry_after_s}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            "Connection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    def __call__(self) -> asyncio.Protocol:
        return _Capped(self)


class _Capped(asyncio.Protocol):
    """One connection: handed to the protocol `make()` gives when there is room, else
    answered 503 and closed."""

    __slots__ = ("_cap", "_inner")

    def __init__(self, cap: ConnectionCap) -> None:
        self._cap = cap
        self._inner: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cap = self._cap
        if cap.open >= cap.limit:
            cap.refused += 1
            # a stream transport (uvloop's are not asyncio.Transport subclasses)
            cast("asyncio.WriteTransport", transport).write(cap.refusal)
            transport.close()  # after the answer is sent
            return
        cap.open += 1
        self._inner = cap.make()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:  # a refused client's request is not read
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._inner is None else self._inner.eof_received()

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._cap.open -= 1
            self._inner.connection_lost(exc)
