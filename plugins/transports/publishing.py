"""What the transports pack's sinks share: publish a batch, await every ack, retry the rest.

A sink subclass says how one round publishes (`_round`: send what is pending, wait for the
acks, sort out what failed) and what a packet becomes on the wire (`_outgoing`). This base
runs the rounds: full-jitter backoff between them (`retry_initial_s` doubling up to
`retry_max_s`), the circuit breaker of the http sink (`breaker_failures` failed rounds in a
row open it; one probe per cooldown), `trouble` in words for the operator (reported with
`context.report_trouble`, ended by the first ack after), and, without a durable inbox, a
packet that fails after `max_retries` retries.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from schnitzel import (
    BreakerChange,
    BreakerState,
    CircuitBreaker,
    NodeContext,
    SchnitzelError,
    Sink,
    StreamPacket,
    backoff_s,
)
from schnitzel_plugins.transports.config import AckedSinkConfig

__all__ = ["AckedSink", "Failure", "Outgoing", "field_value"]

_UNJUDGED: Any = object()


@dataclass(frozen=True)
class Failure:
    """Why a publish failed, in words, and whether the server refused it (configuration)."""

    detail: str
    refused: bool


@dataclass(frozen=True)
class Outgoing:
    """One packet as it goes on the wire: where to, its encoded body, its idempotency key."""

    packet: StreamPacket
    destination: str
    body: bytes
    key: str


def field_value(packet: StreamPacket, field: str) -> object:
    """What `field` (`kind`, `source_id`, `meta.KEY[.KEY...]`, `payload.KEY[.KEY...]`) holds in
    `packet`; None where the path leads nowhere."""
    root, *path = field.split(".")
    value: Any = getattr(packet, root)
    for step in path:
        value = value.get(step) if isinstance(value, dict) else None
    return value


class AckedSink(Sink):
    """Base of a sink that publishes to a broker and counts a packet delivered only once the
    broker acknowledged it.

    Subclasses set `error` and `gave_up` (their pack's exceptions), `refusal_advice` (what
    the operator should fix when the broker refuses every publish), `_where` (the broker, as
    errors show it) and implement `_outgoing` and `_round`."""

    error: ClassVar[type[SchnitzelError]]
    """Raised by `deliver_batch` when packets of the batch were not delivered."""
    gave_up: ClassVar[type[SchnitzelError]]
    """A packet's verdict when its retries ran out (no durable inbox); takes (message, attempts)."""
    refusal_advice: ClassVar[str] = "fix the configuration"

    config: AckedSinkConfig

    def __init__(self, config: AckedSinkConfig, context: NodeContext) -> None:
        super().__init__(config, context)
        self.breaker = CircuitBreaker(
            config.breaker_failures, config.breaker_cooldown_s, config.breaker_max_cooldown_s
        )
        """The circuit breaker guarding this node's broker."""
        self._where = "?"
        self._rng = random.Random()
        self._failing_since: float | None = None
        self._failures_in_a_row = 0
        self._last_failure: Failure | None = None
        self._verdicts: dict[str, Exception | None] = {}
        """Verdicts `deliver_batch` reached, by packet id, for the runtime's `deliver` calls
        that follow when it raised."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} node={self.context.node_id!r} url={self._where!r}>"

    def _outgoing(self, packet: StreamPacket) -> Outgoing:
        """`packet` as it goes on the wire; raise the pack's rejection (a poison pill) when
        it cannot go at all."""
        raise NotImplementedError

    async def _round(
        self, pending: list[Outgoing], verdicts: dict[str, Exception | None]
    ) -> tuple[list[tuple[Outgoing, Failure]], bool]:
        """Publish `pending` once: the failures to retry, and whether the broker answered
        anything (an ack, or a refusal about a packet). Verdicts go into `verdicts`."""
        raise NotImplementedError

    @property
    def trouble(self) -> str | None:
        """Why the broker is not taking packets, in words, while it is not (None once it
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
            text += f"; packets kept and retried until it accepts: {self.refusal_advice}"
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
            raise self.error(
                f"{len(failed)} of {len(verdicts)} packets not delivered (first: {failed[0]})"
            )

    async def _publish(self, packets: Sequence[StreamPacket]) -> dict[str, Exception | None]:
        """Publish until every packet is delivered, refused (poison) or, without a durable
        inbox, out of retries; a verdict per packet id (None: delivered)."""
        verdicts: dict[str, Exception | None] = {}
        pending: list[Outgoing] = []
        for packet in packets:
            try:
                pending.append(self._outgoing(packet))
            except self.error as exc:
                verdicts[packet.packet_id] = exc
        attempts = 0
        while pending:
            probe = await self._admitted()
            try:
                failed, answered = await self._round(pending, verdicts)
            except BaseException:
                if probe:  # cancelled: no verdict on the broker
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
                    verdicts[outgoing.packet.packet_id] = self.gave_up(
                        f"gave up publishing packet {outgoing.key!r} to {self._where} after "
                        f"{attempts} attempts (max_retries {self.config.max_retries}); last: "
                        f"{failure.detail}. Give the node a durable inbox to retry until "
                        "delivered, or raise max_retries",
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

    def _note_failure(self, failure: Failure) -> None:
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


def words(exc: BaseException) -> str:
    """An exception in words: its message, else its type."""
    description = getattr(exc, "description", None)
    text = description or str(exc).strip()
    return text or type(exc).__name__
