"""`nats` source: a JetStream pull consumer, each message acknowledged once it is safe.

Runtimes with the same `consumer` on one `stream` share its messages: the durable pull
consumer hands each message to one of them, and one that dies holding messages has them
redelivered to the others after `ack_wait_s`. So the source acknowledges a message only when
the runtime reports it safe (`checkpoint`: delivered by a sink, or committed by a durable
inbox; docs/contracts/delivery.md), one explicit ack per message, never "ack all" (the other
workers' messages are not this worker's to ack). A message held longer than half its
`ack_wait_s` (a backlog downstream) is kept with `in_progress`, so it is not handed to another
worker while this one still has it.

It fetches `batch` messages at a time, and fetches again only once the runtime has taken
the last one (the runtime takes a packet only when downstream has room for it), so at most one
fetch is held beyond what downstream took.

A message that is an encoded packet (what the `nats` sink publishes) becomes that packet
again, keeping the publisher's idempotency key (`Nats-Msg-Id`). Any other JSON object becomes
the payload of a packet of kind `kind`, `source_id` the node id, `seq` the stream sequence,
key `Nats-Msg-Id` or else `<stream>:<stream sequence>`. A message that is not JSON, and one
delivered for the `max_deliver`-th time (its earlier deliveries never became safe: a worker
crashed on it, or it waited too long), are bad records for the node's `on_error` (skip,
dead_letter, stop); once that is dealt with, the message is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar

from schnitzel import (
    ANY_KIND,
    BadRecord,
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
from schnitzel_plugins.transports.config import NatsSourceConfig, safe_nats_url
from schnitzel_plugins.transports.errors import NatsError
from schnitzel_plugins.transports.extras import require_nats

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js.api import ConsumerInfo

__all__ = ["NatsSource", "NatsSourceConfig"]

MSG_ID = "Nats-Msg-Id"


class NatsSource(Source):
    """Consumes a JetStream stream through a shared durable pull consumer, acking when safe.

    Every runtime naming the same `consumer` shares the stream's messages; each message is
    acknowledged once it is safe downstream."""

    name: ClassVar[str] = "nats"
    Config: ClassVar[type[PluginConfig]] = NatsSourceConfig
    emits = ANY_KIND  # restored packets keep the kind they were published with
    emits_profile = PayloadProfile.JSON_PORTABLE
    reports_bad_records: ClassVar[bool] = True

    config: NatsSourceConfig

    def __init__(self, config: NatsSourceConfig, context: NodeContext) -> None:
        super().__init__(config, context)
        self._where = safe_nats_url(config.url)
        self._nc: Client | None = None
        self._held: deque[tuple[StreamPacket | BadRecord, Msg, float]] = deque()
        """What was yielded and not yet acknowledged, in order, with when it was fetched."""
        self._acking: set[asyncio.Task[None]] = set()
        self._keeper: asyncio.Task[None] | None = None
        self._ack_wait_s = config.ack_wait_s
        self._max_deliver = config.max_deliver
        """The consumer's own ack_wait and max_deliver (-1: unlimited), read when bound."""
        self.acked = 0
        """Messages acknowledged so far."""

    def stats(self) -> dict[str, int]:
        """For the run report's `plugin_stats`: messages acknowledged, and held unacknowledged."""
        return {"acked": self.acked, "held": len(self._held)}

    async def open(self) -> None:
        require_nats(self.context.node_id)

    async def close(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
        await self._acks_sent()
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            await nc.close()

    async def packets(self) -> AsyncIterator[StreamPacket | BadRecord]:
        subscription = await self._subscribe()
        while True:
            try:
                messages = await subscription.fetch(
                    self.config.batch, timeout=self.config.fetch_timeout_s
                )
            except TimeoutError:  # nothing to fetch: nats-py raises its own or asyncio's
                continue
            self.context.report_recovered()
            for message in messages:
                item = self._item_of(message)
                self._held.append((item, message, time.monotonic()))
                yield item

    def checkpoint(self, upto: StreamPacket | BadRecord) -> None:
        """Acknowledge every held message up to and including `upto`, one ack each."""
        if not any(item is upto for item, _, _ in self._held):
            return
        safe = []
        while self._held:
            item, message, _ = self._held.popleft()
            safe.append(message)
            if item is upto:
                break
        task = asyncio.get_running_loop().create_task(self._ack(safe))
        self._acking.add(task)
        task.add_done_callback(self._acking.discard)

    async def _ack(self, messages: list[Msg]) -> None:
        for message in messages:
            try:
                await message.ack()
            except Exception as exc:  # the connection is gone: redelivered after ack_wait
                self.context.report_trouble(f"ack failed: {exc or type(exc).__name__}")
                return
            self.acked += 1

    async def _acks_sent(self) -> None:
        """Wait for the acks under way, then flush them to the server."""
        if self._acking:
            await asyncio.gather(*self._acking, return_exceptions=True)
        nc = self._nc
        if nc is not None and nc.is_connected:
            with contextlib.suppress(Exception):  # unflushed acks: redelivered, counted
                await nc.flush(timeout=5)

    def _keep_held(self) -> None:
        """`in_progress` for messages held longer than half of ack_wait_s."""
        now, half = time.monotonic(), self._ack_wait_s / 2
        for n, (item, message, since) in enumerate(self._held):
            if now - since < half:
                break
            self._held[n] = (item, message, now)
            task = asyncio.get_running_loop().create_task(message.in_progress())
            self._acking.add(task)
            task.add_done_callback(self._acking.discard)

    def _item_of(self, message: Msg) -> StreamPacket | BadRecord:
        meta = message.metadata
        seq, delivered = meta.sequence.stream, meta.num_delivered
        where = f"stream {meta.stream} message {seq}"
        key = (message.headers or {}).get(MSG_ID) or f"{meta.stream}:{seq}"
        if 0 < self._max_deliver <= delivered:
            return BadRecord(
                f"delivered {delivered} times (max_deliver {self._max_deliver}) without "
                "becoming safe downstream",
                where=where,
                raw=message.data,
                details={"stream": meta.stream, "seq": seq, "subject": message.subject},
                key=key,
            )
        try:
            obj: Any = read_json(message.data, strict=False)
        except ValueError as exc:  # not UTF-8, not JSON, nested too deep, too many digits
            return BadRecord(f"not JSON: {exc}", where=where, raw=message.data, key=key)
        if isinstance(obj, dict) and is_encoded_packet(obj):
            try:
                packet = packet_from_dict(obj)
            except PacketDecodeError as exc:
                return BadRecord(str(exc), where=where, raw=message.data, key=key)
            if packet.meta.get("idempotency_key") != key and packet.idempotency_key != key:
                packet = packet.evolve(meta={**packet.meta, "idempotency_key": key})
            return packet
        return StreamPacket.new(
            self.config.kind,
            self.context.node_id,
            seq,
            payload=obj,
            meta={"idempotency_key": key, "subject": message.subject},
        )

    async def _subscribe(self) -> Any:
        """Connect (waiting for the server as long as it takes, telling the operator why),
        make the durable consumer when it is missing, bind to it, start the keeper."""
        from nats.aio.client import Client
        from nats.js.api import AckPolicy, ConsumerConfig

        nc = Client()

        async def quiet(*_args: object) -> None:
            return None

        async def trouble(exc: Exception) -> None:
            self.context.report_trouble(f"cannot connect to {self._where}: {exc}")

        await nc.connect(
            servers=self.config.servers(),
            name=f"schnitzel {self.context.node_id}",
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,  # type: ignore[arg-type]  # seconds; nats-py says int
            error_cb=trouble,
            disconnected_cb=quiet,
            reconnected_cb=quiet,
            closed_cb=quiet,
        )
        self._nc = nc
        js = nc.jetstream()
        info = await self._consumer_info(nc)
        if info is None:
            # Made the same way by every worker: creating an identical consumer twice is
            # not an error, so workers starting together agree.
            info = await js.add_consumer(
                self.config.stream,
                ConsumerConfig(
                    durable_name=self.config.consumer,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=self.config.ack_wait_s,
                    max_deliver=self.config.max_deliver,
                    filter_subject=self.config.subject,
                ),
            )
        else:
            _check_existing(info, self.config.subject, self._where)
        # An existing consumer is used as it is: its own limits decide.
        self._ack_wait_s = float(info.config.ack_wait or self.config.ack_wait_s)
        self._max_deliver = int(info.config.max_deliver or -1)
        self._keeper = asyncio.get_running_loop().create_task(self._keep())
        return await js.pull_subscribe_bind(durable=self.config.consumer, stream=self.config.stream)

    async def _keep(self) -> None:
        """While the node runs: `in_progress` for what is held long (downstream may hold the
        source itself for that long, so this cannot wait for the next fetch)."""
        while True:
            await asyncio.sleep(self._ack_wait_s / 4)
            self._keep_held()

    async def _consumer_info(self, nc: Client) -> ConsumerInfo | None:
        import nats.js.errors

        try:
            return await nc.jetstream().consumer_info(self.config.stream, self.config.consumer)
        except nats.js.errors.NotFoundError:
            return None


def _check_existing(info: ConsumerInfo, subject: str | None, where: str) -> None:
    """Refuse an existing consumer this source cannot use safely or as the graph says: one
    whose filter is another subject (it would consume that one, silently), one that does not
    take an explicit ack per message (`none`: a message counts as done once sent, so a crash
    loses it; `all`: one worker's ack would settle another's messages), a push consumer."""
    from nats.js.api import AckPolicy

    config, stream = info.config, info.stream_name
    consumer = config.durable_name or info.name
    name = f"consumer {consumer!r} of stream {stream!r} on {where}"
    fix = (
        f"delete it (`nats consumer rm {stream} {consumer}`) and the source makes it as the "
        "graph says, or name another `consumer`"
    )
    filters = set(config.filter_subjects or ())
    if config.filter_subject:
        filters.add(config.filter_subject)
    wanted = {subject} if subject else set()
    if filters != wanted:
        has = ", ".join(sorted(filters)) or "every subject of the stream"
        asks = subject or "every subject of the stream"
        raise NatsError(f"{name} consumes {has}, the graph asks for {asks}: {fix}")
    if config.ack_policy != AckPolicy.EXPLICIT:
        policy = getattr(config.ack_policy, "value", config.ack_policy)
        raise NatsError(
            f"{name} acknowledges with policy {policy!r}; this source needs 'explicit' (each "
            f"message acknowledged once it is safe downstream): {fix}"
        )
    if config.deliver_subject:
        raise NatsError(f"{name} is a push consumer; this source pulls: {fix}")
