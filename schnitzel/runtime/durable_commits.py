"""The commit loop of a durable inbox (runtime/durable_inbox.py): one task that writes what is
pending (new packets, deletes of settled ones, parking changes) in one transaction on the
store's thread, then accepts the new packets (into the window, or on disk only) and wakes
their producers. A failed commit (a full disk) is retried with backoff; nothing of it is lost."""

from __future__ import annotations

import asyncio
import bisect

from schnitzel.contract.packet import StreamPacket
from schnitzel.durable.parking import ParkingChanges
from schnitzel.durable.store import DurableStore, NewRows, StoreError, seq_runs
from schnitzel.durable.store_calls import commit_on_store
from schnitzel.runtime.durable_parking import ParkingDesk, ParkingRequest
from schnitzel.runtime.durable_state import VACUUM_EVERY, row_size

__all__ = ["GROUP_MAX_ROWS", "Committer", "commit_on_store"]

GROUP_MAX_ROWS = 8192
"""Most packets one transaction writes, so one commit stays short."""
RETRY_INITIAL_S = 0.05
RETRY_MAX_S = 2.0
"""Backoff between attempts to write after a full disk."""


def _consecutive(window: list[tuple[int, float, int]]) -> int:
    """How many of the first pending packets' rows (seq, enqueued, size) have consecutive
    seqs: all of them but after a requeue whose commit failed, which reserved seqs above
    the packets pending then, so those admitted since come after a gap. One commit's
    `NewRows` holds one run of seqs."""
    n = len(window)
    if not n or window[-1][0] - window[0][0] == n - 1:  # seqs only grow: no gap
        return n
    first = window[0][0]
    return bisect.bisect_left(range(n), True, key=lambda i: window[i][0] - first != i)


class Committer(ParkingDesk):
    """A durable inbox's commit loop."""

    __slots__ = ()

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every admitted packet is committed; False if that did not happen in
        time (a full disk: those packets will be lost at shutdown), or cannot (the store's
        process died: some may have been refused already, `_without_store`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._pending_bodies and loop.time() < deadline and not self.worker.gone:
            self._work.set()
            await asyncio.sleep(0.01)
        return not self._pending_bodies and not self.worker.gone

    async def _commit_loop(self) -> None:
        backoff = RETRY_INITIAL_S
        while not self._closing or self._has_work():
            await self._work.wait()
            self._work.clear()
            while self._has_work():
                if self.worker.gone:
                    self._without_store()
                    break
                window = self._pending_window[:GROUP_MAX_ROWS]
                n = _consecutive(window)
                if n < len(window):
                    del window[n:]
                bodies = self._pending_bodies[:n]
                packets = self._pending_packets[:n]
                first, enqueued = window[0][:2] if n else (self._next_seq, 0.0)
                deleted, self._deletes = self._deletes, []
                changes, request = self._parking_changes(n == len(self._pending_bodies))
                try:
                    changes = await self.worker.call(
                        commit_on_store,
                        NewRows(first, enqueued, bodies),
                        seq_runs(deleted),
                        self._windowed,  # the store never reads back what is in memory
                        changes,
                    )
                except Exception as exc:
                    self._deletes = deleted + self._deletes
                    # Its parks first, then those queued meanwhile: a request asked meanwhile
                    # still waits for them (it counts parks, durable_parking.py).
                    changes.park.extend(self._parks)
                    self._parks = changes.park
                    if request is not None:
                        self._parking_requests.appendleft(request)
                    self._disk_error(exc)
                    if self.worker.gone:  # no commit will go through now: the run stops
                        continue
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, RETRY_MAX_S)
                    continue
                backoff = RETRY_INITIAL_S
                self._committed(window, packets, changes, request)
                if not self._count and self.stats.settled >= self._vacuum_after:
                    self._vacuum_after = self.stats.settled + VACUUM_EVERY
                    try:
                        await self.worker.call(DurableStore.vacuum_if_empty)
                    except Exception as exc:  # only pages not given back: said, and go on
                        self._disk_error(exc)

    def _committed(
        self,
        window: list[tuple[int, float, int]],
        packets: list[StreamPacket],
        changes: ParkingChanges,
        request: ParkingRequest | None,
    ) -> None:
        """A commit went through: its packets (rows `window`) are accepted, their producers
        woken, its parking changes done."""
        if self._failing:
            self._failing = False
            self.notify("info", f"durable store {str(self.path)!r} writes again")
        n = len(window)
        del self._pending_bodies[:n], self._pending_packets[:n], self._pending_window[:n]
        if self._window_moved is not None:
            self._window_room()
        if n:
            # Decided now, not when the commit began: meanwhile the node took what the window
            # held. Requeued rows go to disk, so these must too (order).
            to_window = (
                self._spilled == 0
                and not self._loading
                and not changes.restores
                and len(self._items) + n <= self.capacity
            )
            if to_window:  # the store learns it with the next commit, before any read
                self._windowed = window[-1][0]
            self._accept(window, packets, to_window)
            committed, waiters = window[-1][0], self._waiters
            while waiters and waiters[0][0] <= committed:
                done = waiters.popleft()[1]
                if not done.done():
                    done.set_result(True)
        if changes:
            self._parking_done(changes, request)

    def _without_store(self) -> None:
        """Its store's process died: what is pending is refused (`_refuse_pending`); what
        settled or was to be parked stays queued in the file, for the next run to deliver
        again (at least once); an operator's request is answered with the error."""
        self._refuse_pending()
        self._deletes.clear()
        self._parks.clear()
        self._fail_parking_requests(StoreError(self.stats.last_error))

    def _has_work(self) -> bool:
        return bool(self._pending_bodies or self._deletes or self._parks or self._parking_requests)

    def _accept(
        self, rows: list[tuple[int, float, int]], packets: list[StreamPacket], to_window: bool
    ) -> None:
        """Count the committed packets in, and put them (with their rows: seq, enqueued,
        size) in the window, or leave them on disk only to be read back."""
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
            self._rows.extend(rows)
            consumer = self._consumer
            if consumer is not None and not consumer.done():
                consumer.set_result(None)
        else:
            if not self._spilled:
                self._first_spilled_at = rows[0][1]
            self._spilled += n
            self._spilled_bytes += sum(map(row_size, rows))
            self._load_if_low()
        metrics.saw_depth(self.depth)
