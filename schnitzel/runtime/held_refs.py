"""Which blobs undelivered packets still point at, for blob retention (`NodeContext.refs_held`).

A blob store must never delete a blob a queued packet names (`contract/refs.py` says which
URIs a packet names). Two places know:

- `RefCounts`: a durable inbox counts, per URI, the rows it holds (queued, in the batch its
  node holds, waiting for confirmation, parked: a parked row may be requeued). Built when the
  inbox opens from the rows its store replays, kept at admit and delete, so asking is a copy.
- `HeldRefs`: the runtime's answer, made on the event loop (where every inbox changes, so it
  is one consistent moment): the durable counts, plus a scan of the memory inboxes and of the
  batches nodes hold (bounded by their sizes), the one in the plugin and those whose outputs
  wait for their commits (`Node.unsettled`). A node holds its batch until its outputs are in
  the next inboxes (committed, for a durable one), so a packet on its way is always somewhere
  the scan looks.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from schnitzel.contract.packet import StreamPacket
from schnitzel.contract.refs import packet_refs

if TYPE_CHECKING:
    from schnitzel.runtime.node import Node

__all__ = ["ANSWER_TIMEOUT_S", "HeldRefs", "RefCounts", "add_refs"]

ANSWER_TIMEOUT_S = 30.0
"""How long a plugin thread waits for the event loop's answer (only against a loop that
stopped); then `refs_held` raises `TimeoutError`."""


def add_refs(packets: Iterable[StreamPacket], into: set[str]) -> None:
    """Add the blob URIs `packets` point at to `into`."""
    for packet in packets:
        if packet.payload_ref is not None:
            into.update(packet_refs(packet))


class RefCounts:
    """Per URI, how many rows of one durable inbox point at it."""

    __slots__ = ("counts", "rows")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        """URI -> rows naming it (only URIs with at least one)."""
        self.rows: dict[int, tuple[str, ...]] = {}
        """Store seq -> the URIs of that row (only rows that name some)."""

    def add(self, seq: int, uris: tuple[str, ...]) -> None:
        """Row `seq` (queued) names `uris`."""
        if uris:
            self.rows[seq] = uris
            self.hold(uris)

    def hold(self, uris: Iterable[str]) -> None:
        counts = self.counts
        for uri in uris:
            counts[uri] = counts.get(uri, 0) + 1

    def remove(self, seq: int) -> None:
        """Row `seq` left the store (delivered, dropped)."""
        uris = self.rows.pop(seq, None)
        if uris:
            counts = self.counts
            for uri in uris:
                left = counts[uri] - 1
                if left:
                    counts[uri] = left
                else:
                    del counts[uri]

    def remove_within(self, runs: list[tuple[int, int]]) -> None:
        """The rows of the seq ranges `runs` (sorted) left the store (displaced on disk)."""
        if not self.rows or not runs:
            return
        firsts = [first for first, _last in runs]
        for seq in [seq for seq in self.rows if _within(runs, firsts, seq)]:
            self.remove(seq)

    def park(self, seq: int) -> None:
        """Row `seq` moved to the parked table: its URIs stay held for the rest of the run
        (an operator may requeue it; the store's next open counts parked rows afresh)."""
        self.rows.pop(seq, None)


def _within(runs: list[tuple[int, int]], firsts: list[int], seq: int) -> bool:
    i = bisect.bisect_right(firsts, seq) - 1
    return i >= 0 and seq <= runs[i][1]


class HeldRefs:
    """The runtime's view of the blob URIs undelivered packets point at."""

    def __init__(self) -> None:
        self.nodes: Mapping[str, Node] = {}
        """Set once the nodes are built."""
        self.loop: asyncio.AbstractEventLoop | None = None
        """The loop running the graph; set when the run starts."""
        self.closed = False
        """Set when the run stops: a plugin asking then gets `RuntimeError` at once."""
        self._waiting: set[concurrent.futures.Future[frozenset[str]]] = set()
        self._lock = threading.Lock()

    def now(self) -> frozenset[str]:
        """The URIs held now. From the event loop, at once; from another thread (a blocking
        plugin), the loop answers between two of its steps (`TimeoutError` if it does not
        within `ANSWER_TIMEOUT_S`); `RuntimeError` once the run has stopped (a call the stop
        did not wait for), when no answer would be true for long."""
        loop = self.loop
        if self.closed:
            raise RuntimeError("the run has stopped")
        if loop is None:
            return self.scan()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return self.scan()
        answer: concurrent.futures.Future[frozenset[str]] = concurrent.futures.Future()

        def scan_on_loop() -> None:
            try:
                answer.set_result(self.scan())
            except Exception as exc:
                answer.set_exception(exc)

        with self._lock:
            if self.closed:
                raise RuntimeError("the run has stopped")
            self._waiting.add(answer)
        try:
            loop.call_soon_threadsafe(scan_on_loop)
            return answer.result(timeout=ANSWER_TIMEOUT_S)
        finally:
            with self._lock:
                self._waiting.discard(answer)

    def close(self) -> None:
        """The run stops: fail the questions waiting for the loop, and any asked later."""
        with self._lock:
            self.closed = True
            waiting, self._waiting = self._waiting, set()
        for answer in waiting:
            if not answer.done():
                answer.set_exception(RuntimeError("the run has stopped"))

    def scan(self) -> frozenset[str]:
        """The URIs held now (call on the event loop)."""
        held: set[str] = set()
        for node in list(self.nodes.values()):
            inbox = node.inbox
            if inbox is not None:
                inbox.add_refs(held)
            batch = node.batch
            if batch is not None and batch.rows is None:  # a durable batch is counted
                add_refs(batch.packets, held)
            for waiting in node.unsettled.batches():  # their outputs wait for a commit
                if waiting.rows is None:
                    add_refs(waiting.packets, held)
        return frozenset(held)
