"""What a node's worker sees of its inbox: one protocol, one batch object.

The memory `Inbox` (runtime/inbox.py) and `DurableInbox` (durable/inbox.py) both implement
`NodeInbox`. `take()` returns a `Batch`: the packets a node took and everything needed to end
them, so the batch a node holds is tracked in exactly one object. A batch ends one way:

- `settle()`: the node is done with it (passed on, filtered, failed and handled); a durable
  inbox deletes its rows in the next commit; it leaves the in-flight count.
- `give_back()`: the node let go of it unfinished while the run goes on (a swap interrupted
  the call): back at the front of the inbox, to be taken again.
- `abandon()`: the run gave up on the node: it leaves the in-flight count; a durable inbox
  keeps it in its store, first in line for the next run.

This module imports nothing from the rest of the runtime, so the durable inbox can implement
the protocol without importing `schnitzel.runtime` for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Protocol

from schnitzel.contract.packet import StreamPacket

__all__ = ["Batch", "BatchOwner", "NodeInbox", "Row"]

Row = tuple[int, float, int]
"""A durable inbox's (store seq, enqueued at, size in bytes) of one packet."""


class BatchOwner(Protocol):
    """The inbox a batch came from: how it ends a batch."""

    def _settle(
        self,
        batch: Batch,
        kept: list[StreamPacket] | None,
        trail: dict[str, int] | None,
        parked: list[tuple[StreamPacket, str]] | None,
    ) -> None: ...

    def _give_back(self, batch: Batch) -> None: ...

    def _release(self, batch: Batch) -> int: ...


class Batch:
    """Packets a node took from its inbox, until it settles, gives back or abandons them."""

    __slots__ = ("counted", "ended", "inbox", "packets", "rows", "start")

    def __init__(
        self,
        inbox: BatchOwner,
        packets: list[StreamPacket],
        start: int,
        rows: list[Row] | None = None,
    ) -> None:
        self.inbox = inbox
        self.packets = packets
        self.start = start
        """The inbox's `left` when the batch was taken: its first packet's position - 1
        (checkpoints compare positions)."""
        self.rows = rows
        """A durable inbox's rows of `packets`, in step (None for a memory inbox)."""
        self.counted = False
        """Set once the node counted the outcome of every packet (passed on, filtered or
        failed); until then the packets are in the plugin."""
        self.ended = False

    def __len__(self) -> int:
        return len(self.packets)

    def __iter__(self) -> Iterator[StreamPacket]:
        return iter(self.packets)

    def __getitem__(self, index: int) -> StreamPacket:
        return self.packets[index]

    def settle(
        self,
        kept: list[StreamPacket] | None = None,
        trail: dict[str, int] | None = None,
        parked: list[tuple[StreamPacket, str]] | None = None,
    ) -> None:
        """The node is done with the batch. A durable inbox deletes it in the next commit,
        but the packets in `kept` (kept for later); those in `parked` move to its parked
        table, with the reason; with a `trail` (where the output went in memory-only inboxes)
        the rows stay until the inbox's `confirm` says the output is safe there."""
        if not self.ended:
            self.ended = True
            self.inbox._settle(self, kept, trail, parked)

    def give_back(self) -> int:
        """Back to the front of the inbox, to be taken again; returns how many."""
        if self.ended:
            return 0
        self.ended = True
        self.inbox._give_back(self)
        return len(self.packets)

    def abandon(self) -> int:
        """The run gave up on the batch: it leaves the in-flight count. Returns how many of
        its packets stay safe (a durable inbox keeps them first in line for the next run);
        the others are lost, for the caller to count."""
        if self.ended:
            return 0
        self.ended = True
        return self.inbox._release(self)


class NodeInbox(Protocol):
    """A node's inbox as producers and the node's worker use it (memory or durable)."""

    durable: bool
    closed: bool
    capacity: int
    overflow: str
    entered: int
    """Packets that ever got in; a packet's position is the value after it entered."""
    left: int
    """Packets that ever left, oldest first: taken, displaced or abandoned."""

    def __len__(self) -> int: ...

    @property
    def depth(self) -> int: ...

    def offer(
        self, batch: list[StreamPacket], start: int = 0, force: bool = False, newcomer: bool = False
    ) -> int: ...

    async def put(self, batch: list[StreamPacket], force: bool = False) -> None: ...

    async def admit(
        self, batch: list[StreamPacket], force: bool = False
    ) -> asyncio.Future[bool] | None:
        """Like `put`, but return once admitted: a durable inbox's commit future (True once
        committed, False if the store closed first), None when there is nothing to wait for."""
        ...

    def take(self, limit: int) -> Batch: ...

    async def wait_items(self) -> None: ...

    def close(self) -> None: ...

    def abandon(self, reason: str = ...) -> int: ...
