"""At most `limit` connections open at once on `http_ingest`'s socket.

aiohttp has no setting for it (its maintainers leave it to a proxy in front, aiohttp#675),
and every connection a client holds open is a file descriptor: `request_timeout_s` bounds
how long each is held, not how many there are. `ConnectionCap` is the protocol factory given
to `loop.create_server` in aiohttp's place (the way aiohttp's low-level server is served):
each connection is counted from the moment it is accepted, in its TLS handshake too, and one
that ends frees its place, however it ends (a handshake that failed or timed out included).

One beyond the limit: a plain connection is answered 503 with `Retry-After` and closed
before aiohttp sees it. A client whose request had already arrived when it was refused may
see the connection reset instead of the 503 (the kernel resets a connection closed with
unread data); an honest client retries either way. A TLS connection is closed at once,
before its handshake: no HTTP answer can be sent before the handshake, and doing the
handshake for a client about to be refused would spend a handshake's CPU, and a descriptor
for up to `request_timeout_s`, on every connection over the limit, which is what the limit
is there to bound. The TLS client sees its connection closed during its handshake, a
connection error it retries as it would a 503.

So that a connection is seen from its accept, TLS is begun here on each connection accepted
(`loop.connect_accepted_socket` on a duplicate of its socket, before a byte of it was read),
rather than by `create_server(ssl=...)`, whose protocol hears of a connection only once its
handshake is done, and never of one whose handshake failed. Imports nothing from aiohttp.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import ssl

__all__ = ["ConnectionCap", "TlsServing"]


@dataclass(frozen=True)
class TlsServing:
    """How the capped connections are served in TLS."""

    context: ssl.SSLContext
    timeout_s: float
    """The most a TLS handshake, and a TLS shutdown, may take."""


class ConnectionCap:
    """A protocol factory: `make()`'s protocols, at most `limit` of them connected at once
    (counted from accept, in TLS when `tls` is given)."""

    def __init__(
        self,
        make: Callable[[], asyncio.Protocol],
        limit: int,
        retry_after_s: int,
        tls: TlsServing | None = None,
    ) -> None:
        self.make = make
        self.limit = limit
        self.tls = tls
        self.open = 0
        """Connections accepted and not yet lost (refused ones are not counted)."""
        self.refused = 0
        """Connections refused because `limit` were open."""
        self._handshakes: set[asyncio.Task[None]] = set()
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

    def cancel_handshakes(self) -> None:
        """The server stops: end the TLS handshakes still going on (their places are freed)."""
        for task in list(self._handshakes):
            task.cancel()

    def _hand_to_tls(self, accepted: asyncio.BaseTransport) -> None:
        """Go on with a connection that holds a place in TLS: on a duplicate of its socket,
        the transport the server made for it dropped (it has read nothing yet)."""
        sock = accepted.get_extra_info("socket")
        try:
            handed = socket.socket(fileno=os.dup(sock.fileno()))
        except OSError:  # out of file descriptors: as if it had failed its handshake
            handed = None
        cast("asyncio.WriteTransport", accepted).abort()  # its descriptor only: goes on in `handed`
        served = _Served(self)
        if handed is None:
            served.release()
            return
        task = asyncio.ensure_future(self._handshake(served, handed))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, served: _Served, handed: socket.socket) -> None:
        tls = self.tls
        assert tls is not None
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: served,
                handed,
                ssl=tls.context,
                ssl_handshake_timeout=tls.timeout_s,
                ssl_shutdown_timeout=tls.timeout_s,
            )
        except OSError:  # failed, timed out, or the client left: the loop closed it
            served.release()
        except BaseException:
            served.release()
            raise


class _Served(asyncio.Protocol):
    """A connection that holds a place: handed to the protocol `make()` gives, and its place
    freed when it is lost."""

    __slots__ = ("_cap", "_inner", "counted")

    def __init__(self, cap: ConnectionCap) -> None:
        self._cap = cap
        self._inner: asyncio.Protocol | None = None
        self.counted = True
        """Holds a place in the count."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner = self._cap.make()
        self._inner.connection_made(transport)

    def release(self) -> None:
        """Free the connection's place (once, however many ways it ends)."""
        if self.counted:
            self.counted = False
            self._cap.open -= 1

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
        self.release()
        if self._inner is not None:
            self._inner.connection_lost(exc)


class _Capped(_Served):
    """A connection the server accepted: refused when `limit` are open, else counted and
    served (under TLS, through a handshake of its own: `ConnectionCap._hand_to_tls`)."""

    __slots__ = ()

    def __init__(self, cap: ConnectionCap) -> None:
        super().__init__(cap)
        self.counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cap = self._cap
        if cap.open >= cap.limit:
            cap.refused += 1
            if cap.tls is None:
                # a stream transport (uvloop's are not asyncio.Transport subclasses)
                cast("asyncio.WriteTransport", transport).write(cap.refusal)
            transport.close()  # after the answer is sent
            return
        cap.open += 1
        if cap.tls is None:
            self.counted = True
            super().connection_made(transport)
        else:  # the place goes with the connection: this transport is dropped
            cap._hand_to_tls(transport)
