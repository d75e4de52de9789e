"""`http` sink: POSTs packets as JSON to a backend, retrying what the backend may recover from.

Each packet is one request (`batch_max: 1`, the default): the body is the packet's portable
JSON encoding (`encode_packet`), `Content-Type: application/json`, and the header
`Idempotency-Key` is the packet's idempotency key (`meta.idempotency_key`, else
`<source_id>:<seq>`), so a backend can drop the duplicates that retries and replays make.

Outcomes of one request:

- 2xx: delivered; `deliver` returns.
- 5xx, 429, 408, a timeout or a connection error: retried inside `deliver`, so the packet
  stays with the sink (and, with a durable inbox, in the store) while it waits. The wait
  before retry n is random in [0, min(retry_max_s, retry_initial_s * 2^(n-1))] ("full
  jitter"), or what a `Retry-After` header asks (delta-seconds or an HTTP-date), capped at
  `retry_max_s`. With a durable inbox the sink retries until delivered; otherwise it gives up
  after `max_retries` retries and raises `HttpGaveUp`, and the node's `on_error` applies.
- any other status (4xx, a redirect): raises `HttpRejected` at once, naming the status and
  quoting the start of the body; the node's `on_error` applies.

A circuit breaker (breaker.py) guards the backend: after `breaker_failures` retried failures
in a row the circuit opens and no request goes out for `breaker_cooldown_s`; deliveries wait
instead of hammering. Then exactly one probe goes out: success closes the circuit, failure
reopens it for twice as long (up to `breaker_max_cooldown_s`, 1.5 s by default, which bounds how
long delivery takes to resume after the backend recovers). While the circuit is open, its
cooldown alone paces attempts (no backoff on top). The opening is logged once as a warning,
the closing as info; the token never appears in a log line, an error or a repr. Each retried
failure is also reported with `context.report_trouble` (`<url>: connection refused; circuit
open`) and the first answer with `report_recovered`, so the operator sees why
the node retries in its health reason, its recent errors and the event log.

With `batch_max` > 1 the runtime hands the sink whole micro-batches (`deliver_batch`): they
go as JSON arrays of up to `batch_max` encoded packets, one request per slice, all-or-nothing
per request. A batch request's Idempotency-Key is `batch-` followed by the SHA-256 (hex) of
the member keys as a compact JSON array of strings, in order; each element still carries its
own key in `meta` (or `source_id`/`seq`). If a batch fails, the runtime delivers its packets
again one by one (single JSON objects), so a rejected packet gets the error, not its batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import time
from typing import TYPE_CHECKING, Any, ClassVar

from schnitzel.contract.codec import encode_packet
from schnitzel.contract.packet import StreamPacket
from schnitzel.registry.plugin import (
    CheckContext,
    EnvironmentProblem,
    NodeContext,
    PluginConfig,
    Sink,
)
from schnitzel_plugins.http.breaker import BreakerState, Change, CircuitBreaker
from schnitzel_plugins.http.config import HttpSinkConfig, safe_url
from schnitzel_plugins.http.errors import HttpGaveUp, HttpRejected, HttpSinkError
from schnitzel_plugins.http.retry import backoff_s, is_retried, retry_after_s
from schnitzel_plugins.http.words import trouble_reason

if TYPE_CHECKING:
    from schnitzel_plugins.http.client import HttpClient, Reply

__all__ = ["HttpBatchSink", "HttpSink", "HttpSinkConfig", "batch_key"]


class HttpSink(Sink):
    """POSTs each packet as JSON; 2xx = delivered, 5xx/429/408/connection errors are retried."""

    name: ClassVar[str] = "http"
    Config: ClassVar[type[PluginConfig]] = HttpSinkConfig
    requires_portable: ClassVar[bool] = True

    config: HttpSinkConfig

    def __new__(cls, config: HttpSinkConfig, context: NodeContext) -> HttpSink:
        # The runtime looks for `deliver_batch` on the plugin's class, so batching is a
        # subclass chosen here: with batch_max 1 there is no batch path at all.
        if cls is HttpSink and config.batch_max > 1:
            return super().__new__(HttpBatchSink)
        return super().__new__(cls)

    def __init__(self, config: HttpSinkConfig, context: NodeContext) -> None:
        super().__init__(config, context)
        self.breaker = CircuitBreaker(
            config.breaker_failures, config.breaker_cooldown_s, config.breaker_max_cooldown_s
        )
        """The circuit breaker guarding this node's backend."""
        self._where = safe_url(config.url)
        self._client: HttpClient | None = None
        self._rng = random.Random()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} node={self.context.node_id!r} url={self._where!r}>"

    async def open(self) -> None:
        token = self._read_token()
        ca_file = self.context.resolve(self.config.ca_file) if self.config.ca_file else None
        from schnitzel_plugins.http.client import HttpClient  # imports httpx: only when run

        self._client = HttpClient(self.config, token, ca_file, self.context.max_concurrency)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver(self, packet: StreamPacket) -> None:
        key = packet.idempotency_key
        if not (key.isascii() and key.isprintable()):
            raise HttpSinkError(
                f"packet {packet.packet_id}: idempotency key {key!r} cannot be an HTTP header "
                "value (printable ASCII only); give the packet an ASCII meta.idempotency_key"
            )
        await self._post(encode_packet(packet).encode(), key, f"packet {key!r}")

    async def _post(self, body: bytes, key: str, what: str) -> None:
        """POST `body` until delivered, rejected, or (inbox not durable) out of retries."""
        client = self._client
        if client is None:
            raise HttpSinkError(f"node {self.context.node_id!r}: deliver before open()")
        attempts = 0
        while True:
            probe = await self._admitted()
            try:
                reply = await client.post(body, key)
            except BaseException:
                if probe:  # cancelled or unsendable: no verdict on the backend
                    self.breaker.release()
                raise
            attempts += 1
            status = reply.status
            if status is not None and not is_retried(status):
                self._log_change(self.breaker.record_success(), reply)  # it answered
                self.context.report_recovered()
                if 200 <= status < 300:
                    return
                raise HttpRejected(
                    f"{self._where} refused {what}: {reply.detail} (not retried: fix the "
                    "request or the backend; the node's on_error policy applies)",
                    status,
                )
            self._log_change(self.breaker.record_failure(), reply)
            self._report_trouble(reply)
            if not self.context.durable and attempts > self.config.max_retries:
                raise HttpGaveUp(
                    f"gave up delivering {what} to {self._where} after {attempts} attempts "
                    f"(max_retries {self.config.max_retries}); last: {reply.detail}. Give the "
                    "node a durable inbox to retry until delivered, or raise max_retries",
                    attempts,
                )
            delay = self._retry_delay(attempts, reply)
            if self.breaker.state is BreakerState.OPEN and reply.retry_after is None:
                delay = 0.0  # the open circuit's cooldown paces the next attempt instead
            await asyncio.sleep(delay)

    async def _admitted(self) -> bool:
        """Wait while the circuit is open; return when a request may go out, True when that
        request is the breaker's probe."""
        while (wait := self.breaker.admit()) > 0:
            await asyncio.sleep(wait)
        return self.breaker.state is BreakerState.HALF_OPEN

    def _retry_delay(self, attempt: int, reply: Reply) -> float:
        cap = self.config.retry_max_s
        asked = retry_after_s(reply.retry_after, time.time())
        if asked is not None:
            return min(asked, cap)
        return backoff_s(attempt, self.config.retry_initial_s, cap, self._rng)

    def _report_trouble(self, reply: Reply) -> None:
        """Tell the operator why this node retries (the runtime coalesces repeats)."""
        circuit_open = self.breaker.state is not BreakerState.CLOSED
        self.context.report_trouble(trouble_reason(self._where, reply.detail, circuit_open))

    def _log_change(self, change: Change | None, reply: Reply) -> None:
        if change is None:
            return
        logger, node = self.context.logger, {"node": self.context.node_id}
        if change.new is BreakerState.CLOSED:
            logger.info(
                "%s answers again (%s); circuit closed", self._where, reply.detail, extra=node
            )
        elif change.old is BreakerState.CLOSED:
            logger.warning(
                "%s failed %d times in a row (last: %s); circuit open: no requests for %.3g s, "
                "then one probe",
                self._where,
                change.failures,
                reply.detail,
                change.cooldown_s,
                extra=node,
            )
        else:
            logger.debug(
                "probe of %s failed (%s); next probe in %.3g s",
                self._where,
                reply.detail,
                change.cooldown_s,
                extra=node,
            )

    def _read_token(self) -> str | None:
        name = self.config.token_env
        if name is None:
            return None
        token = os.environ.get(name)
        if not token:
            raise HttpSinkError(
                f"environment variable {name} (token_env) is {'empty' if token == '' else 'unset'}"
                f"; export the bearer token in {name} before starting, or remove token_env"
            )
        return token

    @classmethod
    def check_environment(cls, config: Any, context: CheckContext) -> list[EnvironmentProblem]:
        problems = []
        if config.token_env is not None and not os.environ.get(config.token_env):
            problems.append(
                EnvironmentProblem(
                    f"environment variable {config.token_env} is not set here; the node will "
                    "refuse to start without it",
                    f"export {config.token_env} (the bearer token) where the graph runs",
                    config_key="token_env",
                    severity="warning",
                )
            )
        if config.ca_file is not None:
            path = context.resolve(config.ca_file)
            if not path.is_file() or not os.access(path, os.R_OK):
                problems.append(
                    EnvironmentProblem(
                        f"CA file {str(path)!r} does not exist or cannot be read",
                        "give the path of a readable PEM file, relative to the graph file",
                        config_key="ca_file",
                    )
                )
        return problems


class HttpBatchSink(HttpSink):
    """The http sink with `batch_max` > 1: micro-batches go as JSON arrays. Made by
    `HttpSink(config, context)`; not registered under a name of its own."""

    async def deliver_batch(self, packets: list[StreamPacket]) -> None:
        """POST the packets as JSON arrays of up to `batch_max`, all-or-nothing per request.
        Everything is encoded first, so a packet that cannot be sent sends nothing."""
        lines = [encode_packet(packet) for packet in packets]
        keys = [packet.idempotency_key for packet in packets]
        size = self.config.batch_max
        for start in range(0, len(packets), size):
            members = keys[start : start + size]
            body = ("[" + ",".join(lines[start : start + size]) + "]").encode()
            what = f"a batch of {len(members)} packets ({members[0]!r} .. {members[-1]!r})"
            await self._post(body, batch_key(members), what)


def batch_key(keys: list[str]) -> str:
    """The Idempotency-Key of a batch request: `batch-` and the SHA-256 (hex) of the member
    keys as a compact JSON array of strings, in order. Same members, same key."""
    members = json.dumps(keys, ensure_ascii=False, separators=(",", ":"))
    return "batch-" + hashlib.sha256(members.encode()).hexdigest()
