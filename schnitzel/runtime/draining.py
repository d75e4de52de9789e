"""Stopping: how long a stop waits for what is in flight, and what giving up on a node
means for the packets it holds (counted, or kept in its durable store)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from schnitzel.runtime.inbox import InFlight
from schnitzel.runtime.metrics import DropReason
from schnitzel.runtime.node import Node
from schnitzel.runtime.stores import settled_count

if TYPE_CHECKING:
    from schnitzel.runtime.durable_inbox import DurableInbox

__all__ = ["DURABLE_STALL_S", "drain", "give_up"]

DURABLE_STALL_S = 2.0
"""A stop stops waiting for a durable backlog that did not shrink for this long."""


async def drain(
    idle: asyncio.Future[Any],
    timeout_s: float,
    in_flight: InFlight,
    stores: dict[str, DurableInbox],
) -> str | None:
    """Wait for what is in flight (`idle`), up to `timeout_s`. Packets only in memory must
    drain or they are lost (counted). A durable backlog gets the same time, but the wait ends
    early once no durable node settled anything for DURABLE_STALL_S (its backend is down):
    the backlog stays on disk for the next run. Returns why the run must give up on what is
    left, or None when everything drained."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    settled, since = settled_count(stores), loop.time()
    while not idle.done():
        now = loop.time()
        if now >= deadline:
            return f"drain did not finish within {timeout_s:g} s"
        if not in_flight.volatile:
            current = settled_count(stores)
            if current != settled:
                settled, since = current, now
            elif now - since >= DURABLE_STALL_S:
                return f"durable nodes made no progress for {DURABLE_STALL_S:g} s"
        await asyncio.wait({idle}, timeout=min(0.1, deadline - now))
    return None


def give_up(node: Node, reason: str, why: str) -> int:
    """Count what a node holds as lost: queued packets as dropped for `reason`, the batch in
    its plugin as errors (it may or may not have been handled); a durable inbox keeps both,
    first in line for the next run. Batches whose outputs wait for a commit are not lost
    here (see below). Returns how many were lost."""
    node.abandoned = True
    lost = 0
    if node.inbox is not None:
        if reason == DropReason.NODE_FAILED:
            node.inbox.close()
        lost += node.inbox.abandon(reason)
    for waiting in node.unsettled.batches():
        # Counted already (passed on), their outputs wait in a durable inbox, which counts
        # them if it closes before committing them: they leave the in-flight count, no more.
        # The entries stay until their commits are done, so no checkpoint passes them.
        waiting.abandon()
    held, node.batch = node.batch, None
    if held is not None:
        in_plugin = not held.counted
        if in_plugin:
            node.left_in_thread = node.pool is not None
        kept = held.abandon()
        node.metrics.handed_back(kept)
        if in_plugin and not kept:
            node.metrics.abandoned_in_plugin(len(held), why)
            lost += len(held)
    return lost
