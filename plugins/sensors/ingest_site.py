"""The listening socket of `http_ingest`: aiohttp's TCPSite, with the TLS handshake bounded.

Under TLS aiohttp sees a connection, and starts the keep-alive timer that cuts off slow
clients, only once the handshake is done. Until then the handshake timeout applies, 60 s
unless the server names another: a client that connected and never finished its ClientHello
held a connection (a file descriptor) that long, whatever `request_timeout_s` said. Likewise
at the end: a connection cut off (a slowloris client's headers timed out) stays open until
the client answers the server's TLS close_notify, 30 s by default; one that never answers
held it that long. Both are bounded by the same time. The connections open at once, in their
handshake too, are capped (plugins/sensors/connection_cap.py, which begins TLS on each
connection it accepts). Imported once aiohttp is known to be installed.
"""

from __future__ import annotations

import asyncio
import ssl

from aiohttp import web

from schnitzel_plugins.sensors.connection_cap import ConnectionCap, TlsServing

__all__ = ["IngestSite"]


class IngestSite(web.TCPSite):
    """`web.TCPSite` whose TLS handshake, and TLS shutdown, must end within
    `handshake_timeout_s`, and which serves at most `cap.limit` connections at once."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        handshake_timeout_s: float,
        max_connections: int,
        retry_after_s: int,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context)
        self.handshake_timeout_s = handshake_timeout_s
        self.max_connections = max_connections
        self.retry_after_s = retry_after_s
        self.cap: ConnectionCap | None = None
        """The connections served, once started."""

    async def start(self) -> None:
        # TCPSite.start, through the cap: it has no parameter for a handshake timeout
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        tls = self._ssl_context
        self.cap = ConnectionCap(
            server,
            self.max_connections,
            self.retry_after_s,
            None if tls is None else TlsServing(tls, self.handshake_timeout_s),
        )
        # TLS is begun by the cap on each connection it accepts, so that it counts them all
        self._server = await asyncio.get_running_loop().create_server(
            self.cap,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port

    async def stop(self) -> None:
        await super().stop()
        if self.cap is not None:  # no more handshakes once the server stops
            self.cap.cancel_handshakes()
