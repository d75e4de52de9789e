"""A producer's finished batches whose outputs wait for durable commits, ended in order.

A producer retires its inputs (a node settles the batch it took, a source lets its checkpoint
follow what it pulled) only once what it emitted from them is committed
(docs/contracts/delivery.md). Awaiting each commit before making the next batch puts the
disk's wait in series with the CPU's work. Instead a producer has its outputs *admitted*
(`Node.admit`: encoded, size limits and overflow applied, queued for the group commit), hands
the batch and the commits to wait for to its node's `CommitOrder`, and goes on with the next
batch while the commit runs; packets admitted meanwhile join the next commit, so commits grow
and the `fsync` is spread over more packets.

Entries end strictly in the order they were added, each once all its commits are done and
every earlier entry ended: `settled` when every commit succeeded; `lost` when one did not (the
store closed first: the durable inbox counted those packets as `shutdown` refusals, so an
entry's own inputs are not counted again). After one loss every later entry ends `lost` too:
what comes after a packet that never reached its store is never treated as safe.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from functools import partial

from schnitzel.runtime.inbox_protocol import Batch

__all__ = ["CommitOrder", "Commits"]

Commits = list[asyncio.Future[bool]]
"""The commit futures of one batch's outputs: True once committed, False when the store
closed before (`DurableInbox.admit`)."""


class _Entry:
    __slots__ = ("batch", "failed", "lost", "settled", "waiting")

    def __init__(
        self,
        batch: Batch | None,
        settled: Callable[[], object],
        lost: Callable[[], object],
        waiting: int,
    ) -> None:
        self.batch = batch
        self.settled = settled
        self.lost = lost
        self.waiting = waiting
        """Commits not done yet."""
        self.failed = False


class CommitOrder:
    """One node's batches that wait for the commits of their outputs, oldest first."""

    __slots__ = ("_below", "_entries", "_failed", "_waiter", "on_settled")

    def __init__(self) -> None:
        self._entries: deque[_Entry] = deque()
        self._failed = False
        self._waiter: asyncio.Future[None] | None = None
        self._below = 0
        self.on_settled: Callable[[], None] | None = None
        """Called after entries ended because a commit completed (the checkpoint tracker
        polls then, as after a `put` that returned)."""

    def __len__(self) -> int:
        return len(self._entries)

    def oldest(self) -> Batch | None:
        """The batch of the oldest entry not ended yet (None: none, or a source's)."""
        return self._entries[0].batch if self._entries else None

    def batches(self) -> Iterator[Batch]:
        """The batches of the entries not ended yet, oldest first."""
        return (entry.batch for entry in self._entries if entry.batch is not None)

    def add(
        self,
        commits: Commits | None,
        settled: Callable[[], object],
        lost: Callable[[], object],
        batch: Batch | None = None,
    ) -> None:
        """Call `settled` once `commits` and every earlier entry's are done (`lost` instead
        when one of them failed). With no commits it still waits for the earlier entries."""
        entry = _Entry(batch, settled, lost, len(commits) if commits else 0)
        self._entries.append(entry)
        if commits:
            done = partial(self._commit_done, entry)
            for commit in commits:
                commit.add_done_callback(done)
        elif len(self._entries) == 1:
            self._end_ready()

    async def wait_below(self, most: int) -> None:
        """Return once fewer than `most` entries wait (`most` 1: all ended)."""
        while len(self._entries) >= most:
            self._below = most
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    def _commit_done(self, entry: _Entry, commit: asyncio.Future[bool]) -> None:
        if commit.cancelled() or not commit.result():
            entry.failed = True
        entry.waiting -= 1
        if not entry.waiting and self._entries and self._entries[0] is entry:
            self._end_ready()
            if self.on_settled is not None:
                self.on_settled()

    def _end_ready(self) -> None:
        entries = self._entries
        while entries and not entries[0].waiting:
            entry = entries.popleft()
            if entry.failed or self._failed:
                self._failed = True
                entry.lost()
            else:
                entry.settled()
        waiter = self._waiter
        if waiter is not None and len(entries) < self._below and not waiter.done():
            waiter.set_result(None)
