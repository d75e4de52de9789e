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
from typing import TYPE_CHECKING, Any, ClassVar

from schnitzel import NodeContext, PluginConfig, StreamPacket, encode_packet
from schnitzel_plugins.transports.acks import AckedPublisher
from schnitzel_plugins.transports.config import NatsSinkConfig, safe_nats_url, valid_subject
from schnitzel_plugins.transports.errors import NatsError, NatsGaveUp, NatsRejected
from schnitzel_plugins.transports.extras import require_nats
from schnitzel_plugins.transports.publishing import (
    AckedSink,
    Failure,
    Outgoing,
    field_value,
    words,
)

if TYPE_CHECKING:
    from nats.aio.client import Client

__all__ = ["NatsSink", "NatsSinkConfig"]

MSG_ID = "Nats-Msg-Id"
_TOO_LARGE = 10054
"""JetStream's err_code for a message larger than the stream's max_msg_size."""


class NatsSink(AckedSink):
    """Publishes packets to NATS JetStream, Nats-Msg-Id = idempotency key, acked by the server.

    A packet is delivered once the server's ack (or duplicate ack) is back; failures are
    retried, a packet the server cannot take is refused (`on_error`)."""

    name: ClassVar[str] = "nats"
    Config: ClassVar[type[PluginConfig]] = NatsSinkConfig
    requires_portable: ClassVar[bool] = True
    error = NatsError
    gave_up = NatsGaveUp
    refusal_advice = "fix the stream or the subject"

    config: NatsSinkConfig

    def __init__(self, config: NatsSinkConfig, context: NodeContext) -> None:
        super().__init__(config, context)
        self.duplicate_acks = 0
        """Acks that said `duplicate`: the stream already held the message (a retry or a
        replay of a packet it had taken)."""
        self._where = safe_nats_url(config.url)
        self._nc: Client | None = None
        self._js: AckedPublisher | None = None
        self._connect_error: BaseException | None = None

    def stats(self) -> dict[str, int]:
        """For the run report's `plugin_stats`: acks that said `duplicate`."""
        return {"duplicate_acks": self.duplicate_acks}

    async def open(self) -> None:
        require_nats(self.context.node_id)
        # The connection is made by the first delivery and remade when lost, so a server
        # that is down at start delays delivery (the packets wait) instead of failing the run.

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            await nc.close()

    def _outgoing(self, packet: StreamPacket) -> Outgoing:
        key = packet.idempotency_key
        return Outgoing(packet, self._subject_of(packet), encode_packet(packet).encode(), key)

    async def _round(
        self, pending: list[Outgoing], verdicts: dict[str, Exception | None]
    ) -> tuple[list[tuple[Outgoing, Failure]], bool]:
        """Publish `pending` once: the failures to retry, and whether the server answered
        anything (an ack, or a refusal about a packet). Verdicts go into `verdicts`."""
        try:
            js = await self._connected()
        except (OSError, TimeoutError, NatsError) as exc:
            failure = Failure(f"cannot connect: {words(exc)}", refused=False)
            return [(outgoing, failure) for outgoing in pending], False
        failed: list[tuple[Outgoing, Failure]] = []
        answered = False
        size = self.config.max_in_flight
        for start in range(0, len(pending), size):
            acks: list[tuple[Outgoing, asyncio.Future[Any]]] = []
            for outgoing in pending[start : start + size]:
                try:
                    headers = {MSG_ID: outgoing.key}
                    future = await js.publish(
                        outgoing.destination, outgoing.body, headers, self.config.stream
                    )
                except Exception as exc:  # judged by _judge, which re-raises what it does not know
                    judged = self._judge(outgoing, exc)
                    if isinstance(judged, Failure):
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
                    failed.append((outgoing, Failure(f"no ack within {timeout:g} s", False)))
                    continue
                error = future.exception()
                if error is None:
                    answered = True
                    verdicts[outgoing.packet.packet_id] = None
                    if future.result().duplicate:
                        self.duplicate_acks += 1
                    continue
                judged = self._judge(outgoing, error)
                if isinstance(judged, Failure):
                    failed.append((outgoing, judged))
                else:
                    answered = True
                    verdicts[outgoing.packet.packet_id] = judged
        return failed, answered

    def _judge(self, outgoing: Outgoing, exc: BaseException) -> Failure | NatsRejected:
        """What a failed publish means: a poison pill, or a failure to retry."""
        import nats.errors
        import nats.js.errors

        key = outgoing.key
        if isinstance(exc, nats.errors.MaxPayloadError) or (
            isinstance(exc, nats.js.errors.APIError) and exc.err_code == _TOO_LARGE
        ):
            return NatsRejected(
                f"{self._where} refused packet {key!r} ({len(outgoing.body)} bytes encoded): "
                f"{words(exc)} (a poison pill: the server takes smaller messages; the node's "
                "on_error policy applies)"
            )
        if isinstance(exc, nats.js.errors.NoStreamResponseError):
            return Failure(f"no JetStream stream captures subject {outgoing.destination!r}", True)
        if isinstance(exc, nats.js.errors.APIError):
            return Failure(f"JetStream refused the publish: {words(exc)}", True)
        if isinstance(exc, nats.errors.Error | OSError | TimeoutError):
            return Failure(words(exc), refused=False)
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
            raise NatsError(words(cause)) from exc
        self._nc, self._js = nc, AckedPublisher(nc)
        return self._js

    def _subject_of(self, packet: StreamPacket) -> str:
        """The subject to publish `packet` on: `subject`, or what its `subject_field` holds."""
        if self.config.subject is not None:
            return self.config.subject
        field = self.config.subject_field
        assert field is not None
        value = field_value(packet, field)
        if not isinstance(value, str) or not valid_subject(value):
            raise NatsRejected(
                f"packet {packet.idempotency_key!r}: {field} is {value!r}, not a subject to "
                "publish on (dot-separated tokens, no spaces or wildcards); the node's "
                "on_error policy applies"
            )
        return value
