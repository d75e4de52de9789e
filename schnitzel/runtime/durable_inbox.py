"""A node's inbox backed by a SQLite file: packets are accepted only once committed.

    producers ──put──▶ pending ──group commit──▶ store ──▶ window (memory) ──take──▶ node
                                                   ▲                                  │
                                                   └──────── delete once settled ◀────┘

- `put` waits until the packets are committed: a producer retires its own inputs only then,
  so nothing is ever only in flight between two places.
- One committer task writes whatever is pending in one transaction; packets arriving while a
  commit runs join the next one (group commit: the wait is bounded by one commit).
- The newest committed packets stay in memory (up to the inbox's `max`) so a node keeping up
  never reads them back; a backlog beyond that lives on disk only and is read back in order.
- A packet is deleted after its node settled it (delivered, passed on, filtered or handled by
  the error policy), in the next commit. A crash before that delivers it again.
- Over `max_packets` / `max_bytes` the inbox's overflow policy applies, and every drop is
  counted. A full disk holds producers back (backpressure) and counts `disk_errors`.
- With `on_error: park` a packet the node failed on moves to the store's parked table in the
  commit that settles its batch (`schnitzel.durable.parking`); an operator requeues or drops
  it later (`requeue_parked`, `drop_parked`), through the same commits.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter
from pathlib import Path

from schnitzel.contract.codec import decode_packet, encode_packet_bytes
from schnitzel.contract.packet import StreamPacket
from schnitzel.contract.refs import packet_refs
from schnitzel.contract.run_report import DurableReport
from schnitzel.durable.parking import (
    ParkedRow,
    ParkingChanges,
    Selection,
    parked_totals,
    read_parked,
)
from schnitzel.durable.store import (
    Damaged,
    DiskFull,
    DurableStore,
    Loss,
    StoreError,
    StoreRow,
    checksum,
)
from schnitzel.errors import PacketDecodeError, PacketNotPortable
from schnitzel.runtime.health import FULL_FRACTION
from schnitzel.runtime.held_refs import RefCounts
from schnitzel.runtime.inbox import Inbox, InFlight
from schnitzel.runtime.inbox_protocol import Batch, Row
from schnitzel.runtime.metrics import DropReason, NodeMetrics

__all__ = ["DurableInbox", "DurableStats", "ParkingRequest"]

GROUP_MAX_ROWS = 8192
"""Most packets one transaction writes, so one commit stays short."""
RETRY_INITIAL_S = 0.05
RETRY_MAX_S = 2.0
"""Backoff between attempts to write after a full disk."""
RATE_WINDOW_S = 10.0
VACUUM_EVERY = 50_000
"""Settled packets between two checks whether an empty store should shrink its file."""
MAX_PARKED = 10_000
MAX_PARKED_BYTES = 64 << 20
"""Default bound of the parked table (`inbox.durable.max_parked`, `max_parked_bytes`)."""

Notify = Callable[[str, str], None]
"""(level, message) into the runtime's event log."""

_payload_ref = attrgetter("payload_ref")
_REF_KEY = b'"payload_ref":'
"""What an encoded packet with a `payload_ref` holds (codec.py): rows that may name blobs."""


class DurableStats:
    """Counters of one durable inbox, for the report and the console."""

    __slots__ = (
        "accepted",
        "disk_errors",
        "last_error",
        "lost",
        "parked",
        "parked_at_open",
        "parked_dropped",
        "quarantined",
        "replayed",
        "requeued",
        "rows_quarantined",
        "samples",
        "settled",
    )

    def __init__(self) -> None:
        self.replayed = 0
        """Packets found in the store at start (from earlier runs)."""
        self.accepted = 0
        """Packets committed during this run."""
        self.settled = 0
        """Packets deleted after their node was done with them."""
        self.disk_errors = 0
        self.last_error = ""
        self.parked_at_open = 0
        """Parked packets found in the store at start."""
        self.parked = 0
        """Packets this run parked (`on_error: park`)."""
        self.requeued = 0
        """Parked packets this run moved back to the backlog."""
        self.parked_dropped = 0
        """Parked packets this run deleted (by an operator, or over the parking bound)."""
        self.quarantined: str | None = None
        self.lost: Loss | None = None
        """Packets the store owed at open that its file no longer held."""
        self.rows_quarantined = 0
        """Rows moved to the store's quarantine table (changed on disk, or undecodable)."""
        self.samples: deque[tuple[float, int, int]] = deque()

    def sample(self, now: float) -> None:
        self.samples.append((now, self.accepted, self.settled))
        while len(self.samples) > 2 and now - self.samples[1][0] >= RATE_WINDOW_S:
            self.samples.popleft()

    def rates(self) -> tuple[float, float]:
        """(fill, drain) in packets per second over the last samples."""
        if len(self.samples) < 2:
            return 0.0, 0.0
        (t0, a0, s0), (t1, a1, s1) = self.samples[0], self.samples[-1]
        if t1 <= t0:
            return 0.0, 0.0
        return (a1 - a0) / (t1 - t0), (s1 - s0) / (t1 - t0)


@dataclass
class ParkingRequest:
    """An operator's requeue or drop of parked packets, done by the next commit."""

    action: str
    """"requeue" or "drop"."""
    selection: Selection
    done: asyncio.Future[ParkingChanges] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class DurableInbox(Inbox):
    """An inbox whose packets live in a SQLite file until their node settled them."""

    __slots__ = (
        "_bytes",
        "_closing",
        "_committer",
        "_count",
        "_deletes",
        "_failing",
        "_first_spilled_at",
        "_given_up",
        "_held",
        "_loading",
        "_next_seq",
        "_parking_requests",
        "_parks",
        "_pending",
        "_pending_packets",
        "_pool",
        "_rows",
        "_spilled",
        "_spilled_bytes",
        "_vacuum_after",
        "_waiters",
        "_work",
        "max_bytes",
        "max_packets",
        "max_parked",
        "max_parked_bytes",
        "notify",
        "parked_bytes",
        "parked_count",
        "path",
        "refs",
        "stats",
        "store",
        "unconfirmed",
        "unconfirmed_count",
    )

    durable = True

    def __init__(
        self,
        window: int,
        overflow: str,
        metrics: NodeMetrics,
        in_flight: InFlight,
        path: Path,
        max_bytes: int,
        max_packets: int | None,
        synchronous: str,
        notify: Notify,
        max_parked: int = MAX_PARKED,
        max_parked_bytes: int = MAX_PARKED_BYTES,
    ) -> None:
        super().__init__(window, overflow, metrics, in_flight)
        self.path = path
        self.max_bytes: int = max_bytes  # always bounded, unlike a memory inbox
        self.max_packets = max_packets
        self.max_parked = max_parked
        self.max_parked_bytes = max_parked_bytes
        self.parked_count = 0
        """Packets in the parked table (as of the last commit)."""
        self.parked_bytes = 0
        self._parks: list[tuple[int, float, str, str]] = []
        """(seq, parked at, reason, packet id) of rows the next commit parks."""
        self._parking_requests: deque[ParkingRequest] = deque()
        self.notify = notify
        self.store = DurableStore(path, synchronous)
        self.stats = DurableStats()
        self.refs = RefCounts()
        """Blob URIs the rows in the store point at (runtime/held_refs.py)."""
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"schnitzel-store-{path.stem}")
        self._rows: deque[tuple[int, float, int]] = deque()
        """(seq, enqueued, size) of each packet in the window, in step with `_items`."""
        self._held: Batch | None = None
        """The batch the node took and has not ended yet."""
        self.unconfirmed: deque[tuple[list[tuple[int, float, int]], dict[str, int]]] = deque()
        """Settled batches whose output only reached in-memory inboxes yet: (rows, trail)."""
        self.unconfirmed_count = 0
        self._pending: list[StoreRow] = []
        self._pending_packets: list[StreamPacket] = []
        self._deletes: list[int] = []
        self._count = 0
        """Packets in the store or pending: what the size limit is checked against."""
        self._bytes = 0
        self._spilled = 0
        """Committed packets on disk only (not in the window), all newer than the window."""
        self._spilled_bytes = 0
        self._first_spilled_at: float | None = None
        self._next_seq = 1
        self._loading = False
        self._work = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        """(last seq, future) per admitted run of packets, resolved once that seq is committed."""
        self._failing = False
        self._given_up = False
        self._closing = False
        self._vacuum_after = VACUUM_EVERY

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the store; its backlog counts as queued and is taken first."""
        loop = asyncio.get_running_loop()
        backlog = await loop.run_in_executor(self._pool, self.store.open)
        if backlog.quarantined is not None:
            self.stats.quarantined = str(backlog.quarantined)
            self.stats.last_error = f"unreadable store moved to {backlog.quarantined}"
            self.notify(
                "error",
                f"durable store {str(self.path)!r} was unreadable: moved to "
                f"{str(backlog.quarantined)!r} (kept for inspection) and started empty",
            )
        if backlog.lost is not None:
            self.stats.lost = backlog.lost
            self.stats.last_error = f"durable store {str(self.path)!r}: {backlog.lost.words()}"
            self.notify("error", self.stats.last_error)
        if backlog.note:
            self.notify("warning", f"durable store {str(self.path)!r}: {backlog.note}")
        self._next_seq = backlog.next_seq
        queued, parked_refs = await loop.run_in_executor(self._pool, self.store.query, _stored_refs)
        for seq, uris in queued:
            self.refs.add(seq, uris)
        self.refs.hold(parked_refs)
        parked = await loop.run_in_executor(self._pool, self.store.query, parked_totals)
        self.parked_count, self.parked_bytes = parked
        self.stats.parked_at_open = parked[0]
        if parked[0]:
            self.notify(
                "warning",
                f"{parked[0]} parked packets in the store from earlier runs; see "
                "`schnitzel ctl parked NODE`",
            )
        self._count = self._spilled = backlog.count
        self._bytes = self._spilled_bytes = backlog.bytes
        self.stats.replayed = backlog.count
        if backlog.count:
            self._first_spilled_at = time.time()
            self.entered += backlog.count
            self.metrics.saw_depth(backlog.count)
            self.in_flight.add(backlog.count)
            self.in_flight.durable += backlog.count
            self.notify("info", f"replaying {backlog.count} packets ({backlog.bytes} bytes) first")
        self._committer = asyncio.create_task(self._commit_loop(), name=f"store-{self.path}")

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every admitted packet is committed; False if that did not happen in
        time (a full disk): those packets will be lost at shutdown."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._pending and loop.time() < deadline:
            self._work.set()
            await asyncio.sleep(0.01)
        return not self._pending

    async def shutdown(self, timeout_s: float = 5.0) -> None:
        """Write what is pending (deletes, last packets), then close the file."""
        loop = asyncio.get_running_loop()
        if self._committer is not None:
            self._closing = True
            self._work.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._committer), timeout_s)
            except TimeoutError:  # a disk that stays full: what is pending is lost, counted
                self._committer.cancel()
                await asyncio.gather(self._committer, return_exceptions=True)
        while self._parking_requests:  # never done: the operator is told so
            request = self._parking_requests.popleft()
            if not request.done.done():
                request.done.set_exception(
                    RuntimeError(f"durable store {str(self.path)!r} closed first")
                )
        if self._pending:  # never committed: lost, and counted
            self.metrics.refused(DropReason.SHUTDOWN, len(self._pending))
            self._pending.clear()
            self._pending_packets.clear()
        try:
            await loop.run_in_executor(self._pool, self.store.close)
        finally:
            self._pool.shutdown(wait=False)

    # -- producers --------------------------------------------------------------------------

    async def put(self, batch: list[StreamPacket], force: bool = False) -> None:
        """Return once every packet of `batch` is committed, dropped by the overflow policy
        (counted) or refused as not portable (counted)."""
        if self.closed:
            self.metrics.refused(DropReason.NODE_FAILED, len(batch))
            return
        packets, bodies = self._encode(batch)
        groups: list[asyncio.Future[None]] = []
        start = 0
        try:
            while start < len(packets):
                fits = self._bodies_fitting(bodies, start)
                if fits == len(packets) - start or force:
                    groups.append(self._admit(packets, bodies, start, len(packets)))
                    start = len(packets)
                elif self.overflow == "drop_oldest":  # the newest win, these among them
                    start += await self._displace_for(bodies[start:])
                    if start < len(packets):
                        groups.append(self._admit(packets, bodies, start, len(packets)))
                    start = len(packets)
                elif fits:
                    groups.append(self._admit(packets, bodies, start, start + fits))
                    start += fits
                elif self.overflow == "drop_new":
                    self._drop(len(packets) - start, DropReason.INBOX_FULL)
                    start = len(packets)
                else:
                    await self._wait_for_space()
                    if self.closed:
                        self._drop(len(packets) - start, DropReason.NODE_FAILED)
                        start = len(packets)
        except asyncio.CancelledError:  # a forced stop: what never got in is lost, and counted
            self._drop(len(packets) - start, DropReason.SHUTDOWN)
            raise
        for group in groups:
            await asyncio.shield(group)  # a cancelled producer does not cancel the commit

    def _drop(self, n: int, reason: str) -> None:
        if n:
            self.metrics.refused(reason, n)

    def offer(
        self, batch: list[StreamPacket], start: int = 0, force: bool = False, newcomer: bool = False
    ) -> int:
        """Admit `batch[start:]` to the next commit without waiting; return the index of the
        first packet not admitted (`len(batch)` when all were dealt with).

        Unlike `put`, the packets are not committed when this returns (a producer that must
        not retire its inputs before then awaits `put`). What fits is admitted, packets that
        are not portable are dropped (counted), `drop_new` drops what does not fit (counted);
        where room must be waited for (`block`) or made on disk (`drop_oldest`) it stops and
        returns that index, for `put` to finish.
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
        n = len(bodies) - start
        if count + n <= max_packets and size + sum(map(len, bodies[start:])) <= self.max_bytes:
            return n  # the common case, all of them, seen without a loop in Python
        n = 0
        for body in bodies[start:]:
            if count + 1 > max_packets or (size + len(body) > self.max_bytes and count > 0):
                break  # an empty store takes one packet of any size, or it would never move
            count += 1
            size += len(body)
            n += 1
        return n

    def _admit(
        self, packets: list[StreamPacket], bodies: list[bytes], start: int, end: int
    ) -> asyncio.Future[None]:
        now = time.time()
        first = self._next_seq
        seq = first + end - start
        admitted = bodies[start:end]
        # Rows built by zip and map, not a loop in Python: this runs for every packet.
        self._pending.extend(
            zip(range(first, seq), repeat(now), admitted, map(checksum, admitted), strict=False)
        )
        self._bytes += sum(map(len, admitted))
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
        need_bytes = self._bytes + sum(len(b) for b in bodies) - self.max_bytes
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
            count, size = await self._displace_on_disk(k)
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

    def _leave(self, n: int) -> None:
        """`n` queued packets left without reaching the node (displaced, unreadable)."""
        self.left += n
        self.in_flight.retire(n)
        self.in_flight.durable -= n

    async def _displace_on_disk(self, k: int) -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, self.store.displace, k)
        except Exception as exc:
            self._disk_error(exc)
            return 0, 0

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

    # -- committing -------------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = RETRY_INITIAL_S
        while not self._closing or self._has_work():
            await self._work.wait()
            self._work.clear()
            while self._has_work():
                rows = self._pending[:GROUP_MAX_ROWS]
                packets = self._pending_packets[: len(rows)]
                deleted, self._deletes = self._deletes, []
                changes, request = self._parking_changes(len(rows) == len(self._pending))
                to_window = (
                    self._spilled == 0
                    and not self._loading
                    and len(self._items) + len(rows) <= self.capacity
                )
                cursor = rows[-1][0] if rows and to_window else 0
                try:
                    await loop.run_in_executor(
                        self._pool, _commit, self.store, rows, _ranges(deleted), cursor, changes
                    )
                except Exception as exc:
                    self._deletes = deleted + self._deletes
                    self._parks = changes.park + self._parks
                    if request is not None:
                        self._parking_requests.appendleft(request)
                    self._disk_error(exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, RETRY_MAX_S)
                    continue
                backoff = RETRY_INITIAL_S
                if self._failing:
                    self._failing = False
                    self.notify("info", f"durable store {str(self.path)!r} writes again")
                del self._pending[: len(rows)], self._pending_packets[: len(rows)]
                if rows:
                    self._accept(rows, packets, to_window)
                    committed, waiters = rows[-1][0], self._waiters
                    while waiters and waiters[0][0] <= committed:
                        done = waiters.popleft()[1]
                        if not done.done():
                            done.set_result(None)
                if changes:
                    self._parking_done(changes, request)
                if not self._count and self.stats.settled >= self._vacuum_after:
                    self._vacuum_after = self.stats.settled + VACUUM_EVERY
                    await loop.run_in_executor(self._pool, self.store.vacuum_if_empty)

    def _has_work(self) -> bool:
        return bool(self._pending or self._deletes or self._parks or self._parking_requests)

    # -- parking ----------------------------------------------------------------------------

    def _parking_changes(self, all_pending: bool) -> tuple[ParkingChanges, ParkingRequest | None]:
        """What the next commit does to the parked table. An operator's request waits for a
        commit that writes every pending packet: requeued rows take seqs above all of them,
        so the backlog's order on disk stays the order it is read back in."""
        parks, self._parks = self._parks, []
        changes = ParkingChanges(
            park=parks, max_parked=self.max_parked, max_parked_bytes=self.max_parked_bytes
        )
        request = None
        if self._parking_requests and all_pending:
            request = self._parking_requests.popleft()
            if request.action == "requeue":
                changes.requeue = request.selection
                changes.requeue_base_seq = self._next_seq
                changes.requeue_at = time.time()
                changes.requeue_room = self.parked_count  # as of the last commit: all of them
                self._next_seq += changes.requeue_room
            else:
                changes.drop = request.selection
        return changes, request

    def _parking_done(self, changes: ParkingChanges, request: ParkingRequest | None) -> None:
        self.parked_count, self.parked_bytes = changes.total, changes.total_bytes
        self.stats.parked += changes.parked
        if changes.parked < len(changes.park):
            self.notify(
                "error",
                f"{len(changes.park) - changes.parked} packets to park were no longer in the store",
            )
        if changes.overflowed:
            self.stats.parked_dropped += changes.overflowed
            self.metrics.drop(DropReason.PARKED_OVERFLOW, changes.overflowed)
            self.notify(
                "error",
                f"parking is full ({self.max_parked} packets / {self.max_parked_bytes} bytes): "
                f"the {changes.overflowed} oldest parked packets were dropped; requeue or drop "
                "parked packets (`schnitzel ctl parked NODE`), or raise `max_parked`",
            )
        if changes.dropped:
            self.stats.parked_dropped += changes.dropped
            self.metrics.drop(DropReason.PARKED_DROPPED, changes.dropped)
        if changes.requeued:
            self._requeued(changes)
        if request is not None and not request.done.done():
            request.done.set_result(changes)

    def _requeued(self, changes: ParkingChanges) -> None:
        """Rows moved back into the backlog: on disk only, newer than anything queued."""
        n, size = changes.requeued, changes.requeued_bytes
        self.stats.requeued += n
        self._count += n
        self._bytes += size
        if not self._spilled:
            self._first_spilled_at = changes.requeue_at
        self._spilled += n
        self._spilled_bytes += size
        self.entered += n
        if not self._given_up:
            self.in_flight.add(n)
            self.in_flight.durable += n
        self.metrics.saw_depth(self.depth)
        self._load_if_low()

    async def change_parked(self, action: str, selection: Selection) -> ParkingChanges:
        """Requeue or drop parked packets (`action` "requeue" or "drop"); what was done,
        once committed."""
        if self._committer is None or self._committer.done() or self._closing:
            raise RuntimeError(f"durable store {str(self.path)!r} is closed")
        request = ParkingRequest(action, selection)
        self._parking_requests.append(request)
        self._work.set()
        return await request.done

    async def list_parked(
        self, after: int = 0, limit: int = 100, only: int | None = None
    ) -> list[ParkedRow]:
        """Parked packets oldest first, or the one `only` with its whole packet."""

        def read(db: object) -> list[ParkedRow]:
            return read_parked(db, after, limit, only)  # type: ignore[arg-type]

        if self._committer is None or self._committer.done() or self._closing:
            raise RuntimeError(f"durable store {str(self.path)!r} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.store.query, read)

    def _accept(self, rows: list[StoreRow], packets: list[StreamPacket], to_window: bool) -> None:
        n = len(rows)
        metrics = self.metrics
        metrics.arrived(n)
        self.stats.accepted += n
        self.entered += n
        if not self._given_up:  # after that the run no longer waits for anything
            self.in_flight.add(n)
            self.in_flight.durable += n
        if to_window:
            self._items.extend(packets)
            self._rows.extend([(seq, at, len(body)) for seq, at, body, _sum in rows])
            consumer = self._consumer
            if consumer is not None and not consumer.done():
                consumer.set_result(None)
        else:
            if not self._spilled:
                self._first_spilled_at = rows[0][1]
            self._spilled += n
            self._spilled_bytes += sum(len(row[2]) for row in rows)
            self._load_if_low()
        metrics.saw_depth(self.depth)

    def _disk_error(self, exc: Exception) -> None:
        """Count a failed store call; report the first of an outage and every 100th."""
        self.stats.disk_errors += 1
        self.stats.last_error = str(exc)
        self.metrics.note(None, exc)
        if not self._failing or self.stats.disk_errors % 100 == 0:
            hint = " (disk full: producers wait for space)" if isinstance(exc, DiskFull) else ""
            self.notify("error", f"{exc}{hint}; retrying")
        self._failing = True

    # -- the consumer -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    @property
    def depth(self) -> int:
        return len(self._items) + self._spilled

    @property
    def backlog(self) -> int:
        """Packets in the store: queued, and the batch the node holds."""
        held = 0 if self._held is None else len(self._held.packets)
        return len(self._items) + self._spilled + held + self.unconfirmed_count

    @property
    def backlog_bytes(self) -> int:
        return self._bytes - sum(len(row[2]) for row in self._pending)

    def summary(self) -> DurableReport:
        """The report's `durable` entry of this inbox."""
        backlog, size = self.backlog, self.backlog_bytes
        fill, drain = self.stats.rates()
        net = drain - fill
        eta: float | None = 0.0 if not backlog else (backlog / net if net > 0 else None)
        to_full: float | None = None
        if net < 0:
            per_packet = size / backlog if backlog else 1.0
            to_full = (self.max_bytes - size) / (-net * max(per_packet, 1.0))
            if self.max_packets is not None:
                to_full = min(to_full, (self.max_packets - backlog) / -net)
            to_full = max(to_full, 0.0)
        return {
            "path": str(self.path),
            "backlog": backlog,
            "bytes": size,
            "oldest_age_s": round(self.oldest_age_s(), 3),
            "fill_rate_per_s": round(fill, 1),
            "drain_rate_per_s": round(drain, 1),
            "eta_s": None if eta is None else round(eta, 1),
            "time_to_full_s": None if to_full is None else round(to_full, 1),
            "max_bytes": self.max_bytes,
            "max_packets": self.max_packets,
            "unconfirmed": self.unconfirmed_count,
            "replayed": self.stats.replayed,
            "accepted": self.stats.accepted,
            "settled": self.stats.settled,
            "disk_errors": self.stats.disk_errors,
            "last_error": self.stats.last_error,
            "quarantined": self.stats.quarantined,
            "lost": None if self.stats.lost is None else self.stats.lost.as_dict(),
            "rows_quarantined": self.stats.rows_quarantined,
            "parked": self.parked_count,
            "parked_bytes": self.parked_bytes,
            "parked_at_open": self.stats.parked_at_open,
            "parked_this_run": self.stats.parked,
            "requeued": self.stats.requeued,
            "parked_dropped": self.stats.parked_dropped,
            "max_parked": self.max_parked,
        }

    def problem(self) -> str:
        """What ails the store now, for the node's health ("" when nothing)."""
        if self._failing:
            return f"durable store failing: {self.stats.last_error}"
        fill = self._bytes / self.max_bytes
        if self.max_packets is not None:
            fill = max(fill, self._count / self.max_packets)
        if fill >= FULL_FRACTION:
            return f"durable store {100 * fill:.0f}% full"
        if self.stats.quarantined:  # its packets wait in the moved file until someone looks
            return f"durable store was unreadable: moved to {self.stats.quarantined}"
        if self.stats.lost is not None:
            return f"durable store {self.stats.lost.words()}"
        if self.stats.rows_quarantined:
            return (
                f"durable store: {self.stats.rows_quarantined} damaged rows quarantined "
                "(changed on disk or undecodable; kept in its quarantine table)"
            )
        return ""

    def parked_problem(self) -> str:
        """Parked packets waiting for an operator, for the node's health ("" when none). Kept
        apart from `problem()`: a node failing most packets is failing, not just degraded."""
        if self.parked_count:
            return f"{self.parked_count} packets parked (refused); see `schnitzel ctl parked`"
        return ""

    def oldest_age_s(self) -> float:
        """Age of the oldest packet in the store (0 when empty)."""
        if self._held is not None and self._held.rows:
            at = self._held.rows[0][1]
        elif self._rows:
            at = self._rows[0][1]
        elif self._spilled and self._first_spilled_at is not None:
            at = self._first_spilled_at
        else:
            return 0.0
        return max(time.time() - at, 0.0)

    def add_refs(self, into: set[str]) -> None:
        """Add the blob URIs its rows point at to `into` (runtime/held_refs.py)."""
        into.update(self.refs.counts)

    def take(self, limit: int) -> Batch:
        """Up to `limit` packets, oldest first, with their rows: the node holds one batch at
        a time, until it settles, gives back or abandons it."""
        start = self.left
        packets = self._take_packets(limit)
        rows = self._rows
        self._held = held = Batch(self, packets, start, [rows.popleft() for _ in packets])
        self._load_if_low()
        return held

    def _settle(
        self,
        held: Batch,
        kept: list[StreamPacket] | None,
        trail: dict[str, int] | None,
        parked: list[tuple[StreamPacket, str]] | None,
    ) -> None:
        """Delete the batch (but the packets in `kept`) in the next commit; the packets in
        `parked` (with the reason) move to the parked table in that commit. With a `trail`
        (where its output went in inboxes that are only in memory) the other rows stay until
        `confirm` says the output is safe there too."""
        if self._held is held:
            self._held = None
        taken, batch = held.rows or [], held.packets
        if not taken:
            self.in_flight.retire(0)
            return
        if kept:
            kept_ids = {id(p) for p in kept}
            taken = [row for row, p in zip(taken, batch, strict=True) if id(p) not in kept_ids]
        elif parked:
            taken = self._park(taken, batch, parked)
        self.in_flight.durable -= len(batch)
        # Either way the rows stop counting against the size limit now: what waits for
        # confirmation is bounded by the in-memory inboxes downstream, and a feedback loop
        # back into this inbox must never wait for its own confirmation.
        self._forget(len(taken), sum(size for _seq, _at, size in taken))
        if trail:
            self.unconfirmed.append((taken, trail))
            self.unconfirmed_count += len(taken)
        else:
            self._delete(taken)
        self.in_flight.retire(len(batch))

    def _park(
        self, taken: list[Row], batch: list[StreamPacket], parked: list[tuple[StreamPacket, str]]
    ) -> list[Row]:
        """Mark the rows of the `parked` packets for the next commit; the other rows."""
        reasons = {id(p): reason for p, reason in parked}
        now = time.time()
        rest: list[Row] = []
        moved: list[Row] = []
        for row, packet in zip(taken, batch, strict=True):
            reason = reasons.get(id(packet))
            if reason is None:
                rest.append(row)
            else:
                self._parks.append((row[0], now, reason, packet.packet_id))
                self.refs.park(row[0])
                moved.append(row)
        self._forget(len(moved), sum(size for _seq, _at, size in moved))
        self._delete(moved)
        return rest

    def confirm(self, entries: int) -> None:
        """The output of the first `entries` settled batches is safe downstream: delete them."""
        for _ in range(entries):
            taken, _trail = self.unconfirmed.popleft()
            self.unconfirmed_count -= len(taken)
            self._delete(taken)

    def _delete(self, rows: list[tuple[int, float, int]]) -> None:
        if rows:
            self._deletes.extend(seq for seq, _at, _size in rows)
            if self.refs.rows:
                for seq, _at, _size in rows:
                    self.refs.remove(seq)
            self.stats.settled += len(rows)
            self._work.set()

    def _forget(self, n: int, size: int) -> None:
        """`n` packets of `size` bytes left the store: producers waiting for space may go."""
        self._count -= n
        self._bytes -= size
        if self._space_waiters:
            self._wake_first()

    def _load_if_low(self) -> None:
        if self._spilled and not self._loading and len(self._items) <= self.capacity // 2:
            self._loading = True
            asyncio.get_running_loop().create_task(self._load())

    async def _load(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            want = max(self.capacity - len(self._items), 1)
            rows = await loop.run_in_executor(self._pool, _read_decoded, self.store, want)
        except Exception as exc:
            self._loading = False
            self._disk_error(exc)
            return
        self._loading = False
        if not rows and self._spilled:  # the file changed under us: count them, and go on
            missing = self._spilled
            self.notify("error", f"{missing} packets expected on disk were not found")
            self._spilled = self._spilled_bytes = 0
            self._forget(missing, 0)
            self._leave(missing)
            self.metrics.drop(DropReason.CORRUPT, missing)
        for seq, at, size, packet in rows:
            self._spilled -= 1
            self._spilled_bytes -= size
            if isinstance(packet, Exception):  # damaged: the store quarantined it already
                self.stats.rows_quarantined += 1
                self._forget(1, size)
                self._leave(1)
                self.metrics.drop(DropReason.CORRUPT, 1)
                self.metrics.note(None, packet)
                continue
            self._items.append(packet)
            self._rows.append((seq, at, size))
        self._spilled = max(self._spilled, 0)
        if self._spilled:
            self._first_spilled_at = time.time() if not rows else rows[-1][1]
        consumer = self._consumer
        if consumer is not None and not consumer.done() and self._items:
            consumer.set_result(None)
        self._load_if_low()

    async def wait_items(self) -> None:
        if self._items or self.closed:
            return
        self._load_if_low()
        await super().wait_items()

    def abandon(self, reason: str = DropReason.SHUTDOWN) -> int:
        """The run gives up: what is queued stays in the store for the next run, still
        counted as queued, and is not lost. Returns 0 (nothing lost)."""
        if not self._given_up:
            self._given_up = True
            self.in_flight.retire(self.depth)
            self.in_flight.durable -= self.depth
        return 0

    def _give_back(self, held: Batch) -> None:
        """Back to the front of the window, to be taken again; nothing changes on disk."""
        self._put_back(held)
        self.left -= len(held.packets)

    def _release(self, held: Batch) -> int:
        """The run gave up on the node: the batch stays in the store, first in line again
        (for the next run), and leaves the in-flight count. Returns how many."""
        n = self._put_back(held)
        self.in_flight.durable -= n
        self.in_flight.retire(n)
        return n

    def _put_back(self, held: Batch) -> int:
        self._items.extendleft(reversed(held.packets))
        self._rows.extendleft(reversed(held.rows or []))
        if self._held is held:
            self._held = None
        return len(held.packets)


def _commit(
    store: DurableStore,
    rows: list[StoreRow],
    deletes: list[tuple[int, int]],
    cursor: int,
    changes: ParkingChanges,
) -> None:
    """One commit on the store's thread, with the parking changes in its transaction: rows
    to requeue are read first and inserted with `rows` (seqs reserved above all of them)."""
    if not changes:
        store.commit(rows, deletes, cursor)
        return
    store.query(changes.plan_requeue)
    store.commit(rows + changes.requeued_rows, deletes, cursor, extra=changes.apply)


def _stored_refs(db: sqlite3.Connection) -> tuple[list[tuple[int, tuple[str, ...]]], list[str]]:
    """The blob URIs the store's rows name: (seq, URIs) per queued row that names some, and
    the URIs of its parked rows. Only rows holding a `payload_ref` are read and decoded; a row
    that does not decode names nothing (it is quarantined when read)."""
    queued: list[tuple[int, tuple[str, ...]]] = []
    for seq, body in db.execute(
        "SELECT seq, body FROM packets WHERE instr(body, ?) > 0 ORDER BY seq", (_REF_KEY,)
    ):
        uris = _body_refs(body)
        if uris:
            queued.append((seq, uris))
    parked: list[str] = []
    for (body,) in db.execute("SELECT body FROM parked WHERE instr(body, ?) > 0", (_REF_KEY,)):
        parked.extend(_body_refs(body))
    return queued, parked


def _body_refs(body: bytes) -> tuple[str, ...]:
    try:
        return packet_refs(decode_packet(bytes(body)))
    except PacketDecodeError:
        return ()


def _read_decoded(
    store: DurableStore, limit: int
) -> list[tuple[int, float, int, StreamPacket | PacketDecodeError]]:
    """Rows read back from disk, decoded on the store's thread. A damaged row (changed on
    disk, or not decoding) is moved to the store's quarantine table and returned with the
    error in place of its packet."""
    good, damaged = store.read(limit)
    decoded: list[tuple[int, float, int, StreamPacket | PacketDecodeError]] = []
    undecodable: list[Damaged] = []
    for seq, at, body in good:
        try:
            packet: StreamPacket | PacketDecodeError = decode_packet(body)
        except PacketDecodeError as exc:
            why = f"row {seq} of {store.path}: {exc}"
            undecodable.append((seq, at, len(body), why))
            packet = PacketDecodeError(why)
        decoded.append((seq, at, len(body), packet))
    if undecodable:
        try:
            store.quarantine([(seq, why) for seq, _at, _size, why in undecodable])
        except StoreError as exc:  # still never delivered; the next run moves them
            decoded = [
                (seq, at, size, PacketDecodeError(f"{packet} (left in place: {exc})"))
                if isinstance(packet, Exception)
                else (seq, at, size, packet)
                for seq, at, size, packet in decoded
            ]
    if damaged:
        decoded.extend((seq, at, size, PacketDecodeError(why)) for seq, at, size, why in damaged)
        decoded.sort(key=lambda row: row[0])
    return decoded


def _ranges(seqs: list[int]) -> list[tuple[int, int]]:
    """Sorted seqs as inclusive (first, last) runs of consecutive numbers."""
    if not seqs:
        return []
    ordered = sorted(set(seqs))
    if ordered[-1] - ordered[0] + 1 == len(ordered):  # the common case: one run, no loop
        return [(ordered[0], ordered[-1])]
    runs: list[tuple[int, int]] = []
    first = last = ordered[0]
    for seq in ordered[1:]:
        if seq == last + 1:
            last = seq
        else:
            runs.append((first, last))
            first = last = seq
    runs.append((first, last))
    return runs
