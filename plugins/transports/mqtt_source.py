"""`mqtt` source: subscribes with QoS 1 in a persistent session, acknowledging once safe.

The client keeps a session on the broker (MQTT 5 `clean_start=False` with
`session_expiry_s`; `clean_session=False` with 3.1.1), so what arrives while the runtime is
away waits on the broker. paho-mqtt's manual acks hold each PUBACK back until the runtime
reports the message safe downstream (`checkpoint`: delivered by a sink, or committed by a
durable inbox; docs/contracts/delivery.md): the broker keeps a message until its PUBACK, and
sends it again on the next connection of the session when the runtime died or the link
dropped first. PUBACKs go out in the order the messages came, as MQTT requires.

A PUBACK belongs to the connection its message came on: a message from a connection that has
since dropped is not acknowledged on the new one (its packet identifier may name another
message there); the broker sends it again on the new connection, and that copy is acked.
Such copies arrive twice downstream, under the same key when the publisher gave one.

At close the source waits, bounded, until the broker has read its last PUBACKs; a broker
that had not is named in a warning with how many it may send again (docs/transports.md).

At most `receive_maximum` messages (MQTT 5; the broker's own in-flight limit with 3.1.1)
come before their PUBACK, so at most that many are held beyond what downstream took.

A message that is an encoded packet (what the `mqtt` and `nats` sinks publish) becomes that
packet again, with its key (the `idempotency-key` user property when present). Any other
JSON value becomes the payload of a packet of kind `kind`, `source_id` the node id,
`meta.topic` its topic, key the user property or else `<node id>:<start time>:<n>` (unique,
but a copy the broker sends again gets a new one). A message that is not JSON is a bad
record for the node's `on_error`; once that is dealt with, it is acknowledged.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from schnitzel import (
    ANY_KIND,
    BadRecord,
    CheckpointFile,
    NodeContext,
    PacketDecodeError,
    PayloadProfile,
    PluginConfig,
    Source,
    StreamPacket,
    is_encoded_packet,
    packet_from_dict,
    read_json,
)
from schnitzel_plugins.transports.extras import require_paho
from schnitzel_plugins.transports.mqtt_config import MqttSourceConfig
from schnitzel_plugins.transports.mqtt_link import (
    client_id_of,
    connect_options,
    key_property,
    new_client,
)

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt
    from paho.mqtt.matcher import MQTTMatcher
    from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["MqttSource", "MqttSourceConfig"]

_FLUSH_TOPIC = "schnitzel/flush/never-subscribed"
_FLUSH_S = 4.0
"""How long `close` waits for the broker to have read the last PUBACKs: the runtime allows a
close 5 s, the rest is for the DISCONNECT and the end of paho's thread. A broker slower than
that (mosquitto saving its store on every change reads a few hundred PUBACKs a second, fewer
on a busy machine) sends the messages of the PUBACKs it had not read again on the session's
next connection when that comes before it read them: it drops the old connection unread."""


class MqttSource(Source):
    """Subscribes to `topic` with QoS 1 in a persistent session; acknowledged once safe.

    Each message is acknowledged (PUBACK) once it is safe downstream."""

    name: ClassVar[str] = "mqtt"
    Config: ClassVar[type[PluginConfig]] = MqttSourceConfig
    emits = ANY_KIND  # restored packets keep the kind they were published with
    emits_profile = PayloadProfile.JSON_PORTABLE
    reports_bad_records: ClassVar[bool] = True

    config: MqttSourceConfig

    def __init__(self, config: MqttSourceConfig, context: NodeContext) -> None:
        super().__init__(config, context)
        self._where = config.broker().shown
        self._client: mqtt.Client | None = None
        self._connection = 0
        """Which connection this is (counted up by each CONNACK, on paho's thread)."""
        self._probes: dict[int, int] = {}
        """Message id of each UNSUBSCRIBE of `_FLUSH_TOPIC` not answered yet: how many
        PUBACKs had gone out before it. The broker answers one only once it read everything
        sent before it on the connection."""
        self._confirmed = 0
        """PUBACKs the broker has read (those before the newest answered probe)."""
        self._gone = asyncio.Event()
        """Set once the DISCONNECT of `close` went out."""
        self._arrived: asyncio.Queue[tuple[int, mqtt.MQTTMessage]] = asyncio.Queue()
        self._held: deque[tuple[StreamPacket | BadRecord, int, int]] = deque()
        """What was yielded and not yet acknowledged, in order: (item, connection, mid)."""
        self._started = time.time_ns() // 1_000_000
        self._count = 0
        self._topic_filter: MQTTMatcher | None = None
        """Matches the topics `topic` subscribes to (made at open: paho is imported then)."""
        self._session_file: CheckpointFile | None = None
        """Says an earlier run had a session on this broker under this client id."""
        self._had_session = False
        """A session is expected on the broker: an earlier run, or connection, made it."""
        self._foreign_told = False
        """The warning about messages of another topic (a kept old subscription) was given."""
        self.acked = 0
        """Messages acknowledged so far."""
        self.sent_again = 0
        """Messages that became safe after their connection dropped: the broker sends them
        again, and those copies are acknowledged."""

    @property
    def unconfirmed(self) -> int:
        """PUBACKs sent that the broker has not yet shown it read: after a clean stop, at most
        that many messages come again on the session's next connection."""
        return self.acked - self._confirmed

    def stats(self) -> dict[str, int]:
        """For the run report's `plugin_stats`: messages acknowledged, held unacknowledged,
        safe but left to the broker to send again (their connection had dropped), and
        acknowledged but not known to be read by the broker (`unconfirmed`)."""
        return {
            "acked": self.acked,
            "held": len(self._held),
            "sent_again": self.sent_again,
            "unconfirmed": self.unconfirmed,
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} node={self.context.node_id!r} url={self._where!r}>"

    async def open(self) -> None:
        require_paho(self.context.node_id)
        from paho.mqtt.matcher import MQTTMatcher

        self._topic_filter = MQTTMatcher()  # built once: paho's topic_matches_sub builds one a call
        self._topic_filter[_filter_of(self.config.topic)] = True
        client_id = client_id_of(self.config, self.context.node_id)
        self._session_file = CheckpointFile.for_node(
            self.context, f"mqtt session {self._where} {client_id}"
        )
        saved, warning = self._session_file.load()
        if warning:
            self.context.event("warning", warning)
        self._had_session = saved is not None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        # The PUBACKs the last checkpoint queued must be read by the broker before the
        # session is let go: a broker that takes the session's next connection (the next
        # run) first drops this one unread and sends those messages again. The probe's
        # answer says the broker read everything before it. Whatever happens, paho's thread
        # writes every queued packet, the DISCONNECT last, before loop_stop lets it end.
        if client.is_connected():
            self._probe(client)
            await _until(lambda: self.unconfirmed == 0, _FLUSH_S)
        if self.unconfirmed:
            unread = self.unconfirmed
            self.context.event(
                "warning",
                f"{self._where} had not read the last {unread} acknowledgements (PUBACK) "
                f"{_FLUSH_S:g} s into the close (it is slow, or gone): it may send those "
                f"{unread} messages again on the session's next connection (written twice "
                "downstream, under the same key when the publisher gave one)",
            )
        if client.is_connected():
            client.disconnect()
            await _until(self._gone.is_set, 0.5)
        await asyncio.to_thread(client.loop_stop)

    async def packets(self) -> AsyncIterator[StreamPacket | BadRecord]:
        self._client = self._start()
        while True:
            connection, message = await self._arrived.get()
            item = self._item_of(message)
            self._held.append((item, connection, message.mid))
            yield item

    def checkpoint(self, upto: StreamPacket | BadRecord) -> None:
        """PUBACK every held message up to and including `upto`, in the order they came."""
        if self._client is None or not any(item is upto for item, _, _ in self._held):
            return
        current, acked = self._connection, self.acked
        while self._held:
            item, connection, mid = self._held.popleft()
            if connection == current:
                self._client.ack(mid, 1)
                self.acked += 1
            else:
                self.sent_again += 1
            if item is upto:
                break
        if self.acked > acked:
            self._probe(self._client)

    def _probe(self, client: mqtt.Client) -> None:
        """Ask the broker to answer once it read every PUBACK sent so far (an UNSUBSCRIBE of
        a topic never subscribed: answered in order, changes nothing)."""
        _rc, mid = client.unsubscribe(_FLUSH_TOPIC)
        if mid is not None:  # None: not connected, the broker answers nothing
            self._probes[mid] = self.acked

    def _answered(self, mid: int) -> None:
        """A probe came back: the PUBACKs sent before it were read."""
        read = self._probes.pop(mid, None)
        if read is not None and read > self._confirmed:
            self._confirmed = read

    def _start(self) -> mqtt.Client:
        """Make the client, and start its thread: it connects, subscribes, reconnects."""
        config, loop = self.config, asyncio.get_running_loop()
        client = new_client(config, self.context.node_id, manual_ack=True, reconnect=True)
        client.reconnect_delay_set(1, 10)
        client.connect_timeout = config.connect_timeout_s
        topic, where = config.topic, self._where
        how = _subscription(config.protocol)

        def on_connect(
            c: mqtt.Client, _u: object, flags: Any, reason: ReasonCode, _p: object
        ) -> None:
            if reason.is_failure:
                loop.call_soon_threadsafe(
                    self.context.report_trouble,
                    f"{where} refused the connection: {reason}{_hint(reason)}; retrying",
                )
                return
            self._connection += 1
            loop.call_soon_threadsafe(self._connected, bool(flags.session_present))
            # On every connection, a kept session's too: one whose SUBSCRIBE the broker never
            # took (a run that ended between CONNACK and SUBACK) would carry nothing for ever.
            c.subscribe(topic, **how)
            loop.call_soon_threadsafe(self.context.report_recovered)

        def on_subscribe(
            _c: object, _u: object, _mid: int, reasons: list[ReasonCode], _p: object
        ) -> None:
            refused = [r for r in reasons if r.is_failure]
            if refused:
                loop.call_soon_threadsafe(
                    self.context.report_trouble,
                    f"{where} refused the subscription to {topic!r}: {refused[0]}",
                )

        def on_connect_fail(_c: object, _u: object) -> None:
            loop.call_soon_threadsafe(
                self.context.report_trouble, f"cannot connect to {where}; retrying"
            )

        def on_disconnect(
            _c: object, _u: object, _f: object, reason: ReasonCode, _p: object
        ) -> None:
            if self._client is None:  # our own, at close
                loop.call_soon_threadsafe(self._gone.set)
            else:
                loop.call_soon_threadsafe(
                    self.context.report_trouble,
                    f"connection to {where} lost ({reason}); reconnecting",
                )

        def on_unsubscribe(_c: object, _u: object, mid: int, *_rest: object) -> None:
            loop.call_soon_threadsafe(self._answered, mid)

        def on_message(_c: object, _u: object, message: mqtt.MQTTMessage) -> None:
            loop.call_soon_threadsafe(self._arrived.put_nowait, (self._connection, message))

        client.on_connect, client.on_subscribe = on_connect, on_subscribe
        client.on_connect_fail, client.on_disconnect = on_connect_fail, on_disconnect
        client.on_message, client.on_unsubscribe = on_message, on_unsubscribe
        broker = config.broker()
        options = connect_options(config, receive_maximum=config.receive_maximum)
        client.connect_async(broker.host, broker.port, **options)
        client.loop_start()
        return client

    def _connected(self, session_present: bool) -> None:
        """Tell the operator when the broker had no session where one was expected: what was
        published on `topic` while this client was away was kept for nobody (lost); note,
        for the next run, that a session was made."""
        if not session_present and self._had_session:
            client_id = client_id_of(self.config, self.context.node_id)
            made = "earlier in this run" if self._connection > 1 else "by an earlier run"
            self.context.event(
                "warning",
                f"{self._where} had no session for client_id {client_id!r} (one was made "
                f"{made}): the broker restarted without persistence, or the session expired "
                f"(session_expiry_s) or was removed. Messages published on {self.config.topic!r} "
                "while this client was away were kept for nobody: lost. Make the broker keep "
                "sessions (docs/transports.md, 'A broker that does not lose') and set "
                "session_expiry_s above the longest time the runtime may be away",
            )
        if not self._had_session and self._session_file is not None:
            self._had_session = True
            try:
                client_id = client_id_of(self.config, self.context.node_id)
                record = {"version": 1, "broker": self._where, "client_id": client_id}
                self._session_file.save({**record, "since": time.time()})
            except OSError as exc:
                self.context.event(
                    "warning",
                    f"cannot note the session in {str(self._session_file.path)!r} ({exc}): a "
                    "next run cannot tell whether the broker lost it",
                )

    def _item_of(self, message: mqtt.MQTTMessage) -> StreamPacket | BadRecord:
        self._count += 1
        key = key_property(message)
        where = f"topic {message.topic!r}"
        assert self._topic_filter is not None
        if next(self._topic_filter.iter_match(message.topic), None) is None:
            return self._foreign(message, where, key)
        try:
            obj: Any = read_json(message.payload, strict=False)
        except ValueError as exc:  # not UTF-8, not JSON, nested too deep, too many digits
            return BadRecord(f"not JSON: {exc}", where=where, raw=bytes(message.payload), key=key)
        if isinstance(obj, dict) and is_encoded_packet(obj):
            try:
                packet = packet_from_dict(obj)
            except PacketDecodeError as exc:
                return BadRecord(str(exc), where=where, raw=bytes(message.payload), key=key)
            if key is not None and packet.idempotency_key != key:
                packet = packet.evolve(meta={**packet.meta, "idempotency_key": key})
            return packet
        node = self.context.node_id
        return StreamPacket.new(
            self.config.kind,
            node,
            self._count,
            payload=obj,
            meta={
                "idempotency_key": key or f"{node}:{self._started}:{self._count}",
                "topic": message.topic,
            },
        )

    def _foreign(self, message: mqtt.MQTTMessage, where: str, key: str | None) -> BadRecord:
        """A message on a topic `topic` does not match: the broker's kept session holds a
        subscription of an earlier graph (its `topic` changed, not its `client_id`). A bad
        record for `on_error`, acknowledged once dealt with; the operator told once."""
        config = self.config
        client_id = client_id_of(config, self.context.node_id)
        if not self._foreign_told:
            self._foreign_told = True
            self.context.event(
                "warning",
                f"{self._where} sends messages on {message.topic!r}, which `topic` "
                f"{config.topic!r} does not match: the session it keeps for client_id "
                f"{client_id!r} still holds a subscription of an earlier graph. They go to "
                "on_error, until the session expires; to end it, give the node a new "
                "client_id (or remove the session on the broker)",
            )
        return BadRecord(
            f"topic {message.topic!r} does not match `topic` {config.topic!r} (the session of "
            f"client_id {client_id!r} keeps an old subscription)",
            where=where,
            raw=bytes(message.payload),
            key=key,
        )


def _filter_of(topic: str) -> str:
    """The topic filter messages match: a shared subscription's (`$share/<group>/<filter>`)."""
    if topic.startswith("$share/"):
        parts = topic.split("/", 2)
        if len(parts) == 3:
            return parts[2]
    return topic


def _subscription(protocol: str) -> dict[str, Any]:
    """`subscribe`'s options: QoS 1; with MQTT 5 a kept session's subscription, subscribed
    again, gets no retained message again (retain handling 1: only for a new subscription).
    3.1.1 has no such option: its broker sends a retained message again on each connection
    (paho takes only `qos` then)."""
    if protocol != "5":
        return {"qos": 1}
    from paho.mqtt.subscribeoptions import SubscribeOptions

    return {
        "options": SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
    }


def _hint(reason: ReasonCode) -> str:
    """What to do about a refused connection, where it is not obvious."""
    if reason.value == 0x84:  # unsupported protocol version
        return " (it speaks no MQTT 5: set protocol: '3.1.1')"
    return ""


async def _until(condition: Callable[[], bool], timeout_s: float) -> None:
    """Wait until `condition()` holds (paho's thread makes it so), at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
