"""How packets enter a durable inbox (runtime/durable_inbox.py): `admit`, `put` and `offer`
encode them, check the size limits, apply the overflow policy (block, drop_new, drop_oldest: in
memory first, then on disk) and queue the rest for the next commit. `put` also waits for that
commit; `admit` returns its future instead, so a producer can make its next batch meanwhile."""

from __future__ import annotations

import asyncio
import time
from itertools import repeat
from operator import attrgetter

from schnitzel.contract.batch_encoding import encode_batch_bytes
from schnitzel.contract.codec import encode_packet_bytes
from schnitzel.contract.packet import StreamPacket
from schnitzel.contract.refs import packet_refs
from schnitzel.durable.store import DurableStore
from schnitzel.errors import PacketNotPortable
from schnitzel.runtime.durable_state import DurableState
from schnitzel.runtime.metrics import DropReason

__all__ = ["Admission"]

_payload_ref = attrgetter("payload_ref")


class Admission(DurableState):
    """A durable inbox's producer side."""

    __slots__ = ()

    async def put(self, batch: list[StreamPacket], force: bool = False) -> None:
        """Return once every packet of `batch` is committed, dropped by the overflow policy
        (counted) or refused as not portable (counted); or, if the store closed before
        committing them, counted as `shutdown` refusals."""
        commit = await self.admit(batch, force)
        if commit is not None:
            await asyncio.shield(commit)  # a cancelled producer does not cancel the commit
            if self.on_put_done is not None:
                self.on_put_done()

    async def admit(
        self, batch: list[StreamPacket], force: bool = False
    ) -> asyncio.Future[bool] | None:
        """Admit `batch` to the next commits (encoded, size limits and overflow policy
        applied, waiting for room under `block`) and return without waiting for the commit:
        the future of the last of them, True once every packet admitted is committed, False
        when the store closed first (those packets are counted as `shutdown` refusals).
        None when nothing was admitted (all dropped or refused, counted). A producer that
        retires its inputs waits for it first (runtime/commit_order.py)."""
        if self.closed:
            self.metrics.refused(DropReason.NODE_FAILED, len(batch))
            return None
        packets, bodies = self._encode(batch)
        last: asyncio.Future[bool] | None = None
        start = 0
        try:
            if not force:
                await self._wait_for_window(len(packets))
                if self.closed:  # its node failed meanwhile: what never got in is lost
                    self._drop(len(packets), DropReason.NODE_FAILED)
                    return None
            while start < len(packets):
                fits = self._bodies_fitting(bodies, start)
                if fits == len(packets) - start or force:
                    last = self._admit(packets, bodies, start, len(packets))
                    start = len(packets)
                elif self.overflow == "drop_oldest":  # the newest win, these among them
                    if self._pending_bodies:  # older ones not committed: displaced once stored
                        await self._window_or_commit_moved()
                        if self.closed:
                            self._drop(len(packets) - start, DropReason.NODE_FAILED)
                            start = len(packets)
                        continue
                    start += await self._displace_for(bodies[start:])
                    if start < len(packets):
                        last = self._admit(packets, bodies, start, len(packets))
                    start = len(packets)
                elif fits:
                    last = self._admit(packets, bodies, start, start + fits)
                    start += fits
                elif self.overflow == "drop_new":
                    self._drop(len(packets) - start, DropReason.INBOX_FULL)
                    start = len(packets)
                else:
                    if not self.worker.gone:
                        await self._wait_for_space()
                    if self.closed:
                        self._drop(len(packets) - start, DropReason.NODE_FAILED)
                        start = len(packets)
                    elif self.worker.gone:  # what its store holds never leaves it now
                        self._drop(len(packets) - start, DropReason.SHUTDOWN)
                        start = len(packets)
        except asyncio.CancelledError:  # a forced stop: what never got in is lost, and counted
            self._drop(len(packets) - start, DropReason.SHUTDOWN)
            raise
        return last  # commits resolve in seq order: the last one done means all are

    async def _wait_for_window(self, n: int) -> None:
        """While the packets not committed yet would not fit in the window together with `n`
        more, wait for the node to take some or a commit to end. A producer that does not
        wait for its commits (`admit`, runtime/commit_order.py) runs ahead of them at most by
        the room its node has in memory: a commit larger than that would go to disk only, to
        be read back. Behind a node that lags, producers get one batch per commit, as those
        that `put`."""
        pending = self._pending_bodies
        while pending and len(self._items) + len(pending) + n > self.capacity:
            await self._window_or_commit_moved()

    async def _window_or_commit_moved(self) -> None:
        """Wait until the node takes packets from the window or a commit ends."""
        moved = self._window_moved
        if moved is None:
            self._window_moved = moved = asyncio.get_running_loop().create_future()
        await asyncio.shield(moved)

    def _drop(self, n: int, reason: str) -> None:
        if n:
            self.metrics.refused(reason, n)

    def offer(
        self,
        batch: list[StreamPacket],
        start: int = 0,
        force: bool = False,
        newcomer: bool = False,
    ) -> int:
        """Admit `batch[start:]` to the next commit without waiting; return the index of the
        first packet not admitted (`len(batch)` when all were dealt with).

        Unlike `put`, the packets are not committed when this returns (a producer that must
        not retire its inputs before then awaits `put`, or the future `admit` returns). What
        fits is admitted, packets that are not portable are dropped (counted), `drop_new`
        drops what does not fit (counted); where room must be waited for (`block`) or made
        on disk (`drop_oldest`) it stops and returns that index, for `put` to finish.
        """
        end = len(batch)
        if self.closed:
            self._drop(end - start, DropReason.NODE_FAILED)
            return end
        if newcomer and self._space_waiters and not force:
            return start  # producers already wait for space: queue behind them
        packets: list[StreamPacket] = []
        bodies: list[bytes] = []
        stop = end
        for index in range(start, end):
            encoded, body = self._encode([batch[index]])  # a packet not portable is counted
            if not encoded:
                continue
            if not force and not self._bodies_fitting(body, 0):
                stop = index
                break
            packets += encoded
            bodies += body
            self._count += 1  # held for `_fitting` until admitted below
            self._bytes += len(body[0])
        self._count -= len(packets)
        self._bytes -= sum(len(body) for body in bodies)
        if packets:
            self._admit(packets, bodies, 0, len(packets))
        if stop == end:
            return end
        if self.overflow == "drop_new":
            rest, _bodies = self._encode(batch[stop:])
            self._drop(len(rest), DropReason.INBOX_FULL)
            return end
        return stop  # `put` waits for room (block) or makes it on disk (drop_oldest)

    def _encode(self, batch: list[StreamPacket]) -> tuple[list[StreamPacket], list[bytes]]:
        """Encoded packets; one that cannot be encoded is dropped here, with the reason."""
        try:  # the common case, every packet portable, checked and written per column
            return batch, encode_batch_bytes(batch)
        except (PacketNotPortable, TypeError, ValueError):
            pass  # encoded again one by one, to drop and name the ones that fail
        bodies: list[bytes] = []
        kept: list[StreamPacket] = []
        for packet in batch:
            try:
                bodies.append(encode_packet_bytes(packet))
            except (PacketNotPortable, TypeError, ValueError) as exc:
                self.metrics.refused(DropReason.NOT_PORTABLE, 1)
                self.metrics.note(packet.packet_id, exc)
                continue
            kept.append(packet)
        return kept, bodies

    def _bodies_fitting(self, bodies: list[bytes], start: int) -> int:
        """How many of `bodies[start:]` fit under the size limits now."""
        count, size = self._count, self._bytes
        max_packets = self.max_packets if self.max_packets is not None else 1 << 62
        max_store_bytes = self.max_store_bytes
        n = len(bodies) - start
        if count + n <= max_packets and size + sum(map(len, bodies[start:])) <= max_store_bytes:
            return n  # the common case, all of them, seen without a loop in Python
        n = 0
        for body in bodies[start:]:
            if count + 1 > max_packets or (size + len(body) > max_store_bytes and count > 0):
                break  # an empty store takes one packet of any size, or it would never move
            count += 1
            size += len(body)
            n += 1
        return n

    def _admit(
        self, packets: list[StreamPacket], bodies: list[bytes], start: int, end: int
    ) -> asyncio.Future[bool]:
        now = time.time()
        first = self._next_seq
        seq = first + end - start
        admitted = bodies[start:end]
        sizes = list(map(len, admitted))
        # The window's rows built by zip, not a loop in Python: this runs for every packet.
        # The checksums are the store's, once per batch row where it lives.
        self._pending_bodies += admitted
        self._pending_window.extend(zip(range(first, seq), repeat(now), sizes, strict=False))
        self._bytes += sum(sizes)
        self._pending_packets.extend(packets[start:end])
        if any(map(_payload_ref, packets[start:end])):
            for offset, packet in enumerate(packets[start:end]):
                if packet.payload_ref is not None:
                    self.refs.add(first + offset, packet_refs(packet))
        self._count += end - start
        self._next_seq = seq
        done = asyncio.get_running_loop().create_future()
        self._waiters.append((seq - 1, done))
        self._work.set()
        return done

    async def _displace_for(self, bodies: list[bytes]) -> int:
        """`drop_oldest`: make room for `bodies` by dropping the oldest queued packets (in
        memory first, then on disk); when that is not enough, the oldest of `bodies`
        themselves. Returns how many of those."""
        max_packets = self.max_packets if self.max_packets is not None else 1 << 62
        need_packets = self._count + len(bodies) - max_packets
        need_bytes = self._bytes + sum(len(b) for b in bodies) - self.max_store_bytes
        displaced = 0
        while (need_packets > 0 or need_bytes > 0) and self._items:
            self._items.popleft()
            seq, _at, size = self._rows.popleft()
            self._deletes.append(seq)
            self.refs.remove(seq)
            self._forget(1, size)
            need_packets -= 1
            need_bytes -= size
            displaced += 1
        if displaced:
            self._leave(displaced)
        if (need_packets > 0 or need_bytes > 0) and self._spilled:
            average = max(self._spilled_bytes // self._spilled, 1)
            k = min(self._spilled, max(need_packets, -(-need_bytes // average)))
            # Counted once the store says which rows went: a read of the window may have
            # taken some of the oldest meanwhile, and then newer ones go instead.
            count, size, gone = await self._displace_on_disk(k)
            self.refs.remove_within(gone)
            self._spilled -= count
            self._spilled_bytes -= size
            self._forget(count, size)
            self._leave(count)
            need_packets -= count
            need_bytes -= size
            displaced += count
        own = 0
        while (need_packets > 0 or need_bytes > 0) and own < len(bodies):
            need_packets -= 1
            need_bytes -= len(bodies[own])
            own += 1
        if displaced or own:
            self.metrics.drop(DropReason.DISPLACED, displaced)
            self.metrics.refused(DropReason.DISPLACED, own)
        self._work.set()
        return own

    async def _displace_on_disk(self, k: int) -> tuple[int, int, list[tuple[int, int]]]:
        try:
            return await self.worker.call(DurableStore.displace, k)
        except Exception as exc:
            self._disk_error(exc)
            return 0, 0, []

    async def _wait_for_space(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._space_waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._space_waiters:
                self._space_waiters.remove(waiter)

    def _wake_first(self) -> None:
        if self._space_waiters and self._bodies_fitting([b""], 0):
            first = self._space_waiters[0]
            if not first.done():
                first.set_result(None)
