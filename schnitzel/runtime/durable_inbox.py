"""A node's inbox backed by a SQLite file: packets are accepted only once committed.

    producers ──put──▶ pending ──group commit──▶ store ──▶ window (memory) ──take──▶ node
                                                   ▲                                  │
                                                   └──────── delete once settled ◀────┘

- `put` waits until the packets are committed: a producer retires its own inputs only then,
  so nothing is ever only in flight between two places. `admit` returns the commit's future
  instead: a producer makes its next batch while the commit runs, and retires its inputs once
  the future is done (runtime/commit_order.py).
- One committer task writes whatever is pending in one transaction; packets arriving while a
  commit runs join the next one (group commit: the wait is bounded by one commit).
- The newest committed packets stay in memory (up to the inbox's `max`) so a node keeping up
  never reads them back; a backlog beyond that lives on disk only and is read back in order.
- A packet is deleted after its node settled it (delivered, passed on, filtered or handled by
  the error policy), in the next commit. A crash before that delivers it again.
- Over `durable.max_packets` / `durable.max_bytes` (`max_store_bytes`) the inbox's overflow
  policy applies, and every drop is counted. A full disk holds producers back (backpressure)
  and counts `disk_errors`.
- With `on_error: park` a packet the node failed on moves to the store's parked table in the
  commit that settles its batch (`schnitzel.durable.parking`); an operator requeues or drops
  it later (`requeue_parked`, `drop_parked`), through the same commits.

This module holds the inbox's state, its lifecycle and its consumer side; the producer side
is `durable_admission.Admission`, the commit loop `durable_commits.Committer`, the parking
side `durable_parking.ParkingDesk` (mixins of this class), reads from disk
`schnitzel/durable/store_calls.py`, the counters `durable_stats`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from itertools import repeat, starmap
from operator import itemgetter

from schnitzel.contract.packet import StreamPacket
from schnitzel.contract.run_report import DurableReport
from schnitzel.durable.store import DurableStore, StoreError
from schnitzel.durable.store_calls import open_on_store
from schnitzel.runtime.durable_admission import Admission
from schnitzel.runtime.durable_commits import Committer
from schnitzel.runtime.durable_parking import ParkingRequest
from schnitzel.runtime.durable_quarantine import QuarantineDesk
from schnitzel.runtime.durable_state import row_size
from schnitzel.runtime.durable_stats import DurableStats
from schnitzel.runtime.health import FULL_FRACTION, STALL_S
from schnitzel.runtime.inbox_protocol import Batch, Row
from schnitzel.runtime.metrics import DropReason

__all__ = ["DurableInbox", "DurableStats", "ParkingRequest"]

Notify = Callable[[str, str], None]
"""(level, message) into the runtime's event log."""

_seq = itemgetter(0)
"""Of a row (seq, enqueued, size)."""


class DurableInbox(Admission, Committer, QuarantineDesk):
    """An inbox whose packets live in a SQLite file until their node settled them."""

    __slots__ = ()

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the store; its backlog counts as queued and is taken first."""
        opened = await self.worker.call(open_on_store)
        if self.worker.fallback is not None:
            self.notify("warning", f"durable store {str(self.path)!r}: {self.worker.fallback}")
        backlog, (queued, parked_refs), parked = opened
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
        if backlog.set_aside:
            self.stats.rows_quarantined += backlog.set_aside
            self.stats.last_error = f"durable store {str(self.path)!r}: {backlog.set_aside_why}"
            self.notify("error", self.stats.last_error)
        self._next_seq = backlog.next_seq
        for seq, uris in queued:
            self.refs.add(seq, uris)
        self.refs.hold(parked_refs)
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

    async def shutdown(self, timeout_s: float = 5.0) -> int:
        """Write what is pending (deletes, last packets), then close the file. Returns how
        many admitted packets could not be committed (a disk that stayed full): dropped.
        Each step waits at most `timeout_s`; a store that does not answer its close in
        time is left (StoreError)."""
        if self._committer is not None:
            self._closing = True
            self._work.set()
            try:
                wait_s = 0 if self.worker.gone else timeout_s  # it would only retry
                await asyncio.wait_for(asyncio.shield(self._committer), wait_s)
            except TimeoutError:  # a disk that stays full: what is pending is lost, counted
                self._committer.cancel()
                await asyncio.gather(self._committer, return_exceptions=True)
        self._fail_parking_requests(RuntimeError(f"durable store {str(self.path)!r} closed first"))
        lost = self._refuse_pending()
        try:
            if not self.worker.gone:  # a store whose process died has nothing left to close
                await asyncio.wait_for(self.worker.call(DurableStore.close), timeout_s)
        except TimeoutError:  # a stopped process, a hung file system: the stop still ends
            raise StoreError(
                f"durable store {str(self.path)!r} did not answer within {timeout_s:g} s "
                f"when closed (its process stopped, or its file system hangs): "
                f"{self.worker.left_behind}; the next run takes the store from its file, "
                "which keeps every packet it committed"
            ) from None
        finally:
            await self.worker.close()
            if self.worker.said:
                self.notify(
                    "warning",
                    f"durable store {str(self.path)!r}: its process wrote: {self.worker.said}",
                )
        return lost

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
        return self._bytes - sum(map(row_size, self._pending_window))

    def summary(self) -> DurableReport:
        """The report's `durable` entry of this inbox."""
        backlog, size = self.backlog, self.backlog_bytes
        fill, drain = self.stats.rates()
        net = drain - fill
        eta: float | None = 0.0 if not backlog else (backlog / net if net > 0 else None)
        to_full: float | None = None
        if net < 0:
            per_packet = size / backlog if backlog else 1.0
            to_full = (self.max_store_bytes - size) / (-net * max(per_packet, 1.0))
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
            "max_bytes": self.max_store_bytes,
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
            "requeued_from_quarantine": self.stats.requeued_from_quarantine,
            "parked_dropped": self.stats.parked_dropped,
            "max_parked": self.max_parked,
        }

    def gone(self) -> str:
        """How its store's process died, for the node's health (failing); "" while it
        serves, and for a store on a thread."""
        return self.stats.last_error if self.worker.gone else ""

    def problem(self) -> str:
        """What ails the store now, for the node's health ("" when nothing)."""
        if self._failing:
            return f"durable store failing: {self.stats.last_error}"
        waited = self.worker.waited_s()
        if waited >= STALL_S:
            return (
                f"durable store {str(self.path)!r} has not answered for {waited:.0f} s (its "
                "process stopped, or its file system hangs): what it was asked waits"
            )
        fill = self._bytes / self.max_store_bytes
        if self.max_packets is not None:
            fill = max(fill, self._count / self.max_packets)
        if fill >= FULL_FRACTION:
            return f"durable store {100 * fill:.0f}% full"
        if self.stats.quarantined:  # its packets wait in the moved file until someone looks
            return f"durable store was unreadable: moved to {self.stats.quarantined}"
        if self.stats.lost is not None:
            return f"durable store {self.stats.lost.words()}"
        # Quarantined this run and not requeued since (an operator's requeue may take older
        # entries too: then fewer are said to wait, never more).
        waiting = self.stats.rows_quarantined - self.stats.requeued_from_quarantine
        if waiting > 0:
            return (
                f"durable store: {waiting} packets of damaged rows quarantined (changed on "
                "disk or undecodable; kept in its quarantine table: `schnitzel ctl quarantine "
                "list NODE`)"
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
        items, rows = self._items, self._rows
        if len(items) <= limit:
            packets, taken = list(items), list(rows)
            items.clear()
            rows.clear()
        else:  # popped by C loops: this runs for every packet the node takes
            packets = list(starmap(items.popleft, repeat((), limit)))
            taken = list(starmap(rows.popleft, repeat((), limit)))
        # Not the memory inbox's `_take_packets`, which sums payload `nbytes` (the memory
        # `max_bytes`, None here): the store's limit counts encoded bytes at admission.
        self.left += len(packets)
        if self._space_waiters:
            self._wake_first()
        self._held = held = Batch(self, packets, start, taken)
        self._load_if_low()
        if self._window_moved is not None:
            self._window_room()
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
        self._forget(len(taken), sum(map(row_size, taken)))
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
                self._parks_queued += 1
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
            self._deletes.extend(map(_seq, rows))
            if self.refs.rows:
                for seq, _at, _size in rows:
                    self.refs.remove(seq)
            self.stats.settled += len(rows)
            self._work.set()

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
