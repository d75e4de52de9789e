"""The real-work pipeline of bench/bench_pipeline.py: `map -> filter -> map -> sink`.

The per-packet work is what a small sensor pipeline does: derive a new payload dict from the
old one with a computed value (`scale`), drop one packet in ten (`keep`), derive again with a
label (`label`), and add the value up in the sink. The same three functions run in every
variant: the plugins below (written as a plugin author writes them with the SDK, once with
per-packet `process` and once with batch `process_batch`) and the hand-written asyncio
pipelines, so the variants differ in how packets are moved, not in the work.

Graphs name the plugins `_real_work:ScaleEach` and so on, and allowlist the module in
`runtime.allow_modules`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from schnitzel import Sink, StreamPacket, Transform

__all__ = [
    "BATCH",
    "PAYLOAD",
    "SUMS",
    "KeepBatch",
    "KeepEach",
    "LabelBatch",
    "LabelEach",
    "ScaleBatch",
    "ScaleEach",
    "SumBatch",
    "SumEach",
    "asyncio_batches",
    "asyncio_each",
    "expected",
    "keep",
    "label",
    "scale",
]

PAYLOAD: dict[str, Any] = {"raw": 20.5, "unit": "C", "sensor": "t-17"}
"""The template every source copies into each packet's payload (as `synthetic` does)."""
BATCH = 64
"""Packets per queue item in the batched asyncio baseline."""
SUMS: dict[str, float] = {}
"""What each sink added up, by node id (`asyncio` for the baselines): a check that the work
was done, compared between variants."""


def scale(payload: dict[str, Any], seq: int) -> dict[str, Any]:
    """A new payload with a value computed from the reading and the sequence number."""
    return {**payload, "value": payload["raw"] * 0.5 + (seq % 100) * 0.25}


def keep(payload: dict[str, Any]) -> bool:
    """Drops one packet in ten (those with the smallest values)."""
    return payload["value"] >= 12.75


def label(payload: dict[str, Any]) -> dict[str, Any]:
    """A new payload with a label from the value."""
    return {**payload, "level": "high" if payload["value"] > 25.0 else "low"}


def expected(count: int) -> tuple[int, float]:
    """How many packets reach the sink, and the sum of their values, for `count` sent."""
    values = [PAYLOAD["raw"] * 0.5 + (seq % 100) * 0.25 for seq in range(count)]
    kept = [v for v in values if v >= 12.75]
    return len(kept), sum(kept)


# -- the plugins, as a plugin author writes them -----------------------------------------------


class ScaleEach(Transform):
    """map: one packet at a time."""

    name: ClassVar[str] = "bench_scale"

    def process(self, packet: StreamPacket) -> StreamPacket:
        return packet.evolve(payload=scale(packet.payload, packet.seq))


class KeepEach(Transform):
    """filter: one packet at a time."""

    name: ClassVar[str] = "bench_keep"

    def process(self, packet: StreamPacket) -> StreamPacket | None:
        return packet if keep(packet.payload) else None


class LabelEach(Transform):
    """map: one packet at a time."""

    name: ClassVar[str] = "bench_label"

    def process(self, packet: StreamPacket) -> StreamPacket:
        return packet.evolve(payload=label(packet.payload))


class SumEach(Sink):
    """Adds the values up, one packet at a time."""

    name: ClassVar[str] = "bench_sum"

    def deliver(self, packet: StreamPacket) -> None:
        SUMS[self.context.node_id] = SUMS.get(self.context.node_id, 0.0) + packet.payload["value"]


class ScaleBatch(ScaleEach):
    """map: a micro-batch at a time."""

    def process_batch(self, packets: list[StreamPacket]) -> list[StreamPacket]:
        return [p.evolve(payload=scale(p.payload, p.seq)) for p in packets]


class KeepBatch(KeepEach):
    """filter: a micro-batch at a time."""

    def process_batch(self, packets: list[StreamPacket]) -> list[StreamPacket]:
        return [p for p in packets if keep(p.payload)]


class LabelBatch(LabelEach):
    """map: a micro-batch at a time."""

    def process_batch(self, packets: list[StreamPacket]) -> list[StreamPacket]:
        return [p.evolve(payload=label(p.payload)) for p in packets]


class SumBatch(SumEach):
    """Adds the values up, a micro-batch at a time."""

    def deliver_batch(self, packets: list[StreamPacket]) -> None:
        node = self.context.node_id
        SUMS[node] = SUMS.get(node, 0.0) + sum(p.payload["value"] for p in packets)


# -- the hand-written asyncio pipelines --------------------------------------------------------

_END: Any = None
"""The sentinel that ends a baseline pipeline, passed on by every stage."""
QUEUE_SIZE = 1024
"""Bound of every queue: the runtime's default inbox size."""


async def asyncio_each(count: int) -> int:
    """One task per stage, `asyncio.Queue(1024)` between them, one packet per put/get."""
    queues: list[asyncio.Queue[Any]] = [asyncio.Queue(QUEUE_SIZE) for _ in range(3)]

    async def source(out: asyncio.Queue[Any]) -> None:
        new, now, put = StreamPacket.new, time.time, out.put
        for seq in range(count):
            await put(new("sensor", "src", seq, dict(PAYLOAD), None, None, now()))
        await put(_END)

    async def mapper(inbox: asyncio.Queue[Any], out: asyncio.Queue[Any]) -> None:
        get, put = inbox.get, out.put
        while (packet := await get()) is not _END:
            await put(packet.evolve(payload=scale(packet.payload, packet.seq)))
        await put(_END)

    async def filterer(inbox: asyncio.Queue[Any], out: asyncio.Queue[Any]) -> None:
        get, put = inbox.get, out.put
        while (packet := await get()) is not _END:
            if keep(packet.payload):
                await put(packet)
        await put(_END)

    async def labeller(inbox: asyncio.Queue[Any], out: asyncio.Queue[Any]) -> None:
        get, put = inbox.get, out.put
        while (packet := await get()) is not _END:
            await put(packet.evolve(payload=label(packet.payload)))
        await put(_END)

    async def sink(inbox: asyncio.Queue[Any]) -> int:
        get, arrived, total = inbox.get, 0, 0.0
        while (packet := await get()) is not _END:
            arrived += 1
            total += packet.payload["value"]
        SUMS["asyncio"] = total
        return arrived

    q0, q1, q2 = queues
    last: asyncio.Queue[Any] = asyncio.Queue(QUEUE_SIZE)
    tasks = [
        asyncio.create_task(source(q0)),
        asyncio.create_task(mapper(q0, q1)),
        asyncio.create_task(filterer(q1, q2)),
        asyncio.create_task(labeller(q2, last)),
    ]
    arrived = await sink(last)
    await asyncio.gather(*tasks)
    return arrived


async def asyncio_batches(count: int, batch: int = BATCH) -> int:
    """The same with lists of `batch` packets per put/get (queues bounded to 1024 packets)."""
    bound = max(1, QUEUE_SIZE // batch)
    queues: list[asyncio.Queue[Any]] = [asyncio.Queue(bound) for _ in range(4)]

    async def source(out: asyncio.Queue[Any]) -> None:
        new, now, put = StreamPacket.new, time.time, out.put
        for start in range(0, count, batch):
            stop = min(start + batch, count)
            await put(
                [
                    new("sensor", "src", s, dict(PAYLOAD), None, None, now())
                    for s in range(start, stop)
                ]
            )
        await put(_END)

    async def mapper(inbox: asyncio.Queue[Any], out: asyncio.Queue[Any]) -> None:
        get, put = inbox.get, out.put
        while (packets := await get()) is not _END:
            await put([p.evolve(payload=scale(p.payload, p.seq)) for p in packets])
        await put(_END)

    async def filterer(inbox: asyncio.Queue[Any], out: asyncio.Queue[Any]) -> None:
        get, put = inbox.get, out.put
        while (packets := await get()) is not _END:
            kept = [p for p in packets if keep(p.payload)]
            if kept:
                await put(kept)
        await put(_END)

    async def labeller(inbox: asyncio.Queue[Any], out: asyncio.Queue[Any]) -> None:
        get, put = inbox.get, out.put
        while (packets := await get()) is not _END:
            await put([p.evolve(payload=label(p.payload)) for p in packets])
        await put(_END)

    async def sink(inbox: asyncio.Queue[Any]) -> int:
        get, arrived, total = inbox.get, 0, 0.0
        while (packets := await get()) is not _END:
            arrived += len(packets)
            total += sum(p.payload["value"] for p in packets)
        SUMS["asyncio"] = total
        return arrived

    q0, q1, q2, last = queues
    tasks = [
        asyncio.create_task(source(q0)),
        asyncio.create_task(mapper(q0, q1)),
        asyncio.create_task(filterer(q1, q2)),
        asyncio.create_task(labeller(q2, last)),
    ]
    arrived = await sink(last)
    await asyncio.gather(*tasks)
    return arrived
