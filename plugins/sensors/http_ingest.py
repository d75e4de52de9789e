"""`http_ingest` source: an HTTP endpoint for devices and webhooks, 202 only once accepted.

A POST to `path` carries one JSON object, a JSON array of objects, or NDJSON; each object
becomes a packet. The request is answered **202 only once every one of its packets is safe**:
the runtime reported it through `checkpoint` (committed to a durable inbox on every path it
took, or delivered, filtered, dropped by the graph's policy). So a 202 is never given for a
record a `kill -9` could still lose, when the node after the source has a durable inbox.
Records the graph cannot take yet wait in a bounded queue; a body that does not fit is
answered `busy_status` (503 or 429) with `Retry-After` at once, and a request whose records
are not safe within `accept_timeout_s` is answered 503: at-least-once, so the client sends
the same body again with the same `Idempotency-Key` and its packets carry the same keys.

The server is aiohttp, run inside the runtime's event loop (`AppRunner`, no signal handlers
of its own: the runtime owns SIGTERM/SIGINT).
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from schnitzel import (
    ANY_KIND,
    CheckContext,
    EnvironmentProblem,
    NodeContext,
    PayloadProfile,
    PluginConfig,
    Source,
    StreamPacket,
    import_extra,
)
from schnitzel_plugins.sensors.configured_kind import KindFromConfig
from schnitzel_plugins.sensors.errors import BodyRefused, SensorError
from schnitzel_plugins.sensors.ingest_body import records_of
from schnitzel_plugins.sensors.ingest_config import HttpIngestConfig

if TYPE_CHECKING:  # asyncio and ssl too: a graph that does not serve never imports them
    import asyncio
    import ssl

    from aiohttp import web

    from schnitzel_plugins.sensors.ingest_site import IngestSite

__all__ = ["HttpIngest", "HttpIngestConfig"]

SHUTDOWN_S = 1.0
"""How long the stop waits for a body still arriving (answered 503 once it is whole), then
for a request still being read or answered before cutting it off: aiohttp waits this twice
at most after the first wait, within the runtime's 5 s for a node's close()."""

WAIT_S = 0.05
"""How long the node's thread waits for a request before it hands back to the runtime: the
runtime's `checkpoint` calls run on that same thread, so this bounds how long they wait."""


@dataclass
class _Request:
    """One POST waiting for its packets to become safe."""

    waiting: int
    """Its packets not yet reported safe."""
    done: asyncio.Future[None] = field(default_factory=lambda: _running_loop().create_future())
    """Resolved when none is left waiting, or when the run stopped first (`stopped`)."""
    stopped: bool = False


class HttpIngest(KindFromConfig, Source):
    """Serves POST `path`: each JSON object in the body becomes a packet; 202 once all are safe.

    Idempotency keys are `<Idempotency-Key header>:<n>` (n: the record's index in the body),
    or `<node>:<run>:<seq of the body's first record>:<n>` when the client sends no key."""

    name: ClassVar[str] = "http_ingest"
    Config: ClassVar[type[PluginConfig]] = HttpIngestConfig
    emits = ANY_KIND  # `kind` says which: output_shape
    emits_profile = PayloadProfile.JSON_PORTABLE
    # Pulled on the node's thread, in batches of what has arrived: an async source hands on one
    # packet at a time, and a durable inbox commits (fsync) each hand-over, so concurrent
    # requests would wait in line for one fsync each instead of sharing one.
    blocking: ClassVar[bool] = True
    checkpoints_promptly: ClassVar[bool] = True  # each waiting request is answered then

    config: HttpIngestConfig

    def __init__(self, config: HttpIngestConfig, context: NodeContext) -> None:
        super().__init__(config, context)
        self._queue: deque[tuple[StreamPacket, _Request]] = deque()
        """Received (appended on the loop), not yet taken by the graph (popped on the node's
        thread); deque's append and popleft are thread-safe."""
        self._held: deque[tuple[StreamPacket, _Request]] = deque()
        """Taken by the graph, not yet reported safe (the node's thread only)."""
        self._arrived = threading.Event()
        self._bodies_arriving = 0
        """Requests whose body is being read (on the loop)."""
        self._no_body_arriving: asyncio.Event | None = None
        """Set while `_bodies_arriving` is 0 (made in `open`, on the loop)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._site: IngestSite | None = None
        self._token: bytes | None = None
        self._seq = 0
        self._run = secrets.token_hex(6)
        """Keys without an Idempotency-Key: `<node>:<run>:<first seq>:<n>`, new every run."""
        self.received = 0
        """Records taken into the queue so far."""
        self.answers: dict[int, int] = {}
        """HTTP status -> how many requests got it (the report's plugin_stats)."""

    def stats(self) -> dict[str, Any]:
        """Records received, answers given by status, records queued and held (not safe yet),
        connections open and refused (over `max_connections`)."""
        cap = None if self._site is None else self._site.cap
        return {
            "received": self.received,
            "answers": {str(k): v for k, v in sorted(self.answers.items())},
            "queued": len(self._queue),
            "held": len(self._held),
            "connections": 0 if cap is None else cap.open,
            "connections_refused": 0 if cap is None else cap.refused,
        }

    async def open(self) -> None:
        import_extra(
            "aiohttp.web",
            node_id=self.context.node_id,
            needed_by="http_ingest",
            package="aiohttp",
            extra="sensors",
            error=SensorError,
        )
        from aiohttp import web

        config = self.config
        if config.token_env is not None:
            token = os.environ.get(config.token_env)
            if not token:
                raise SensorError(
                    f"node {self.context.node_id!r}: environment variable {config.token_env!r} "
                    "(token_env) is not set: export the bearer token clients must send"
                )
            self._token = f"Bearer {token}".encode()
        app = web.Application(client_max_size=config.max_body_bytes)
        app.router.add_post(config.path, self._handle)
        app.router.add_route("*", "/{anything:.*}", self._elsewhere)  # JSON, not aiohttp's text
        tls = self._tls()
        # aiohttp's keep-alive timer starts when a client connects and again after each
        # answer, and closes the connection if no whole request (its headers) came by then:
        # the bound on a client that never finishes its headers, or idles (slowloris)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            keepalive_timeout=config.request_timeout_s,
            # after an answer given before the whole body came (408, 413), the rest is read
            # and discarded this long (so the client sees the answer), then the connection goes
            lingering_time=config.request_timeout_s,
            # at the stop, a handler still reading a body is cancelled after this (aiohttp
            # waits 60 s by default, past the runtime's bound on close())
            shutdown_timeout=SHUTDOWN_S,
        )
        await runner.setup()
        from schnitzel_plugins.sensors.ingest_site import IngestSite

        # before a TLS handshake ends aiohttp's timers do not run: it is bounded by this
        site = IngestSite(
            runner,
            config.host,
            config.port,
            ssl_context=tls,
            handshake_timeout_s=config.request_timeout_s,
            max_connections=config.max_connections,
            retry_after_s=config.retry_after_s,
        )
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise SensorError(
                f"node {self.context.node_id!r}: cannot listen on {config.host}:{config.port} "
                f"({exc.strerror}): free the port or set another `port`"
            ) from exc
        self._runner = runner
        self._site = site
        self._loop = _running_loop()
        import asyncio

        self._no_body_arriving = asyncio.Event()
        self._no_body_arriving.set()
        scheme = "https" if config.tls_cert else "http"
        self.context.event(
            "info", f"listening on {scheme}://{config.host}:{config.port}{config.path}"
        )

    async def close(self) -> None:
        runner, self._runner = self._runner, None  # from now on a body that came is 503
        for _packet, request in (*list(self._queue), *list(self._held)):
            if not request.done.done():
                request.stopped = True  # a result, not an exception: nobody may be waiting
                request.done.set_result(None)
        self._queue.clear()
        self._held.clear()
        if runner is None:
            return
        if self._site is not None and self._no_body_arriving is not None:
            await self._site.stop()  # no new connection
            # aiohttp's shutdown drops what arrives after it began: a body still arriving
            # gets this long to finish, so that its client is answered (503), not cut off
            import asyncio

            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_body_arriving.wait(), SHUTDOWN_S)
        await runner.cleanup()

    def packets(self) -> Iterator[StreamPacket | None]:
        queue, held, arrived = self._queue, self._held, self._arrived
        stopping = self.context.stopping
        while not stopping.is_set():
            if not queue:
                yield None  # hand on what was taken: requests wait for it to be safe
                arrived.clear()
                if not queue:
                    arrived.wait(WAIT_S)
                continue
            item = queue.popleft()
            held.append(item)
            yield item[0]

    def checkpoint(self, upto: StreamPacket | Any) -> None:
        """Every held packet up to `upto` is safe: answer the requests it completes."""
        held, loop = self._held, self._loop
        if loop is None or not any(packet is upto for packet, _ in held):
            return
        while held:
            packet, request = held.popleft()
            request.waiting -= 1
            if request.waiting == 0:
                loop.call_soon_threadsafe(_answered, request)
            if packet is upto:
                break

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        answer = await self._answer(request)
        self.answers[answer.status] = self.answers.get(answer.status, 0) + 1
        return answer

    async def _elsewhere(self, request: web.Request) -> web.StreamResponse:
        """A request to another path, or not a POST: say where the records go."""
        path = self.config.path
        if request.path == path:
            answer = _refusal(
                405, f"{request.method} is not accepted: POST records to {path}", {"Allow": "POST"}
            )
        else:
            answer = _refusal(404, f"nothing is served at {request.path}: POST to {path}")
        self.answers[answer.status] = self.answers.get(answer.status, 0) + 1
        return answer

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        config = self.config
        if self._token is not None and not hmac.compare_digest(
            request.headers.get("Authorization", "").encode(), self._token
        ):
            return _refusal(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})
        if self.context.stopping.is_set():
            return self._busy(503, "the runtime is stopping")
        import asyncio

        try:
            with self._body_arriving():
                body = await asyncio.wait_for(request.read(), config.request_timeout_s)
        except web.HTTPRequestEntityTooLarge:
            return _refusal(413, f"the body is larger than {config.max_body_bytes} bytes")
        except TimeoutError:
            answer = _refusal(408, f"the body did not arrive within {config.request_timeout_s:g} s")
            answer.force_close()  # not another request on a connection this slow
            return answer
        if self.context.stopping.is_set() or self._runner is None:  # None: close() began
            # the body came whole during the stop: nothing would take its records now
            return self._busy(503, "the runtime is stopping")
        try:
            records = records_of(body, request.content_type, config.max_records)
        except BodyRefused as refused:
            return _refusal(refused.status, str(refused))
        if len(records) > config.queue_max:
            return _refusal(
                413,
                f"{len(records)} records in one body, the queue holds {config.queue_max}: "
                "split the body",
            )
        if len(self._queue) + len(records) > config.queue_max:
            return self._busy(config.busy_status, "the graph is not keeping up")
        key = request.headers.get("Idempotency-Key")
        if key is not None and not _utf8(key):  # no durable inbox or JSON sink could keep it
            return _refusal(400, "the Idempotency-Key header is not UTF-8 text: send UTF-8")
        waiting = _Request(len(records))
        packets = self._packets_of(records, key)
        self._queue.extend((packet, waiting) for packet in packets)
        self.received += len(packets)
        self._arrived.set()
        try:
            await asyncio.wait_for(asyncio.shield(waiting.done), config.accept_timeout_s)
        except TimeoutError:
            return self._busy(
                503,
                f"not confirmed safe within {config.accept_timeout_s} s: send it again with "
                "the same Idempotency-Key",
            )
        if waiting.stopped:
            return self._busy(503, "the runtime stopped before the records were safe")
        return web.json_response(
            {"accepted": len(packets), "ids": [p.packet_id for p in packets]}, status=202
        )

    @contextlib.contextmanager
    def _body_arriving(self) -> Iterator[None]:
        """A request's body is being read: the stop gives it a moment to finish (`close`)."""
        arriving = self._no_body_arriving
        assert arriving is not None  # open() made it before serving
        self._bodies_arriving += 1
        arriving.clear()
        try:
            yield
        finally:
            self._bodies_arriving -= 1
            if not self._bodies_arriving:
                arriving.set()

    def _packets_of(self, records: list[dict[str, Any]], key: str | None) -> list[StreamPacket]:
        kind, node_id, new = self.config.kind, self.context.node_id, StreamPacket.new
        first, self._seq = self._seq, self._seq + len(records)
        prefix = key if key else f"{node_id}:{self._run}:{first}"
        return [
            new(kind, node_id, first + n, record, {"idempotency_key": f"{prefix}:{n}"})
            for n, record in enumerate(records)
        ]

    def _busy(self, status: int, why: str) -> web.StreamResponse:
        retry = str(self.config.retry_after_s)
        return _refusal(status, f"{why}: retry after {retry} s", {"Retry-After": retry})

    def _tls(self) -> ssl.SSLContext | None:
        config = self.config
        if config.tls_cert is None or config.tls_key is None:
            return None
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert, key = self.context.resolve(config.tls_cert), self.context.resolve(config.tls_key)
        try:
            context.load_cert_chain(cert, key)
        except OSError as exc:  # ssl.SSLError is one: a key that does not match, not PEM
            raise SensorError(
                f"node {self.context.node_id!r}: cannot load tls_cert {str(cert)!r} with "
                f"tls_key {str(key)!r} ({exc}): both PEM, the key the certificate's"
            ) from exc
        return context

    @classmethod
    def check_environment(cls, config: Any, context: CheckContext) -> list[EnvironmentProblem]:
        problems = []
        for key in ("tls_cert", "tls_key"):
            value = getattr(config, key)
            if value is not None and not context.resolve(value).is_file():
                problems.append(
                    EnvironmentProblem(
                        f"{key} file {str(context.resolve(value))!r} does not exist",
                        "fix the path (relative paths resolve against the graph file)",
                        config_key=key,
                    )
                )
        if config.token_env is not None and not os.environ.get(config.token_env):
            problems.append(
                EnvironmentProblem(
                    f"environment variable {config.token_env!r} (token_env) is not set",
                    "export the bearer token clients must send before starting the run",
                    config_key="token_env",
                )
            )
        return problems


def _running_loop() -> asyncio.AbstractEventLoop:
    import asyncio

    return asyncio.get_running_loop()


def _utf8(text: str) -> bool:
    """False for a header aiohttp decoded with surrogate escapes (bytes that are not UTF-8)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _answered(request: _Request) -> None:
    """On the loop: every packet of the request is safe."""
    if not request.done.done():
        request.done.set_result(None)


def _refusal(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    from aiohttp import web

    return web.json_response({"error": message}, status=status, headers=headers)
