"""The quarantine side of a running durable inbox (runtime/durable_inbox.py): an operator's
listing of the store's quarantine entries, and their requeue (`schnitzel ctl quarantine`),
done by the inbox's own commit loop like a requeue of parked packets
(runtime/durable_parking.py), never from another connection to the store.

A requeue is checked first, against the store as it is (so a refusal comes back at once), then
queued to the commit loop with the number of packets it found: the inbox reserves that many
seqs above every packet it has admitted, and the commit plans it again, on the store's thread
just before it writes (schnitzel/durable/quarantine.py `QuarantineRequeue`), inserting the
packets as new rows and removing the entries in one transaction. A kill -9 before that commit
leaves the entries where they were; after it, the packets are in the backlog, owed by the
store's ledger like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from schnitzel.durable.quarantine import (
    QuarantineEntry,
    QuarantineRequeue,
    quarantine_entries,
)
from schnitzel.durable.store import DurableStore, StoreError
from schnitzel.durable.store_calls import trial_requeue
from schnitzel.runtime.durable_parking import ParkingDesk, ParkingRequest

__all__ = ["QuarantineDesk", "QuarantineRequeued"]


@dataclass(frozen=True)
class QuarantineRequeued:
    """What a requeue of quarantine entries did, once committed."""

    entries: tuple[int, ...]
    """The entries removed, their packets back in the backlog."""
    packets: int
    skipped: list[tuple[int, str]] = field(default_factory=list)
    """(entry, why) of the entries an `all` requeue left where they are (damaged)."""


class QuarantineDesk(ParkingDesk):
    """A durable inbox's quarantine side."""

    __slots__ = ()

    async def list_quarantine(self) -> list[QuarantineEntry]:
        """The store's quarantine entries, in id order."""
        self._refuse_unless_open()
        return await self.worker.call(DurableStore.query, quarantine_entries)

    async def requeue_quarantined(self, ids: Sequence[int] | None) -> QuarantineRequeued:
        """Put the packets of the entries `ids` (None: every entry that matches its checksum)
        back at the end of the backlog, by the next commit. StoreError, naming the entry, for
        an entry that does not exist or cannot be vouched for (as `requeue_entries` refuses);
        RuntimeError when the store closes first."""
        self._refuse_unless_open()
        store = str(self.path)
        check = partial(trial_requeue, store=store, ids=None if ids is None else tuple(ids))
        trial, skipped = await self.worker.call(DurableStore.query, check)
        if trial.refused:
            raise StoreError(trial.refused)
        if not trial.ids:
            named = "; ".join(why for _entry, why in skipped)
            raise StoreError(
                f"durable store {store!r} has no quarantine entry that can be requeued"
                + (f": {named}" if named else "")
            )
        self._refuse_unless_open()  # it may have begun to close while the check ran
        requeue = QuarantineRequeue(store, trial.ids, room=len(trial.rows))
        request = ParkingRequest("requeue-quarantined", quarantine=requeue)
        self._parking_requests.append(request)
        self._work.set()
        done = (await request.done).quarantine  # as the commit left it (maybe another process)
        assert done is not None
        if done.refused:
            raise StoreError(done.refused)
        return QuarantineRequeued(done.ids, len(done.rows), skipped)
