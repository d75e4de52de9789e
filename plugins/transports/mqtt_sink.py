"""`mqtt` sink: publishes packets with QoS 1, each delivered once the broker's PUBACK is back.

Each packet goes as its portable JSON encoding (`encode_packet`, which holds its idempotency
key) on `topic` (or the topic its `topic_field` holds); with MQTT 5 the key also travels as
the user property `idempotency-key`, so a subscriber reads it without decoding the payload.

A micro-batch is published at once, paho keeping up to `max_in_flight` publishes awaiting
their PUBACK; the batch is delivered when every PUBACK is back. Outcomes of one publish:

- PUBACK with a success reason: delivered. `no matching subscribers` (0x10) is a success for
  MQTT (the broker took the message and had no one to give it to); counted as
  `no_subscribers`.
- no PUBACK within `ack_timeout_s`, no connection, the link dropping: the client is dropped
  (so it does not send its copies again on its own) and the round retried with a new one,
  the packets staying in the durable inbox meanwhile.
- PUBACK refusing every publish (not authorized, quota exceeded, unspecified error): the
  broker is unavailable to this node, retried the same way; `trouble` says why.
- PUBACK refusing this packet (topic name invalid, payload format invalid, packet too large),
  or a topic_field that holds no topic: a poison pill (`MqttRejected`), `on_error` applies.

Retries, backoff, the circuit breaker and `trouble` are the nats sink's (`AckedSink`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, ClassVar

from schnitzel import NodeContext, PluginConfig, StreamPacket, encode_packet
from schnitzel_plugins.transports.errors import MqttError, MqttGaveUp, MqttRejected
from schnitzel_plugins.transports.extras import require_paho
from schnitzel_plugins.transports.mqtt_config import MqttSinkConfig, valid_topic
from schnitzel_plugins.transports.mqtt_link import (
    connect_options,
    new_client,
    publish_properties,
)
from schnitzel_plugins.transports.publishing import (
    AckedSink,
    Failure,
    Outgoing,
    field_value,
    words,
)

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt
    from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["MqttSink", "MqttSinkConfig"]

_NO_SUBSCRIBERS = 0x10
_UNSUPPORTED_PROTOCOL = 0x84
_ABOUT_THE_PACKET = {0x90, 0x95, 0x99}
"""PUBACK reasons about one message: topic name invalid, packet too large, payload format
invalid. Any other failure reason refuses every publish alike."""


class _Connection:
    """One connected client and the PUBACKs its publishes await, by message id."""

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self.acks: dict[int, asyncio.Future[ReasonCode]] = {}
        self.lost: str | None = None
        """Why the link dropped, once it did: every publish still waiting then fails."""

    def drop(self, why: str) -> None:
        self.lost = why
        for future in self.acks.values():
            future.cancel()
        self.acks.clear()


class MqttSink(AckedSink):
    """Publishes packets to an MQTT broker with QoS 1; delivered once its PUBACK is back.

    The key goes in the encoded packet and, with MQTT 5, as a user property."""

    name: ClassVar[str] = "mqtt"
    Config: ClassVar[type[PluginConfig]] = MqttSinkConfig
    requires_portable: ClassVar[bool] = True
    error = MqttError
    gave_up = MqttGaveUp
    refusal_advice = "fix what the broker says (permissions, limits, protocol) or the topic"

    config: MqttSinkConfig

    def __init__(self, config: MqttSinkConfig, context: NodeContext) -> None:
        super().__init__(config, context)
        self._where = config.broker().shown
        self._link: _Connection | None = None
        self.no_subscribers = 0
        """PUBACKs that said no one subscribes to the topic (the broker kept nothing)."""

    def stats(self) -> dict[str, int]:
        """For the run report's `plugin_stats`: PUBACKs that said `no matching subscribers`."""
        return {"no_subscribers": self.no_subscribers}

    async def open(self) -> None:
        require_paho(self.context.node_id)
        # Connected by the first delivery, as the nats sink: a broker that is down at start
        # delays delivery (the packets wait) instead of failing the run.

    async def close(self) -> None:
        await self._hang_up()

    def _outgoing(self, packet: StreamPacket) -> Outgoing:
        key = packet.idempotency_key
        return Outgoing(packet, self._topic_of(packet), encode_packet(packet).encode(), key)

    def _topic_of(self, packet: StreamPacket) -> str:
        if self.config.topic is not None:
            return self.config.topic
        field = self.config.topic_field
        assert field is not None
        value = field_value(packet, field)
        if not isinstance(value, str) or not valid_topic(value):
            raise MqttRejected(
                f"packet {packet.idempotency_key!r}: {field} is {value!r}, not a topic to "
                "publish on (non-empty, no wildcards + #); the node's on_error policy applies"
            )
        return value

    async def _round(
        self, pending: list[Outgoing], verdicts: dict[str, Exception | None]
    ) -> tuple[list[tuple[Outgoing, Failure]], bool]:
        try:
            link = await self._connected()
        except (OSError, TimeoutError, MqttError) as exc:
            refused = isinstance(exc, MqttError)
            failure = Failure(f"cannot connect: {words(exc)}", refused=refused)
            return [(outgoing, failure) for outgoing in pending], False
        import paho.mqtt.client as mqtt

        v5 = self.config.protocol == "5"
        acks: list[tuple[Outgoing, asyncio.Future[ReasonCode]]] = []
        failed: list[tuple[Outgoing, Failure]] = []
        loop = asyncio.get_running_loop()
        for outgoing in pending:
            properties = publish_properties(outgoing.key) if v5 else None
            try:
                info = link.client.publish(
                    outgoing.destination, outgoing.body, qos=1, properties=properties
                )
            except ValueError as exc:  # larger than MQTT allows, or a topic paho refuses
                verdicts[outgoing.packet.packet_id] = self._rejected(outgoing, words(exc))
                continue
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                why = link.lost or mqtt.error_string(info.rc)
                failed.append((outgoing, Failure(why, refused=False)))
                continue
            # The PUBACK is handed over by call_soon_threadsafe, so it is never resolved
            # before this future exists.
            future: asyncio.Future[ReasonCode] = loop.create_future()
            link.acks[info.mid] = future
            acks.append((outgoing, future))
        if acks:
            await asyncio.wait([f for _, f in acks], timeout=self.config.ack_timeout_s)
        answered = False
        for outgoing, future in acks:
            if future.cancelled():  # the link dropped
                failed.append((outgoing, Failure(link.lost or "connection lost", False)))
                continue
            if not future.done():
                future.cancel()
                failure = Failure(f"no PUBACK within {self.config.ack_timeout_s:g} s", False)
                failed.append((outgoing, failure))
                continue
            answered = True
            reason = future.result()
            if not reason.is_failure:
                verdicts[outgoing.packet.packet_id] = None
                if reason.value == _NO_SUBSCRIBERS:
                    self.no_subscribers += 1
            elif reason.value in _ABOUT_THE_PACKET:
                verdicts[outgoing.packet.packet_id] = self._rejected(outgoing, str(reason))
            else:
                failed.append((outgoing, Failure(f"PUBACK {reason}", refused=True)))
        if any(not f.refused for _, f in failed):
            # Dropped so it does not send its copies again by itself; the next round publishes
            # what failed on a new connection, with the same keys.
            await self._hang_up()
        return failed, answered

    def _rejected(self, outgoing: Outgoing, why: str) -> MqttRejected:
        return MqttRejected(
            f"{self._where} refused packet {outgoing.key!r} ({len(outgoing.body)} bytes "
            f"encoded) on topic {outgoing.destination!r}: {why} (a poison pill: the broker "
            "takes other packets; the node's on_error policy applies)"
        )

    async def _connected(self) -> _Connection:
        """The live connection, connecting first when there is none."""
        link = self._link
        if link is not None and link.lost is None:
            return link
        await self._hang_up()
        client = new_client(self.config, self.context.node_id, manual_ack=False, reconnect=False)
        client.max_inflight_messages_set(self.config.max_in_flight)
        link = _Connection(client)
        loop = asyncio.get_running_loop()
        connack: asyncio.Future[ReasonCode] = loop.create_future()

        def on_connect(_c: object, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
            loop.call_soon_threadsafe(_settle, connack, reason)

        def on_disconnect(
            _c: object, _u: object, _f: object, reason: ReasonCode, _p: object
        ) -> None:
            loop.call_soon_threadsafe(link.drop, f"connection lost ({reason})")
            loop.call_soon_threadsafe(_settle, connack, reason)

        def on_publish(_c: object, _u: object, mid: int, reason: ReasonCode, _p: object) -> None:
            loop.call_soon_threadsafe(_settle_ack, link, mid, reason)

        client.on_connect, client.on_disconnect, client.on_publish = (
            on_connect,
            on_disconnect,
            on_publish,
        )
        broker = self.config.broker()
        timeout = self.config.ack_timeout_s
        try:
            await asyncio.wait_for(
                asyncio.to_thread(
                    client.connect, broker.host, broker.port, **connect_options(self.config)
                ),
                timeout,
            )
            client.loop_start()
            reason = await asyncio.wait_for(connack, timeout)
        except BaseException:
            await _stop(client)
            raise
        if reason.is_failure:
            await _stop(client)
            hint = ""
            if reason.value == _UNSUPPORTED_PROTOCOL:
                hint = " (it speaks no MQTT 5: set protocol: '3.1.1')"
            raise MqttError(f"the broker refused the connection: {reason}{hint}")
        self._link = link
        return link

    async def _hang_up(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.drop("connection closed")
            await _stop(link.client)


def _settle(future: asyncio.Future[ReasonCode], reason: ReasonCode) -> None:
    if not future.done():
        future.set_result(reason)


def _settle_ack(link: _Connection, mid: int, reason: ReasonCode) -> None:
    future = link.acks.pop(mid, None)
    if future is not None and not future.done():
        future.set_result(reason)


async def _stop(client: mqtt.Client) -> None:
    """Disconnect and end the client's network thread (joined off the event loop)."""
    with contextlib.suppress(Exception):  # already gone: nothing to hang up
        client.disconnect()
    await asyncio.to_thread(client.loop_stop)
