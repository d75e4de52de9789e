"""`http` sink: POSTs packets as JSON to a backend, retrying what the backend may recover from.

Each packet is one request (`batch_max: 1`, the default): the body is the packet's portable
JSON encoding (`encode_packet`), `Content-Type: application/json`, and the header
`Idempotency-Key` is the packet's idempotency key (`meta.idempotency_key`, else
`<source_id>:<seq>`), so a backend can drop the duplicates that retries and replays make.

Outcomes of one request (verdict.py tells what an answer means):

- 2xx: delivered.
- 5xx, 429, 425, 408, a connection error, or no complete answer within `timeout_s` (one
  deadline for the whole request, body included): retried inside the sink, so the packet
  stays with it (and, with a durable inbox, in the store) while it waits. The wait before
  retry n is random in [0, min(retry_max_s, retry_initial_s * 2^(n-1))] ("full jitter"), or
  what a `Retry-After` header asks (delta-seconds or an HTTP-date), capped at `retry_max_s`.
- a refusal that says the backend or the configuration is wrong (3xx, 401, 403, 404, 405,
  407, 413 on a body of the usual size, 421, 426, ...): the backend is unavailable, retried
  the same way. `trouble` says why in words.
- a refusal that may be about the packet (400, 409, 415, 422, ...): a poison pill
  (`HttpRejected`, the node's `on_error` applies) only when the backend takes other packets:
  the sink tries the next packets of the batch first, then asks about the refused one again
  right after an acceptance. A backend that refuses every packet that way is unavailable.

With a durable inbox the sink retries until delivered; otherwise it gives up after
`max_retries` retries and raises `HttpGaveUp`, and the node's `on_error` applies.

The runtime hands the sink micro-batches (`deliver_batch`). When a packet of one failed, the
sink raises and the runtime calls `deliver` per packet, which answers from the verdicts the
sink reached without sending again.

A circuit breaker (breaker.py) guards the backend: after `breaker_failures` retried failures
in a row the circuit opens and no request goes out for `breaker_cooldown_s`; deliveries wait
instead of hammering. Then exactly one probe goes out: success closes the circuit, failure
reopens it for twice as long (up to `breaker_max_cooldown_s`, 1.5 s by default, which bounds how
long delivery takes to resume after the backend recovers). While the circuit is open, its
cooldown alone paces attempts (no backoff on top). The opening is logged once as a warning,
the closing as info; the token never appears in a log line, an error or a repr. Each retried
failure is also reported with `context.report_trouble` (`connection refused from <url>;
requests failing; circuit open`, the words of `trouble` without its changing numbers) and the
first answer with `report_recovered`, so the operator sees why the node retries in its health
reason, its recent errors and the event log.

With `batch_max` > 1 the micro-batches go as JSON arrays of up to `batch_max` encoded
packets, one request per slice, all-or-nothing per request. A batch request's Idempotency-Key
is `batch-` followed by the SHA-256 (hex) of the member keys as a compact JSON array of
strings, in order; each element still carries its own key in `meta` (or `source_id`/`seq`).
A slice refused in a way that may be about a packet, or out of retries, is sent again one
packet per request (single JSON objects), so a poison pill gets the error, not its batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import time
from typing import TYPE_CHECKING, Any, ClassVar

from schnitzel import (
    BreakerChange,
    BreakerState,
    CheckContext,
    CircuitBreaker,
    EnvironmentProblem,
    NodeContext,
    PluginConfig,
    Sink,
    StreamPacket,
    backoff_s,
    encode_packet,
)
from schnitzel_plugins.http.config import HttpSinkConfig, safe_url
from schnitzel_plugins.http.errors import HttpGaveUp, HttpRejected, HttpSinkError
from schnitzel_plugins.http.lookahead import LOOKAHEAD, Refused, judge
from schnitzel_plugins.http.retry import retry_after_s
from schnitzel_plugins.http.verdict import Answer, classify, is_poison

if TYPE_CHECKING:
    from schnitzel_plugins.http.client import HttpClient, Reply

__all__ = ["HttpBatchSink", "HttpSink", "HttpSinkConfig", "batch_key"]

RECENT_S = 10.0
"""With no later packet to try, a refusal that may be about the packet is poison when the
backend accepted another packet less than this long before, has not refused everything
since, and fewer than `LOOKAHEAD` packets were judged poison that way since (so a backend that
starts refusing everything costs at most that many)."""
_UNJUDGED: Any = object()


class _Doubt(Refused):
    """A refusal that may be about the packet or the backend: `judge` tries other packets
    before judging. `recent`: the backend accepted another request less than `RECENT_S`
    before."""

    def __init__(self, what: str, reply: Reply, recent: bool) -> None:
        super().__init__(reply.detail, recent)
        self.what = what
        self.reply = reply


class HttpSink(Sink):
    """POSTs each packet as JSON with an Idempotency-Key; 2xx = delivered; failures retried.

    Transient failures and a backend that refuses everything are retried; a packet a working
    backend refuses is a poison pill."""

    name: ClassVar[str] = "http"
    Config: ClassVar[type[PluginConfig]] = HttpSinkConfig
    requires_portable: ClassVar[bool] = True

    config: HttpSinkConfig

    def __new__(cls, config: HttpSinkConfig, context: NodeContext) -> HttpSink:
        # Posting JSON arrays is a subclass chosen here, so that the one-packet-per-request
        # path carries no array code.
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
        self._accepted_at: float | None = None
        """When the backend last accepted a request (None: not since it refused everything)."""
        self._poisoned_since_accepted = 0
        """Packets judged poison since the backend last accepted one."""
        self._largest_accepted = 0
        """The largest body the backend accepted, in bytes (for telling what a 413 means)."""
        self._failing_since: float | None = None
        self._failures_in_a_row = 0
        self._last_failure: Reply | None = None
        self._last_failure_refused = False
        self._verdicts: dict[str, Exception | None] = {}
        """Verdicts `deliver_batch` reached, by packet id, for the runtime's `deliver` calls
        that follow when it raised."""

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

    @property
    def trouble(self) -> str | None:
        """Why the backend is not taking packets, in words, while it is not (None once it
        accepts again): the last answer, the URL, for how long and how many requests in a
        row, e.g. `HTTP 401 Unauthorized: token expired from http://10.0.0.5/ingest; every
        request refused for 6 s (23 in a row); circuit open; packets kept ...`."""
        if self._failing_since is None or self._last_failure is None:
            return None
        seconds = time.monotonic() - self._failing_since
        how_long = f" for {seconds:.0f} s ({self._failures_in_a_row} in a row)"
        return self._trouble_text(how_long)

    @property
    def trouble_reason(self) -> str | None:
        """`trouble` without the numbers: the same text for as long as the problem stays the
        same (the answer, the URL, the circuit), for reporting to the runtime."""
        return None if self._last_failure is None else self._trouble_text("")

    def _trouble_text(self, how_long: str) -> str:
        assert self._last_failure is not None
        refused = self._last_failure_refused
        what = "every request refused" if refused else "requests failing"
        text = f"{self._last_failure.detail} from {self._where}; {what}{how_long}"
        if self.breaker.state is not BreakerState.CLOSED:
            text += "; circuit open"
        if refused:
            text += "; packets kept and retried until it accepts: fix the backend or the url, "
            text += "token or headers"
        return text

    async def deliver(self, packet: StreamPacket) -> None:
        verdict = self._verdicts.pop(packet.packet_id, _UNJUDGED)
        if verdict is not _UNJUDGED:  # judged while delivering its batch: do not send again
            if verdict is not None:
                raise verdict
            return
        await self._post_packet(packet, doubt=False)

    async def deliver_batch(self, packets: list[StreamPacket]) -> None:
        """One request per packet, judging refusals by the packets around them (`_judge`).
        Raises when a packet failed; the runtime then calls `deliver` for each packet, which
        answers from the verdicts kept here instead of sending again."""
        self._settle(await self._judge(packets))

    async def _judge(self, packets: list[StreamPacket]) -> dict[str, Exception | None]:
        """Deliver `packets` one request each; a verdict per packet id (None: delivered).
        Refusals that may be about the packet are judged by the packets around them
        (lookahead.py)."""
        return await judge(
            packets,
            key=lambda packet: packet.packet_id,
            send=self._post_packet,
            poison=self._poison_of,
            refuses_everything=self._forget_acceptances,
            errors=(HttpSinkError,),
        )

    def _poison_of(self, refused: Refused, proven: bool) -> HttpRejected:
        assert isinstance(refused, _Doubt)  # the only Refused that _post raises
        return self._poison(refused.what, refused.reply, proven)

    def _forget_acceptances(self) -> None:
        """The backend refuses every packet now: what it accepted before is no evidence."""
        self._accepted_at = None

    def _settle(self, verdicts: dict[str, Exception | None]) -> None:
        failed = [exc for exc in verdicts.values() if exc is not None]
        if failed:
            self._verdicts.update(verdicts)
            raise HttpSinkError(
                f"{len(failed)} of {len(verdicts)} packets not delivered (first: {failed[0]})"
            )

    async def _post_packet(self, packet: StreamPacket, doubt: bool) -> None:
        key = packet.idempotency_key
        if not (key.isascii() and key.isprintable()):
            raise HttpSinkError(
                f"packet {packet.packet_id}: idempotency key {key!r} cannot be an HTTP header "
                "value (printable ASCII only); give the packet an ASCII meta.idempotency_key"
            )
        await self._post(encode_packet(packet).encode(), key, f"packet {key!r}", doubt)

    async def _post(self, body: bytes, key: str, what: str, doubt: bool = False) -> None:
        """POST `body` until delivered, judged a poison pill (`HttpRejected`), or (inbox not
        durable) out of retries (`HttpGaveUp`). With `doubt`, a refusal that may be about
        the packet raises `_Doubt` at once, for the caller to look at other packets first."""
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
            answer = classify(reply.status, len(body), self._largest_accepted)
            recent = (
                self._accepted_at is not None
                and time.monotonic() - self._accepted_at <= RECENT_S
                and self._poisoned_since_accepted < LOOKAHEAD
            )
            if answer is Answer.DELIVERED:
                self._accepted_at = time.monotonic()
                self._poisoned_since_accepted = 0
                self._log_change(self.breaker.record_success(), reply)
                self._largest_accepted = max(self._largest_accepted, len(body))
                self._note_recovered()
                return
            if answer is Answer.PACKET:
                if doubt:
                    if probe:
                        self.breaker.release()
                    raise _Doubt(what, reply, recent)
                if is_poison(answer, recent):
                    self._log_change(self.breaker.record_success(), reply)  # it works
                    self._note_recovered()
                    raise self._poison(what, reply, proven=False)
            self._note_failure(reply, refused=answer is not Answer.TRANSIENT)
            self._log_change(self.breaker.record_failure(), reply)
            self._report_trouble()
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

    def _poison(self, what: str, reply: Reply, proven: bool) -> HttpRejected:
        """The error for a poison pill; `proven` when refused right after another packet was
        accepted, else judged on a recent acceptance alone (counted, see `RECENT_S`)."""
        if not proven:
            self._poisoned_since_accepted += 1
        return HttpRejected(
            f"{self._where} refused {what}: {reply.detail} (a poison pill: the backend takes "
            "other packets; the node's on_error policy applies)",
            reply.status or 0,
        )

    def _note_recovered(self) -> None:
        """The backend works (it accepted, or judged one packet): no trouble any more."""
        self._failing_since = self._last_failure = None
        self._failures_in_a_row = 0
        self.context.report_recovered()

    def _note_failure(self, reply: Reply, refused: bool) -> None:
        """A request failed or the backend refused everything: what `trouble` says."""
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        self._failures_in_a_row += 1
        self._last_failure, self._last_failure_refused = reply, refused

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

    def _report_trouble(self) -> None:
        """Tell the operator why this node retries, in the words of `trouble` without its
        changing numbers (the runtime coalesces repeats)."""
        reason = self.trouble_reason
        if reason is not None:
            self.context.report_trouble(reason)

    def _log_change(self, change: BreakerChange | None, reply: Reply) -> None:
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
        Everything is encoded first, so a packet that cannot be encoded sends nothing. A
        slice refused in a way that may be about a packet (422, ...), or out of retries, is
        sent again one packet per request to find the packets at fault (`_judge`)."""
        lines = [encode_packet(packet) for packet in packets]
        keys = [packet.idempotency_key for packet in packets]
        size = self.config.batch_max
        verdicts: dict[str, Exception | None] = {}
        for start in range(0, len(packets), size):
            members = keys[start : start + size]
            body = ("[" + ",".join(lines[start : start + size]) + "]").encode()
            what = f"a batch of {len(members)} packets ({members[0]!r} .. {members[-1]!r})"
            try:
                await self._post(body, batch_key(members), what, doubt=True)
            except (_Doubt, HttpGaveUp):
                verdicts.update(await self._judge(packets[start : start + size]))
                continue
            verdicts.update((packet.packet_id, None) for packet in packets[start : start + size])
        self._settle(verdicts)


def batch_key(keys: list[str]) -> str:
    """The Idempotency-Key of a batch request: `batch-` and the SHA-256 (hex) of the member
    keys as a compact JSON array of strings, in order. Same members, same key."""
    members = json.dumps(keys, ensure_ascii=False, separators=(",", ":"))
    return "batch-" + hashlib.sha256(members.encode()).hexdigest()
