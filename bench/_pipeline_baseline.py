"""The hand-written asyncio pipeline the runtime benchmarks compare against.

What one writes first for `source -> stage x K -> sink` on one event loop: one task per stage,
a bounded `asyncio.Queue(maxsize=1024)` between stages, one packet per put/get, packets made
exactly as the `synthetic` plugin makes them, and a sentinel to end. No metrics, no error
handling, no backpressure policy choice, no stop conditions: the least a pipeline can do.
"""

from __future__ import annotations

import asyncio
import time

from schnitzel.contract import StreamPacket

__all__ = ["QUEUE_SIZE", "batched_pipeline", "linear_pipeline"]

QUEUE_SIZE = 1024
"""Bound of every queue: the runtime's default inbox size."""

_END = object()
"""The sentinel that ends the pipeline, passed on by every stage."""


async def linear_pipeline(
    count: int,
    stages: int = 3,
    payload: dict[str, object] | None = None,
    rate_hz: float | None = None,
    latencies: list[float] | None = None,
) -> int:
    """Send `count` packets through `stages` passthrough tasks to a sink; return how many
    arrived. `rate_hz` paces the source on a fixed schedule (catching up after a late wake,
    as a token bucket does); `latencies` collects `time.time() - packet.ts` per packet."""
    template = payload if payload is not None else {"v": 1}
    queues: list[asyncio.Queue[object]] = [
        asyncio.Queue(maxsize=QUEUE_SIZE) for _ in range(stages + 1)
    ]

    async def source(out: asyncio.Queue[object]) -> None:
        new, now, put = StreamPacket.new, time.time, out.put
        if rate_hz is None:
            for seq in range(count):
                await put(new("sensor", "src", seq, dict(template), None, None, now()))
        else:
            mono, start, period = time.monotonic, time.monotonic(), 1.0 / rate_hz
            for seq in range(count):
                delay = start + seq * period - mono()
                if delay > 0:
                    await asyncio.sleep(delay)
                await put(new("sensor", "src", seq, dict(template), None, None, now()))
        await put(_END)

    async def stage(inbox: asyncio.Queue[object], out: asyncio.Queue[object]) -> None:
        get, put = inbox.get, out.put
        while True:
            packet = await get()
            await put(packet)
            if packet is _END:
                return

    async def sink(inbox: asyncio.Queue[object]) -> int:
        get, now, arrived = inbox.get, time.time, 0
        record = latencies.append if latencies is not None else None
        while True:
            packet = await get()
            if packet is _END:
                return arrived
            arrived += 1
            if record is not None:
                record(now() - packet.ts)  # type: ignore[attr-defined]

    tasks = [asyncio.create_task(source(queues[0]))]
    tasks += [asyncio.create_task(stage(queues[i], queues[i + 1])) for i in range(stages)]
    done = asyncio.create_task(sink(queues[-1]))
    await asyncio.gather(*tasks)
    return await done


async def batched_pipeline(
    count: int, stages: int = 3, batch: int = 64, payload: dict[str, object] | None = None
) -> int:
    """`linear_pipeline` with lists of `batch` packets per put/get (each queue bounded to
    QUEUE_SIZE packets): what one writes next when the per-item queue cost shows."""
    template = payload if payload is not None else {"v": 1}
    bound = max(1, QUEUE_SIZE // batch)
    queues: list[asyncio.Queue[object]] = [asyncio.Queue(maxsize=bound) for _ in range(stages + 1)]

    async def source(out: asyncio.Queue[object]) -> None:
        new, now, put = StreamPacket.new, time.time, out.put
        for start in range(0, count, batch):
            seqs = range(start, min(start + batch, count))
            await put(
                [new("sensor", "src", seq, dict(template), None, None, now()) for seq in seqs]
            )
        await put(_END)

    async def stage(inbox: asyncio.Queue[object], out: asyncio.Queue[object]) -> None:
        get, put = inbox.get, out.put
        while True:
            packets = await get()
            await put(packets)
            if packets is _END:
                return

    async def sink(inbox: asyncio.Queue[object]) -> int:
        get, arrived = inbox.get, 0
        while (packets := await get()) is not _END:
            arrived += len(packets)  # type: ignore[arg-type]
        return arrived

    tasks = [asyncio.create_task(source(queues[0]))]
    tasks += [asyncio.create_task(stage(queues[i], queues[i + 1])) for i in range(stages)]
    done = asyncio.create_task(sink(queues[-1]))
    await asyncio.gather(*tasks)
    return await done
