"""`nats` sink: publishes packets to NATS JetStream, each acknowledged by the server.

Each packet goes as its portable JSON encoding (`encode_packet`) on `subject` (or the subject
its `subject_field` holds), with the header `Nats-Msg-Id` = its idempotency key, so the
stream drops the copies that retries, replays and restarts make within its duplicate window
(`duplicate_window` of the stream, two minutes by default: size it to the longest restart).

A micro-batch is published asynchronously, up to `max_in_flight` publishes awaiting their
acks at once; a packet is delivered only once the server's ack for it is back (an ack that
says `duplicate` counts: the stream already holds it). The batch is delivered when every ack
is back; what failed is published again, with the same `Nats-Msg-Id`.

Outcomes of one publish:

- ack (or duplicate ack): delivered.
- no ack within `ack_timeout_s`, no connection, the server going away: retried inside the
  sink (with a durable inbox, until delivered), the packets staying in the store meanwhile.
- a refusal that says the configuration is wrong (no stream captures the subject; `stream`
  names another stream than the one that captures it; the stream is full with `discard:
  new`): the server is unavailable to this node, retried the same way; `trouble` says why.
- a refusal about the packet itself (larger than the server's `max_payload` or the stream's
  `max_msg_size`; no subject in its `subject_field`): a poison pill (`NatsRejected`), the
  node's `on_error` applies.

Retries wait like the http sink's: full-jitter backoff (`retry_initial_s` doubling up to
`retry_max_s`) and a circuit breaker (`breaker_failures` failed rounds in a row open it; one
probe per cooldown). Each failed round is reported with `context.report_trouble`, the first
ack after with `report_recovered`. Without a durable inbox a packet fails after `max_retries`
retries (`NatsGaveUp`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from schnitzel import (
    BreakerChange,
    BreakerState,
    CircuitBreaker,
    NodeContext,
    PluginConfig,
    Sink,
    StreamPacket,
    backoff_s,
    encode_packet,
)
from schnitzel_plugins.transports.acks import AckedPublisher
from schnitzel_plugins.transports.config import NatsSinkConfig, safe_nats_url, valid_subject
from schnitzel_plugins.transports.errors import NatsError, NatsGaveUp, NatsRejected

if TYPE_CHECKING:
    from nats.aio.client import Client

__all__ = ["NatsSink", "NatsSinkConfig"]

MSG_ID = "Nats-Msg-Id"
_TOO_LARGE = 10054
"""JetStream's err_code for a message larger than the stream's max_msg_size."""
_UNJUDGED: Any = object()


@dataclass(frozen=True)
class _Failure:
    """Why a publish failed, in words, and whether the server refused it (configuration)."""

    detail: str
    refused: bool


@dataclass(frozen=True)
class _Outgoing:
    packet: StreamPacket
    subject: str
    body: bytes
    headers: dict[str, str]


class NatsSink(Sink):
    """Publishes packets to NATS JetStream, Nats-Msg-Id = idempotency key, acked by the server.

    A packet is delivered once the server's ack (or duplicate ack) is back; failures are
    retried, a packet the server cannot take is refused (`on_error`)."""

    name: ClassVar[str] = "nats"
    Config: ClassVar[type[PluginConfig]] = NatsSinkConfig
    requires_portable: ClassVar[bool] = True

    config: NatsSinkConfig

    def __init__(self, config: NatsSinkConfig, context: NodeContext) -> None:
        super().__init__(config, context)
        self.breaker = CircuitBreaker(
            config.breaker_failures, config.breaker_cooldown_s, config.breaker_max_cooldown_s
        )
        """The circuit breaker guarding this node's server."""
        self.duplicate_acks = 0
        """Acks that said `duplicate`: the stream already held the message (a retry or a
        replay of a packet it had taken)."""
        self._where = safe_nats_url(config.url)
        self._nc: Client | None = None
        self._js: AckedPublisher | None = None
        self._connect_error: BaseException | None = None
        self._rng = random.Random()
        self._failing_since: float | None = None
        self._failures_in_a_row = 0
        self._last_failure: _Failure | None = None
        self._verdicts: dict[str, Exception | None] = {}
        """Verdicts `deliver_batch` reached, by packet id, for the runtime's `deliver` calls
        that follow when it raised."""

    def stats(self) -> dict[str, int]:
        """For the run report's `plugin_stats`: acks that said `duplicate`."""
        return {"duplicate_acks": self.duplicate_acks}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} node={self.context.node_id!r} url={self._where!r}>"

    async def open(self) -> None:
        try:
            import nats  # noqa: F401 - the transports extra: fail here, with the fix
        except ImportError as exc:
            raise NatsError(
                f"node {self.context.node_id!r}: the nats plugin needs nats-py; install "
                "schnitzel[transports]"
            ) from exc
        # The connection is made by the first delivery and remade when lost, so a server
        # that is down at start delays delivery (the packets wait) instead of failing the run.

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            await nc.close()

    @property
    def trouble(self) -> str | None:
        """Why the server is not taking packets, in words, while it is not (None once it
        acks again), e.g. `no ack within 5 s from nats://10.0.0.5:4222; publishes failing
        for 12 s (9 in a row); circuit open`."""
        if self._failing_since is None or self._last_failure is None:
            return None
        seconds = time.monotonic() - self._failing_since
        return self._trouble_text(f" for {seconds:.0f} s ({self._failures_in_a_row} in a row)")

    @property
    def trouble_reason(self) -> str | None:
        """`trouble` without the numbers, for reporting to the runtime."""
        return None if self._last_failure is None else self._trouble_text("")

    def _trouble_text(self, how_long: str) -> str:
        assert self._last_failure is not None
        refused = self._last_failure.refused
        what = "every publish refused" if refused else "publishes failing"
        text = f"{self._last_failure.detail} from {self._where}; {what}{how_long}"
        if self.breaker.state is not BreakerState.CLOSED:
            text += "; circuit open"
        if refused:
            text += "; packets kept and retried until it accepts: fix the stream or the subject"
        return text

    async def deliver(self, packet: StreamPacket) -> None:
        verdict = self._verdicts.pop(packet.packet_id, _UNJUDGED)
        if verdict is _UNJUDGED:  # not judged while delivering a batch: publish it now
            verdict = (await self._publish([packet]))[packet.packet_id]
        if verdict is not None:
            raise verdict

    async def deliver_batch(self, packets: list[StreamPacket]) -> None:
        """Publish the batch; raises when a packet failed, and the runtime then calls
        `deliver` for each packet, which answers from the verdicts kept here."""
        verdicts = await self._publish(packets)
        failed = [exc for exc in verdicts.values() if exc is not None]
        if failed:
            self._verdicts.update(verdicts)
            raise NatsError(
                f"{len(failed)} of {len(verdicts)} packets not delivered (first: {failed[0]})"
            )

    async def _publish(self, packets: Sequence[StreamPacket]) -> dict[str, Exception | None]:
        """Publish until every packet is delivered, refused (poison) or, without a durable
        inbox, out of retries; a verdict per packet id (None: delivered)."""
        verdicts: dict[str, Exception | None] = {}
        pending: list[_Outgoing] = []
        for packet in packets:
            try:
                subject = self._subject_of(packet)
            except NatsRejected as exc:
                verdicts[packet.packet_id] = exc
                continue
            headers = {MSG_ID: packet.idempotency_key}
            pending.append(_Outgoing(packet, subject, encode_packet(packet).encode(), headers))
        attempts = 0
        while pending:
            probe = await self._admitted()
            try:
                failed, answered = await self._round(pending, verdicts)
            except BaseException:
                if probe:  # cancelled: no verdict on the server
                    self.breaker.release()
                raise
            attempts += 1
            if answered:
                self._log_change(self.breaker.record_success(), "acks again")
                self._note_recovered()
            if not failed:
                break
            pending = [outgoing for outgoing, _ in failed]
            self._note_failure(failed[0][1])
            self._log_change(self.breaker.record_failure(), failed[0][1].detail)
            if not self.context.durable and attempts > self.config.max_retries:
                for outgoing, failure in failed:
                    verdicts[outgoing.packet.packet_id] = NatsGaveUp(
                        f"gave up publishing packet {outgoing.packet.idempotency_key!r} to "
                        f"{self._where} after {attempts} attempts (max_retries "
                        f"{self.config.max_retries}); last: {failure.detail}. Give the node a "
                        "durable inbox to retry until delivered, or raise max_retries",
                        attempts,
                    )
                break
            delay = backoff_s(
                attempts, self.config.retry_initial_s, self.config.retry_max_s, self._rng
            )
            if self.breaker.state is BreakerState.OPEN:
                delay = 0.0  # the open circuit's cooldown paces the next attempt instead
            await asyncio.sleep(delay)
        return verdicts

    async def _round(
        self, pending: list[_Outgoing], verdicts: dict[str, Exception | None]
    ) -> tuple[list[tuple[_Outgoing, _Failure]], bool]:
        """Publish `pending` once: the failures to retry, and whether the server answered
        anything (an ack, or a refusal about a packet). Verdicts go into `verdicts`."""
        try:
            js = await self._connected()
        except (OSError, TimeoutError, NatsError) as exc:
            failure = _Failure(f"cannot connect: {_words(exc)}", refused=False)
            return [(outgoing, failure) for outgoing in pending], False
        failed: list[tuple[_Outgoing, _Failure]] = []
        answered = False
        size = self.config.max_in_flight
        for start in range(0, len(pending), size):
            acks: list[tuple[_Outgoing, asyncio.Future[Any]]] = []
            for outgoing in pending[start : start + size]:
                try:
                    future = await js.publish(
                        outgoing.subject, outgoing.body, outgoing.headers, self.config.stream
                    )
                except Exception as exc:  # judged by _judge, which re-raises what it does not know
                    judged = self._judge(outgoing, exc)
                    if isinstance(judged, _Failure):
                        failed.append((outgoing, judged))
                    else:
                        verdicts[outgoing.packet.packet_id] = judged
                    continue
                acks.append((outgoing, future))
            if acks:
                await asyncio.wait([f for _, f in acks], timeout=self.config.ack_timeout_s)
            for outgoing, future in acks:
                if not future.done():
                    future.cancel()
                    timeout = self.config.ack_timeout_s
                    failed.append((outgoing, _Failure(f"no ack within {timeout:g} s", False)))
                    continue
                error = future.exception()
                if error is None:
                    answered = True
                    verdicts[outgoing.packet.packet_id] = None
                    if future.result().duplicate:
                        self.duplicate_acks += 1
                    continue
                judged = self._judge(outgoing, error)
                if isinstance(judged, _Failure):
                    failed.append((outgoing, judged))
                else:
                    answered = True
                    verdicts[outgoing.packet.packet_id] = judged
        return failed, answered

    def _judge(self, outgoing: _Outgoing, exc: BaseException) -> _Failure | NatsRejected:
        """What a failed publish means: a poison pill, or a failure to retry."""
        import nats.errors
        import nats.js.errors

        key = outgoing.packet.idempotency_key
        if isinstance(exc, nats.errors.MaxPayloadError) or (
            isinstance(exc, nats.js.errors.APIError) and exc.err_code == _TOO_LARGE
        ):
            return NatsRejected(
                f"{self._where} refused packet {key!r} ({len(outgoing.body)} bytes encoded): "
                f"{_words(exc)} (a poison pill: the server takes smaller messages; the node's "
                "on_error policy applies)"
            )
        if isinstance(exc, nats.js.errors.NoStreamResponseError):
            return _Failure(f"no JetStream stream captures subject {outgoing.subject!r}", True)
        if isinstance(exc, nats.js.errors.APIError):
            return _Failure(f"JetStream refused the publish: {_words(exc)}", True)
        if isinstance(exc, nats.errors.Error | OSError | TimeoutError):
            return _Failure(_words(exc), refused=False)
        raise exc

    async def _connected(self) -> AckedPublisher:
        """The publisher, connecting first when there is no live connection."""
        if self._nc is not None and self._js is not None and not self._nc.is_closed:
            return self._js
        from nats.aio.client import Client

        nc = Client()
        self._connect_error = None

        async def remember(exc: Exception) -> None:
            self._connect_error = exc  # reported through trouble, not logged per attempt

        async def quiet() -> None:
            return None

        try:
            # nats-py would retry the servers forever (the first connect included) with
            # max_reconnect_attempts=-1: a few attempts per server here, then the client
            # closes and the next round connects again, paced by the backoff and the breaker,
            # so the operator hears of a dead server within a second, not never.
            await asyncio.wait_for(
                nc.connect(
                    servers=self.config.servers(),
                    name=f"schnitzel {self.context.node_id}",
                    allow_reconnect=True,
                    max_reconnect_attempts=2,
                    reconnect_time_wait=0.25,  # type: ignore[arg-type]  # seconds; nats-py says int
                    connect_timeout=max(1, round(self.config.ack_timeout_s)),
                    error_cb=remember,
                    disconnected_cb=quiet,
                    reconnected_cb=quiet,
                    closed_cb=quiet,
                ),
                timeout=self.config.ack_timeout_s,
            )
        except Exception as exc:  # any failure to connect is a failed round
            with contextlib.suppress(Exception):  # the connect error is the one to tell
                await nc.close()
            cause = self._connect_error or exc
            raise NatsError(_words(cause)) from exc
        self._nc, self._js = nc, AckedPublisher(nc)
        return self._js

    def _subject_of(self, packet: StreamPacket) -> str:
        """The subject to publish `packet` on: `subject`, or what its `subject_field` holds."""
        if self.config.subject is not None:
            return self.config.subject
        field = self.config.subject_field
        assert field is not None
        root, *path = field.split(".")
        value: Any = getattr(packet, root)
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        if not isinstance(value, str) or not valid_subject(value):
            raise NatsRejected(
                f"packet {packet.idempotency_key!r}: {field} is {value!r}, not a subject to "
                "publish on (dot-separated tokens, no spaces or wildcards); the node's "
                "on_error policy applies"
            )
        return value

    async def _admitted(self) -> bool:
        """Wait while the circuit is open; True when the next round is the breaker's probe."""
        while (wait := self.breaker.admit()) > 0:
            await asyncio.sleep(wait)
        return self.breaker.state is BreakerState.HALF_OPEN

    def _note_recovered(self) -> None:
        if self._failing_since is not None:
            self._failing_since = self._last_failure = None
            self._failures_in_a_row = 0
        self.context.report_recovered()

    def _note_failure(self, failure: _Failure) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        self._failures_in_a_row += 1
        self._last_failure = failure
        reason = self.trouble_reason
        if reason is not None:
            self.context.report_trouble(reason)

    def _log_change(self, change: BreakerChange | None, detail: str) -> None:
        if change is None:
            return
        logger, node = self.context.logger, {"node": self.context.node_id}
        if change.new is BreakerState.CLOSED:
            logger.info("%s %s; circuit closed", self._where, detail, extra=node)
        elif change.old is BreakerState.CLOSED:
            logger.warning(
                "publishing to %s failed %d times in a row (last: %s); circuit open: nothing "
                "published for %.3g s, then one probe",
                self._where,
                change.failures,
                detail,
                change.cooldown_s,
                extra=node,
            )


def _words(exc: BaseException) -> str:
    """An exception in words: its message, else its type."""
    description = getattr(exc, "description", None)
    text = description or str(exc).strip()
    return text or type(exc).__name__
