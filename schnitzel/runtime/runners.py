"""The task each node runs: sources pull from their plugin, other nodes drain their inbox.

Both work in micro-batches: a node takes everything queued (up to `BATCH`) at once, so the
per-packet cost is a plugin call and a few list operations; awaiting, counting and waking
happen once per batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from schnitzel.contract.packet import StreamPacket
from schnitzel.runtime.node import Node

if TYPE_CHECKING:
    from schnitzel.runtime.runtime import Runtime

__all__ = ["BATCH", "run_source", "run_worker"]

BATCH = 256
"""Most packets a node takes or a source pulls at once."""


async def run_worker(node: Node, runtime: Runtime) -> None:
    """Drain the node's inbox until the runtime closes it."""
    inbox = node.inbox
    assert inbox is not None
    metrics = node.metrics
    call, running = node.call, node.running
    in_flight = runtime.in_flight
    is_sink = node.kind == "sink"
    perf, wall, mono = time.perf_counter, time.time, time.monotonic
    record_latency, processing = metrics.latency.record, metrics.processing
    while True:
        if not inbox:
            if inbox.closed:
                return
            await inbox.wait_items()
            continue
        if not running.is_set():
            await running.wait()
        batch = inbox.take(BATCH)
        n = node.holding = len(batch)
        started = perf()
        outcome = await call(batch)
        processing.record((perf() - started) / n, n)
        if outcome.routed:
            node.check_routes(outcome)
        if outcome.failures:
            await runtime.handle_failures(node, outcome.failures)
        if outcome.outputs:
            node.emitting = True
            await node.emit(outcome.outputs, outcome.routed)
            node.emitting = False
        # Counted once the batch has gone on: a node that fails mid-batch counts what it
        # held as lost (node_failed) instead of as processed.
        now = wall()
        # At most ~16 samples per batch, each weighted by the stride: exact for the small
        # batches of a paced stream, and it keeps a 256-packet batch from costing 256 bisects.
        stride = (n >> 4) or 1
        for packet in batch[::stride]:
            record_latency(now - packet.ts, stride)
        metrics.processed += n
        metrics.filtered += outcome.filtered
        if is_sink:
            metrics.delivered += n - len(outcome.failures)
        else:
            metrics.emitted += len(outcome.outputs)
        metrics.last_progress = mono()
        node.holding = 0
        in_flight.retire(n)


async def run_source(node: Node, runtime: Runtime) -> None:
    """Pull packets from the source plugin as fast as the graph and the pacer allow."""
    packets: Any = node.plugin.packets()  # type: ignore[attr-defined]
    try:
        if hasattr(packets, "__anext__"):
            await _pump_async(node, runtime, packets)
        else:
            await _pump_sync(node, runtime, packets)
    finally:
        closer = getattr(packets, "aclose", None) or getattr(packets, "close", None)
        if closer is not None:
            result = closer()
            if asyncio.iscoroutine(result):
                await result


async def _permits(node: Node, runtime: Runtime, wanted: int) -> int:
    """How many packets the source may produce now: paused, paced and budgeted."""
    if not node.running.is_set():
        with runtime.stoppable(node):
            await node.running.wait()
    pacer = node.pacer
    if pacer is not None and pacer.rate_hz is not None:
        with runtime.stoppable(node):
            wanted = await pacer.take(wanted)
    granted = runtime.budget.take(wanted)
    if not granted:  # the budget is spent: every source stops, and the drain has a time limit
        runtime.request_stop("max_packets")
    return granted


async def _pump_sync(node: Node, runtime: Runtime, packets: Iterator[StreamPacket]) -> None:
    loop = asyncio.get_running_loop()
    metrics = node.metrics
    while not runtime.stopping:
        wanted = await _permits(node, runtime, BATCH)
        if not wanted:
            return
        if node.pool is None:
            batch, failure = _pull(packets, wanted)
        else:
            batch, failure = await loop.run_in_executor(node.pool, _pull, packets, wanted)
        if len(batch) < wanted:
            runtime.budget.give_back(wanted - len(batch))
        if batch:
            metrics.emitted += len(batch)
            metrics.last_progress = time.monotonic()
            await node.emit(batch)
        if failure is not None:
            await runtime.source_failed(node, failure)
            return
        if len(batch) < wanted:
            return  # the iterator ended
        await asyncio.sleep(0)  # let the rest of the graph run between batches


def _pull(packets: Iterator[StreamPacket], wanted: int) -> tuple[list[StreamPacket], Any]:
    """Up to `wanted` packets, and the exception that ended the iterator early, if any."""
    batch: list[StreamPacket] = []
    append = batch.append
    try:
        for packet in packets:
            append(packet)
            if len(batch) == wanted:
                break
    except Exception as exc:
        return batch, exc
    return batch, None


async def _pump_async(node: Node, runtime: Runtime, packets: AsyncIterator[StreamPacket]) -> None:
    metrics = node.metrics
    while not runtime.stopping:
        if not await _permits(node, runtime, 1):
            return
        try:
            with runtime.stoppable(node):
                packet = await packets.__anext__()
        except StopAsyncIteration:
            runtime.budget.give_back(1)
            return
        except Exception as exc:
            runtime.budget.give_back(1)
            await runtime.source_failed(node, exc)
            return
        metrics.emitted += 1
        metrics.last_progress = time.monotonic()
        await node.emit([packet])
