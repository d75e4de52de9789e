"""When a source may checkpoint: once everything it emitted up to a packet is safe.

Safe means delivered by a sink, filtered, dropped by the graph's own policy, or committed to
a durable inbox; anything still only in memory (an inbox, a plugin's hands) is not. The
tracker follows each source's output downstream without touching packets: every inbox
numbers what enters it and counts what leaves it, in order. A candidate is the source's
last emitted packet (it moves only once what the source emitted up to it is committed in
the durable inboxes it went to) with, per node it reached, the position its packets got in
that node's inbox. A node is past a position once that many packets left its inbox and the
oldest batch it has not settled (the one in its plugin, or one whose outputs wait for their
commits: runtime/commit_order.py) started after it; then the candidate moves on to what that
node's targets hold now (an over-estimate, so never too early). A durable inbox ends the path:
what entered it is committed. A candidate with nothing left to wait for is safe.

In a feedback cycle busy without pause a candidate can chase its own packets round the loop;
the checkpoint then waits until the loop goes quiet (docs/contracts/delivery.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from schnitzel.contract.packet import StreamPacket
from schnitzel.errors import BadRecord
from schnitzel.registry.plugin import Source
from schnitzel.runtime.durable_check import is_durable
from schnitzel.runtime.metrics import DropReason
from schnitzel.runtime.node import Node

if TYPE_CHECKING:
    from schnitzel.runtime.runtime import Runtime

__all__ = ["CHECKPOINT_INTERVAL_S", "CheckpointTracker", "checkpoints"]

CHECKPOINT_INTERVAL_S = 0.1
"""How often candidates are followed downstream and sources asked to checkpoint, at the
latest: a put into a durable inbox that returns (its packets committed) polls at once."""


def checkpoints(node: Node) -> bool:
    """True when the node's source plugin implements `checkpoint`."""
    plugin = node.plugin
    return isinstance(plugin, Source) and type(plugin).checkpoint is not Source.checkpoint


def _prompt(node: Node) -> bool:
    plugin = node.plugin
    return isinstance(plugin, Source) and plugin.checkpoints_promptly


@dataclass
class _Candidate:
    packet: StreamPacket | BadRecord | None
    waiting: dict[str, int] = field(default_factory=dict)
    """Node id -> the position in its inbox the candidate's packets reach."""


class CheckpointTracker:
    """Asks sources that implement `checkpoint` to persist what is safe, and lets durable
    inboxes delete what their node passed on once that is safe downstream too."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.sources = [n for n in runtime.nodes.values() if n.kind == "source" and checkpoints(n)]
        self.relays = [
            n for n in runtime.nodes.values() if is_durable(n.inbox) and self._positions(n)
        ]
        """Durable nodes whose output goes to in-memory inboxes: their deletes wait."""
        self._candidates: dict[str, deque[_Candidate]] = {n.id: deque() for n in self.sources}
        self._noted: dict[str, StreamPacket | BadRecord | None] = {n.id: None for n in self.sources}
        self._saved: dict[str, StreamPacket | BadRecord | None] = {n.id: None for n in self.sources}
        self._saving: dict[str, asyncio.Future[None] | None] = {n.id: None for n in self.sources}
        self._newest_safe: dict[str, StreamPacket | BadRecord | None] = {
            n.id: None for n in self.sources
        }
        self._wake: asyncio.Event | None = None
        """Set when a put into a durable inbox returned, or a node's batch settled (its
        outputs committed, or it had none to wait for, as a sink's): what a source emitted
        may be safe now (http_ingest answers its requests then, not up to a tick later).
        Only for a source that asks (`checkpoints_promptly`): the others keep a few calls a
        second. Made by `run`, on the loop that waits for it."""
        if any(_prompt(n) for n in self.sources):
            for node in runtime.nodes.values():
                if is_durable(node.inbox):
                    node.inbox.on_put_done = self._put_done
                node.unsettled.on_settled = self._put_done

    @property
    def frozen(self) -> bool:
        """Packets were lost that a later run could still deliver (a node failed, a stop gave
        up on them): checkpoints stay where they are, so the next run reads them again."""
        runtime = self.runtime
        return runtime.volatile_lost or any(
            n.metrics.crashed
            or n.metrics.dropped.get(DropReason.SHUTDOWN)
            or n.metrics.dropped.get(DropReason.NODE_FAILED)
            for n in runtime.nodes.values()
        )

    @property
    def active(self) -> bool:
        """True when there is anything to follow."""
        return bool(self.sources or self.relays)

    def trail(self, node: Node) -> dict[str, int] | None:
        """Where a durable node's output so far got in in-memory inboxes (None: nowhere, it
        may delete at once)."""
        return self._positions(node) or None

    def _put_done(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        self._wake = wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        prompt = [n for n in self.sources if _prompt(n)]
        due = loop.time() + CHECKPOINT_INTERVAL_S
        while True:
            # The source sets `last_emitted` right after its put returns, before it awaits
            # anything, or in the commit's callback that calls `_put_done` after (CommitOrder):
            # by the time this task runs, the candidate is there to follow.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), max(due - loop.time(), 0.0))
            if loop.time() >= due:  # every source and relay, every 0.1 s
                due = loop.time() + CHECKPOINT_INTERVAL_S
                wake.clear()
                self.poll()
            else:  # a put returned: only the sources that asked for it
                wake.clear()
                self.poll(prompt, relays=False)

    def poll(self, sources: list[Node] | None = None, relays: bool = True) -> None:
        """Note new candidates of `sources` (all by default), follow them, and checkpoint
        what became safe; with `relays`, let durable nodes delete what is safe downstream."""
        if self.frozen:
            return
        for relay in self.relays if relays else ():
            inbox = relay.inbox
            assert is_durable(inbox)
            confirmed = 0
            for _rows, waiting in inbox.unconfirmed:
                if not self._follow(_Candidate(None, waiting)):
                    break
                confirmed += 1
            if confirmed:
                inbox.confirm(confirmed)
        for source in self.sources if sources is None else sources:
            candidates = self._candidates[source.id]
            last = self.runtime.workers[source.id].last_emitted
            if last is not None and last is not self._noted[source.id]:
                self._noted[source.id] = last
                candidates.append(_Candidate(last, self._positions(source)))
            safe = None
            while candidates and self._follow(candidates[0]):
                safe = candidates.popleft().packet
            if safe is not None:
                self._save(source, safe)

    async def finish(self) -> None:
        """At the end of a run: checkpoint the last packet of each source if nothing only in
        memory was lost, and wait for the saves."""
        if not self.frozen and not self.runtime.in_flight.volatile:
            for relay in self.relays:
                inbox = relay.inbox
                assert is_durable(inbox)
                inbox.confirm(len(inbox.unconfirmed))
            for source in self.sources:
                self._candidates[source.id].clear()
                last = self.runtime.workers[source.id].last_emitted
                if last is not None:
                    self._save(source, last)
        else:
            self.poll()
        # A save still running when the last one was asked for starts the last one when it
        # is done (`_saved_or_failed`, which runs before `wait` returns): wait for that too,
        # or the pool is shut down under it and the next run reads lines again.
        while pending := [f for f in self._saving.values() if f is not None and not f.done()]:
            done, _pending = await asyncio.wait(pending, timeout=5.0)
            if not done:
                break

    def _positions(self, node: Node) -> dict[str, int]:
        """Where `node`'s output so far got: per target node, how many entered its inbox."""
        waiting: dict[str, int] = {}
        nodes = self.runtime.nodes
        for targets in node.targets.values():
            for target in targets:
                if not target.inbox.durable:
                    waiting[target.node_id] = target.inbox.entered
        if node.dead_letter is not None and not node.dead_letter.durable:
            dead_letter = node.resolved.spec.dead_letter
            assert dead_letter is not None
            waiting[dead_letter] = nodes[dead_letter].inbox.entered  # type: ignore[union-attr]
        return waiting

    def _follow(self, candidate: _Candidate) -> bool:
        """Move the candidate past every node done with its packets; True once none is left."""
        nodes = self.runtime.nodes
        for _round in range(len(nodes) + 1):  # at most one hop per node per poll
            moved = False
            for node_id, position in list(candidate.waiting.items()):
                node = nodes[node_id]
                inbox = node.inbox
                assert inbox is not None
                held = node.unsettled.oldest()  # finished, its outputs not committed yet
                if held is None:
                    held = node.batch
                if inbox.left < position or (held is not None and held.start < position):
                    continue
                del candidate.waiting[node_id]
                for downstream, reached in self._positions(node).items():
                    if reached > candidate.waiting.get(downstream, 0):
                        candidate.waiting[downstream] = reached
                moved = True
            if not candidate.waiting or not moved:
                break
        return not candidate.waiting

    def _save(self, source: Node, packet: StreamPacket | BadRecord) -> None:
        """Hand the safe packet to the plugin, one save at a time per source."""
        self._newest_safe[source.id] = packet
        if self._saved[source.id] is packet:
            return
        saving = self._saving[source.id]
        if saving is not None and not saving.done():
            return  # saved when the running save is done
        self._saved[source.id] = packet
        plugin = source.plugin
        assert isinstance(plugin, Source)
        loop = asyncio.get_running_loop()
        if source.pool is not None:
            future = loop.run_in_executor(source.pool, plugin.checkpoint, packet)
        else:
            future = loop.create_future()
            try:
                plugin.checkpoint(packet)
                future.set_result(None)
            except Exception as exc:
                future.set_exception(exc)
        self._saving[source.id] = future
        future.add_done_callback(lambda done: self._saved_or_failed(source, done))

    def _saved_or_failed(self, source: Node, done: asyncio.Future[None]) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            exc = done.exception()
            if exc is not None:
                self._saved[source.id] = None  # tried again with the next safe packet
                source.metrics.error(None, exc)
                self.runtime.events.add("error", f"checkpoint failed: {exc}", source.id)
                return
        newest = self._newest_safe[source.id]
        if newest is not None and newest is not self._saved[source.id]:
            self._save(source, newest)
