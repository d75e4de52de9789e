"""A node's bounded inbox with the overflow policy the graph chose, and the in-flight count
that tells the runtime when a graph has gone quiet.

Producers hand over whole batches (`offer`); the consumer takes up to a batch at a time
(`take`). Under `block` a producer that did not fit waits in line for space, and freed
space goes to the first in line: no producer overtakes one that waits, so fan-in is fair.

An inbox may also be bounded in bytes (`inbox.max_bytes`, for frames): a packet's size is its
payload's `nbytes` (numpy arrays, the vision pack's frames; 0 for payloads without one). The
packets are not copied, so a frame fanned out to two nodes counts in both inboxes but is held
once. An empty inbox always takes one packet, however big, so nothing can stall for good.
"""

from __future__ import annotations

import asyncio
from collections import deque
from itertools import repeat, starmap

from schnitzel.contract.packet import StreamPacket
from schnitzel.runtime.held_refs import add_refs
from schnitzel.runtime.inbox_protocol import Batch
from schnitzel.runtime.metrics import DropReason, NodeMetrics

__all__ = ["InFlight", "Inbox", "payload_nbytes"]


def payload_nbytes(packet: StreamPacket) -> int:
    """Bytes a packet's payload holds, as a byte-bounded inbox counts them (`nbytes`, else 0)."""
    size = getattr(packet.payload, "nbytes", 0)
    return size if type(size) is int else 0


class InFlight:
    """Packets queued in inboxes or being processed, across the whole graph.

    A node adds its outputs before it retires its inputs, so the count touches zero only when
    nothing is left anywhere. With every source finished, zero means the graph is done.
    """

    __slots__ = ("count", "durable", "idle", "sources_running")

    def __init__(self) -> None:
        self.count = 0
        self.durable = 0
        """Of `count`: packets committed to durable inboxes (safe on disk, not in memory)."""
        self.sources_running = 0
        self.idle = asyncio.Event()

    @property
    def volatile(self) -> int:
        """Packets that only exist in memory: lost if the process dies now."""
        return self.count - self.durable

    def add(self, n: int) -> None:
        self.count += n

    def retire(self, n: int) -> None:
        self.count -= n
        if self.count == 0 and self.sources_running == 0:
            self.idle.set()

    def source_finished(self) -> None:
        self.sources_running -= 1
        if self.count == 0 and self.sources_running == 0:
            self.idle.set()


class Inbox:
    """Bounded FIFO of packets for one node."""

    __slots__ = (
        "_consumer",
        "_items",
        "_space_waiters",
        "bytes",
        "capacity",
        "closed",
        "entered",
        "in_flight",
        "left",
        "max_bytes",
        "metrics",
        "overflow",
    )

    durable = False

    def __init__(
        self,
        capacity: int,
        overflow: str,
        metrics: NodeMetrics,
        in_flight: InFlight,
        max_bytes: int | None = None,
    ) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        """Bound on the payload bytes queued (None: packets only)."""
        self.bytes = 0
        """Payload bytes queued now (counted only when `max_bytes` is set)."""
        self.overflow = overflow
        self.metrics = metrics
        self.in_flight = in_flight
        self.closed = False
        self.entered = 0
        """Packets that ever got in; a packet's position is the value after it entered."""
        self.left = 0
        """Packets that ever left, oldest first: taken, displaced or abandoned."""
        self._items: deque[StreamPacket] = deque()
        self._consumer: asyncio.Future[None] | None = None
        self._space_waiters: deque[asyncio.Future[None]] = deque()

    def __len__(self) -> int:
        """Packets ready to take now."""
        return len(self._items)

    @property
    def depth(self) -> int:
        """Packets queued (the report's `queue_depth`)."""
        return len(self._items)

    def add_refs(self, into: set[str]) -> None:
        """Add the blob URIs the queued packets point at to `into` (runtime/held_refs.py)."""
        add_refs(self._items, into)

    def offer(
        self,
        batch: list[StreamPacket],
        start: int = 0,
        force: bool = False,
        newcomer: bool = False,
    ) -> int:
        """Queue `batch[start:]`; return the index of the first packet not taken.

        Under `block` that is where the producer must wait for space (`len(batch)` when all
        fit). Drop policies always take the whole batch and count what they drop. `force`
        queues everything regardless: edges leaving a delay node use it so a cycle always
        moves (docs/architecture.md).
        """
        items = self._items
        n = len(batch) - start
        metrics = self.metrics
        if self.closed:  # the node stopped for good: what still arrives is lost, and counted
            metrics.refused(DropReason.NODE_FAILED, n)
            return len(batch)
        room = self.capacity - len(items)
        if newcomer and self._space_waiters and self.overflow == "block":
            room = 0  # producers already wait for this space: queue behind them
        if self.max_bytes is not None:
            return self._offer_sized(batch, start, n, room, force)
        retired = 0
        if n <= room or force:
            items.extend(batch if start == 0 else batch[start:])
            taken = n
            end = len(batch)
        elif self.overflow == "block":  # the rest arrives when the producer retries
            taken = max(room, 0)
            end = start + taken
            items.extend(batch[start:end])
        elif self.overflow == "drop_new":
            taken = max(room, 0)
            items.extend(batch[start : start + taken])
            metrics.refused(DropReason.INBOX_FULL, n - taken)
            end = len(batch)
        else:  # drop_oldest
            displaced = min(len(items), n - room)
            for _ in range(displaced):
                items.popleft()
            items.extend(batch[start:] if start else batch)
            extra = len(items) - self.capacity  # a batch larger than the whole inbox
            for _ in range(extra):
                items.popleft()
            metrics.drop(DropReason.DISPLACED, displaced)
            if extra > 0:
                metrics.refused(DropReason.DISPLACED, extra)
            taken = n - max(extra, 0)
            end = len(batch)
            retired = displaced
            self.left += displaced
        if taken:
            metrics.arrived(taken, len(items))
            self.entered += taken
            self.in_flight.add(taken)
            consumer = self._consumer
            if consumer is not None and not consumer.done():
                consumer.set_result(None)
        if retired:  # after the add, so the graph never looks idle in between
            self.in_flight.retire(retired)
        return end

    def _offer_sized(
        self, batch: list[StreamPacket], start: int, n: int, room: int, force: bool
    ) -> int:
        """`offer` for an inbox bounded in bytes as well as in packets."""
        items = self._items
        metrics = self.metrics
        assert self.max_bytes is not None
        sizes = [payload_nbytes(p) for p in batch[start:]]
        fit = len(sizes) if force else self._fitting(sizes, max(room, 0))
        retired = 0
        if fit == n:
            taken, end = n, len(batch)
        elif self.overflow == "block":  # the rest arrives when the producer retries
            taken = fit
            end = start + fit
        elif self.overflow == "drop_new":
            taken, end = fit, len(batch)
            metrics.refused(DropReason.INBOX_FULL, n - fit)
        else:  # drop_oldest: the new go in, the oldest leave until both bounds hold
            old = len(items)
            items.extend(batch[start:])
            self.bytes += sum(sizes)
            dropped = 0
            while len(items) > 1 and (len(items) > self.capacity or self.bytes > self.max_bytes):
                self.bytes -= payload_nbytes(items.popleft())
                dropped += 1
            displaced = min(dropped, old)
            metrics.drop(DropReason.DISPLACED, displaced)
            if dropped > displaced:  # some of the new ones too (a batch over the bounds)
                metrics.refused(DropReason.DISPLACED, dropped - displaced)
            taken, end, retired = n - (dropped - displaced), len(batch), displaced
            self.left += displaced
            fit = 0  # already queued
        if fit:
            items.extend(batch[start : start + fit])
            self.bytes += sum(sizes[:fit])
        if taken:
            metrics.arrived(taken, len(items))
            self.entered += taken
            self.in_flight.add(taken)
            consumer = self._consumer
            if consumer is not None and not consumer.done():
                consumer.set_result(None)
        if retired:
            self.in_flight.retire(retired)
        return end

    def _fitting(self, sizes: list[int], room: int) -> int:
        """How many of `sizes` fit in `room` packets and the bytes left (an empty inbox
        takes the first whatever its size)."""
        assert self.max_bytes is not None
        free = self.max_bytes - self.bytes
        fit = 0
        for size in sizes[:room]:
            if size > free and (fit or self._items):
                break
            free -= size
            fit += 1
        return fit

    async def put(self, batch: list[StreamPacket], force: bool = False) -> None:
        """Queue the whole batch, waiting for space under `block`.

        Producers that did not fit wait in line; freed space goes to the first in line, and
        a newcomer queues behind them instead of taking it (no one is overtaken, so no
        producer of a fan-in starves).
        """
        end = self.offer(batch, 0, force, newcomer=True)
        if end == len(batch):
            return
        loop = asyncio.get_running_loop()
        waiters = self._space_waiters
        waiter = loop.create_future()
        waiters.append(waiter)
        try:
            while True:
                await waiter
                # first in line: take what fits; keep the place in line for the rest
                end = self.offer(batch, end)
                if end == len(batch):
                    return
                waiter = loop.create_future()
                waiters[0] = waiter
        except asyncio.CancelledError:  # a forced stop: what never got in is lost, and counted
            self.metrics.refused(DropReason.SHUTDOWN, len(batch) - end)
            raise
        finally:
            if waiters and waiters[0] is waiter:
                waiters.popleft()
                self._wake_first()
            elif waiter in waiters:  # cancelled while behind others in line
                waiters.remove(waiter)

    async def admit(
        self, batch: list[StreamPacket], force: bool = False
    ) -> asyncio.Future[bool] | None:
        """`put`: in memory, admitted is all there is, so there is nothing to wait for after
        (None; a durable inbox returns the future of its commit here)."""
        await self.put(batch, force)
        return None

    def take(self, limit: int) -> Batch:
        """Up to `limit` packets, oldest first, as a batch the node settles, gives back or
        abandons; wakes the first producer waiting for space."""
        start = self.left
        return Batch(self, self._take_packets(limit), start)

    def _take_packets(self, limit: int) -> list[StreamPacket]:
        items = self._items
        if len(items) <= limit:
            batch = list(items)
            items.clear()
        else:  # popped by a C loop: this runs for every packet of a backed-up inbox
            batch = list(starmap(items.popleft, repeat((), limit)))
        if self.max_bytes is not None:
            self.bytes -= sum(payload_nbytes(p) for p in batch)
        self.left += len(batch)
        if self._space_waiters:
            self._wake_first()
        return batch

    def _settle(
        self,
        batch: Batch,
        kept: list[StreamPacket] | None,
        trail: dict[str, int] | None,
        parked: list[tuple[StreamPacket, str]] | None,
    ) -> None:
        self.in_flight.retire(len(batch.packets))

    def _give_back(self, batch: Batch) -> None:
        packets = batch.packets
        self._items.extendleft(reversed(packets))
        if self.max_bytes is not None:
            self.bytes += sum(payload_nbytes(p) for p in packets)
        self.left -= len(packets)

    def _release(self, batch: Batch) -> int:
        self.in_flight.retire(len(batch.packets))
        return 0  # in memory only: lost, for the caller to count

    def _wake_first(self) -> None:
        if self._space_waiters and len(self._items) < self.capacity and self._bytes_free():
            first = self._space_waiters[0]
            if not first.done():
                first.set_result(None)

    def _bytes_free(self) -> bool:
        return self.max_bytes is None or self.bytes < self.max_bytes or not self._items

    async def wait_items(self) -> None:
        """Return once packets are queued or the inbox is closed."""
        if self._items or self.closed:
            return
        self._consumer = asyncio.get_running_loop().create_future()
        try:
            await self._consumer
        finally:
            self._consumer = None

    def close(self) -> None:
        """No more packets will come: wake the consumer so it can finish."""
        self.closed = True
        consumer = self._consumer
        if consumer is not None and not consumer.done():
            consumer.set_result(None)
        for waiter in self._space_waiters:  # producers in line: what they hold is now lost
            if not waiter.done():
                waiter.set_result(None)

    def abandon(self, reason: str = DropReason.SHUTDOWN) -> int:
        """Drop what is still queued (forced shutdown, failed node); return how many."""
        left = len(self._items)
        if left:
            self._items.clear()
            self.bytes = 0
            self.left += left
            self.metrics.drop(reason, left)
            self.in_flight.retire(left)
        return left
