"""The parking side of a durable inbox (runtime/durable_inbox.py): what each commit does to
the store's parked table (schnitzel/durable/parking.py), and an operator's requeue, drop and
listing of parked packets, done through the same commits; an operator's requeue of quarantine
entries (runtime/durable_quarantine.py) is queued and done the same way."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from schnitzel.durable.parking import ParkedRow, ParkingChanges, Selection, read_parked
from schnitzel.durable.store import DurableStore
from schnitzel.durable.store_calls import REF_KEY, body_refs
from schnitzel.runtime.durable_state import DurableState
from schnitzel.runtime.metrics import DropReason

if TYPE_CHECKING:
    from schnitzel.durable.quarantine import QuarantineRequeue

__all__ = ["ParkingDesk", "ParkingRequest"]


@dataclass
class ParkingRequest:
    """An operator's requeue or drop of parked packets, or requeue of quarantine entries,
    done by the next commit."""

    action: str
    """"requeue" or "drop" (of `selection`), or "requeue-quarantined" (`quarantine`)."""
    selection: Selection | None = None
    done: asyncio.Future[ParkingChanges] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    parks_before: int = 0
    """How many packets the inbox had queued to park when the request was made: those are
    parked by an earlier commit than the request's, so a requeue of everything includes them."""
    quarantine: QuarantineRequeue | None = None
    """The entries a "requeue-quarantined" puts back; its `room` seqs are reserved when a
    commit takes the request, its rows planned inside that commit."""


class ParkingDesk(DurableState):
    """A durable inbox's parking side."""

    __slots__ = ()

    def _parking_changes(self, all_pending: bool) -> tuple[ParkingChanges, ParkingRequest | None]:
        """What the next commit does to the parked table. An operator's request waits for a
        commit that writes every pending packet: requeued rows take seqs above all of them,
        so the backlog's order on disk stays the order it is read back in. It also waits for
        the packets to park that were queued before it (settled before the operator asked):
        parked by this commit, they would not be among those it requeues or drops."""
        parks, self._parks = self._parks, []
        changes = ParkingChanges(
            park=parks, max_parked=self.max_parked, max_parked_bytes=self.max_parked_bytes
        )
        request = None
        if (
            self._parking_requests
            and all_pending
            and self._parking_requests[0].parks_before <= self._parks_committed
        ):
            request = self._parking_requests.popleft()
            if request.action == "requeue":
                changes.requeue = request.selection
                changes.requeue_base_seq = self._next_seq
                changes.requeue_at = time.time()
                changes.requeue_room = self.parked_count  # as of the last commit: all of them
                self._next_seq += changes.requeue_room
            elif request.quarantine is not None:
                changes.quarantine = request.quarantine
                request.quarantine.base_seq, request.quarantine.at = self._next_seq, time.time()
                self._next_seq += request.quarantine.room or 0
            else:
                changes.drop = request.selection
        return changes, request

    def _parking_done(self, changes: ParkingChanges, request: ParkingRequest | None) -> None:
        self.parked_count, self.parked_bytes = changes.total, changes.total_bytes
        self._parks_committed += len(changes.park)
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
            self.stats.requeued += changes.requeued
            self._requeued(changes.requeued, changes.requeued_bytes, changes.requeue_at)
        quarantine = changes.quarantine
        if quarantine is not None and quarantine.rows and not quarantine.refused:
            self.stats.requeued_from_quarantine += len(quarantine.rows)
            for seq, _at, body, _checksum in quarantine.rows:  # their blobs are held again
                if REF_KEY in body:
                    self.refs.add(seq, body_refs(body))
            self._requeued(len(quarantine.rows), quarantine.size, quarantine.at)
        if request is not None and not request.done.done():
            request.done.set_result(changes)

    def _requeued(self, n: int, size: int, at: float) -> None:
        """`n` rows of `size` bytes moved back into the backlog at `at`: on disk only, newer
        than anything queued."""
        self._count += n
        self._bytes += size
        if not self._spilled:
            self._first_spilled_at = at
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
        self._refuse_unless_open()
        request = ParkingRequest(action, selection, parks_before=self._parks_queued)
        self._parking_requests.append(request)
        self._work.set()
        return await request.done

    def _refuse_unless_open(self) -> None:
        """Raise RuntimeError, in the words an operator acts on, unless the store is open."""
        if self._committer is None:  # its open waits for the store's process to start
            raise RuntimeError(
                f"durable store {str(self.path)!r} is not open yet (the run is starting); "
                "try again in a moment"
            )
        if self._committer.done() or self._closing:
            raise RuntimeError(f"durable store {str(self.path)!r} is closed (the run is ending)")

    async def list_parked(
        self, after: int = 0, limit: int = 100, only: int | None = None
    ) -> list[ParkedRow]:
        """Parked packets oldest first, or the one `only` with its whole packet."""

        self._refuse_unless_open()
        read = partial(read_parked, after=after, limit=limit, only=only)
        return await self.worker.call(DurableStore.query, read)
