"""The state of a durable inbox (runtime/durable_inbox.py) and what every part of it uses:
packets leaving the store's counts, reading the backlog back from disk, counting a failed
store call. The parts are subclasses, one job each: `durable_parking.ParkingDesk`,
`durable_commits.Committer`, `durable_admission.Admission`, and `DurableInbox` itself."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING

from schnitzel.contract.packet import StreamPacket
from schnitzel.durable.store import DiskFull
from schnitzel.durable.store_calls import read_decoded
from schnitzel.durable.store_worker import store_worker
from schnitzel.runtime.durable_stats import DurableStats
from schnitzel.runtime.held_refs import RefCounts
from schnitzel.runtime.inbox import Inbox, InFlight
from schnitzel.runtime.inbox_protocol import Batch
from schnitzel.runtime.metrics import DropReason, NodeMetrics

if TYPE_CHECKING:
    from schnitzel.runtime.durable_parking import ParkingRequest

__all__ = ["MAX_PARKED", "MAX_PARKED_BYTES", "VACUUM_EVERY", "DurableState", "Notify"]

VACUUM_EVERY = 50_000
"""Settled packets between two checks whether an empty store should shrink its file."""
MAX_PARKED = 10_000
MAX_PARKED_BYTES = 64 << 20
"""Default bound of the parked table (`inbox.durable.max_parked`, `max_parked_bytes`)."""

Notify = Callable[[str, str], None]
"""(level, message) into the runtime's event log."""

row_size = itemgetter(2)
"""Of a window row (seq, enqueued, size)."""


class DurableState(Inbox):
    """What a durable inbox holds and counts; its parts subclass it."""

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
        "_parks_committed",
        "_parks_queued",
        "_pending_bodies",
        "_pending_packets",
        "_pending_window",
        "_rows",
        "_spilled",
        "_spilled_bytes",
        "_vacuum_after",
        "_waiters",
        "_window_moved",
        "_windowed",
        "_work",
        "max_packets",
        "max_parked",
        "max_parked_bytes",
        "max_store_bytes",
        "notify",
        "on_put_done",
        "parked_bytes",
        "parked_count",
        "path",
        "refs",
        "stats",
        "unconfirmed",
        "unconfirmed_count",
        "worker",
    )

    durable = True

    def __init__(
        self,
        window: int,
        overflow: str,
        metrics: NodeMetrics,
        in_flight: InFlight,
        path: Path,
        max_store_bytes: int,
        max_packets: int | None,
        synchronous: str,
        notify: Notify,
        max_parked: int = MAX_PARKED,
        max_parked_bytes: int = MAX_PARKED_BYTES,
        process: bool = False,
    ) -> None:
        super().__init__(window, overflow, metrics, in_flight)
        self.path = path
        # The store's limit (`durable.max_bytes`, encoded bytes on disk); not the memory
        # inbox's `max_bytes` (payload `nbytes` in memory), None here: the window a durable
        # inbox keeps in memory is bounded in packets only.
        self.max_store_bytes = max_store_bytes
        self.max_packets = max_packets
        self.max_parked = max_parked
        self.max_parked_bytes = max_parked_bytes
        self.parked_count = 0
        """Packets in the parked table (as of the last commit)."""
        self.parked_bytes = 0
        self._parks: list[tuple[int, float, str, str]] = []
        """(seq, parked at, reason, packet id) of rows the next commit parks."""
        # Packets queued to park since open, and parked by commits that went through: an
        # operator's request waits until the parks queued before it are committed (counts,
        # not the identity of a list, which a failed commit's retry merges into another).
        self._parks_queued = self._parks_committed = 0
        self._parking_requests: deque[ParkingRequest] = deque()
        self.notify = notify
        self.on_put_done: Callable[[], None] | None = None
        """Called when a `put` returns, its packets committed: the checkpoint tracker polls
        then (a source may checkpoint past them) instead of at its next tick."""
        self.worker = store_worker(path, synchronous, process)
        """Where the store lives and its calls run (schnitzel/durable/store_worker.py)."""
        self.stats = DurableStats()
        self.refs = RefCounts()
        """Blob URIs the rows in the store point at (runtime/held_refs.py)."""
        self._rows: deque[tuple[int, float, int]] = deque()
        """(seq, enqueued, size) of each packet in the window, in step with `_items`."""
        self._held: Batch | None = None
        """The batch the node took and has not ended yet."""
        self.unconfirmed: deque[tuple[list[tuple[int, float, int]], dict[str, int]]] = deque()
        """Settled batches whose output only reached in-memory inboxes yet: (rows, trail)."""
        self.unconfirmed_count = 0
        self._pending_bodies: list[bytes] = []
        self._pending_packets: list[StreamPacket] = []
        # The encoded packets admitted and not committed yet, their objects, and the
        # window's row (seq, enqueued, size) of each: made at admission, where the sizes are
        # known, and moved by a commit, whose seqs and time they give. Their seqs grow, and
        # are consecutive but after a requeue whose commit failed (its seqs stay reserved):
        # a commit stops at such a gap (durable_commits.py `_consecutive`).
        self._pending_window: list[tuple[int, float, int]] = []
        self._window_moved: asyncio.Future[None] | None = None
        """Resolved when the window or the packets not committed yet shrink (producers
        waiting for room in the window, `Admission._wait_for_window`)."""
        # The store seq of the newest packet a commit put in the window. Told to the store
        # with the next commit (which marks rows up to it as in memory, not to be read back):
        # no read of the store can come in between, as none runs while nothing is on disk
        # only, and what goes there goes with a commit.
        self._windowed = 0
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
        self._waiters: deque[tuple[int, asyncio.Future[bool]]] = deque()
        """(last seq, future) per admitted run of packets: True once that seq is committed,
        False when the store closed first (`DurableInbox.shutdown`)."""
        self._failing = self._given_up = self._closing = False
        self._vacuum_after = VACUUM_EVERY

    def _leave(self, n: int) -> None:
        """`n` queued packets left without reaching the node (displaced, unreadable)."""
        self.left += n
        self.in_flight.retire(n)
        self.in_flight.durable -= n

    def _window_room(self) -> None:
        """The node took packets from the window, or a commit ended: producers waiting for
        room there look again."""
        moved, self._window_moved = self._window_moved, None
        if moved is not None and not moved.done():
            moved.set_result(None)

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
        try:
            want = max(self.capacity - len(self._items), 1)
            rows = await self.worker.call(read_decoded, want)
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
        noted: Exception | None = None
        for seq, at, size, packet in rows:
            self._spilled -= 1
            self._spilled_bytes -= size
            if isinstance(packet, Exception):  # damaged: the store quarantined it already
                self.refs.remove(seq)
                self.stats.rows_quarantined += 1
                self._forget(1, size)
                self._leave(1)
                self.metrics.drop(DropReason.CORRUPT, 1)
                if packet is not noted:  # one recent error per damaged row, not per packet
                    self.metrics.note(None, packet)
                    noted = packet
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

    def store_lost(self, error: Exception) -> None:
        """Its store's process died (`StoreWorker.watch`): said once, and what ails the node
        from now on; the commit loop refuses what is pending (`_refuse_pending`), producers
        waiting for space refuse what they hold (what the store holds never leaves it now),
        and the run stops (runtime/stores.py)."""
        self._failing = True
        self.stats.last_error = str(error)
        self.metrics.note(None, error)
        self.notify(
            "error",
            f"{error}; the run stops (nothing it had not committed was acknowledged to its "
            "producers; the next run takes the store from its file)",
        )
        for waiter in self._space_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._work.set()

    def _refuse_pending(self) -> int:
        """The admitted packets not committed, which never will be (the store closed, or its
        process died): counted as `shutdown` refusals, gone from the backlog, and their
        producers told (their commits end False: runtime/commit_order.py). Returns how many."""
        lost = len(self._pending_bodies)
        if lost:
            self.metrics.refused(DropReason.SHUTDOWN, lost)
            self._forget(lost, sum(map(row_size, self._pending_window)))
            self._pending_bodies.clear()
            self._pending_packets.clear()
            self._pending_window.clear()
        while self._waiters:  # none of them waits for ever
            done = self._waiters.popleft()[1]
            if not done.done():
                done.set_result(False)
        if self._window_moved is not None:
            self._window_room()
        return lost

    def _fail_parking_requests(self, error: Exception) -> None:
        """An operator's requests that no commit will do: each caller is told `error`."""
        while self._parking_requests:
            request = self._parking_requests.popleft()
            if not request.done.done():
                request.done.set_exception(error)

    def _disk_error(self, exc: Exception) -> None:
        """Count a failed store call; report the first of an outage and every 100th (not
        a store whose process died: `store_lost` says it, and nothing retries then)."""
        self.stats.disk_errors += 1
        if self.worker.gone:
            if not self._failing:  # learnt here first: nobody watched the store
                self.store_lost(exc)
            return
        self.stats.last_error = str(exc)
        self.metrics.note(None, exc)
        if not self._failing or self.stats.disk_errors % 100 == 0:
            hint = " (disk full: producers wait for space)" if isinstance(exc, DiskFull) else ""
            self.notify("error", f"{exc}{hint}; retrying")
        self._failing = True
