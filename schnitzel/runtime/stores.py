"""The durable inboxes' stores over a run: opened before any plugin (their backlog is then
queued first), watched (a store whose process dies stops the run), flushed and closed all at
once at the end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from schnitzel.errors import RuntimeStartError
from schnitzel.runtime.durable_check import is_durable
from schnitzel.runtime.events import EventLog
from schnitzel.runtime.health import STALL_S, Health
from schnitzel.runtime.node import Node

if TYPE_CHECKING:
    from schnitzel.durable.store_worker import StoreProcessDied
    from schnitzel.runtime.durable_inbox import DurableInbox

__all__ = ["close_stores", "durable_inboxes", "flush_stores", "open_stores", "settled_count"]


def durable_inboxes(nodes: dict[str, Node]) -> dict[str, DurableInbox]:
    """The durable inboxes, by node id."""
    return {node_id: node.inbox for node_id, node in nodes.items() if is_durable(node.inbox)}


async def open_stores(
    stores: dict[str, DurableInbox],
    nodes: dict[str, Node],
    events: EventLog,
    stop: Callable[[str], None],
) -> None:
    """Open every store; one that cannot be opened stops the start, naming its node. Once
    open, a store whose process dies calls `stop(why)`: the run cannot go on without it
    (its producers would wait for ever), and a service manager restarts a run that stopped
    with an error (exit 3); the next run takes the store from its file."""
    for inbox in stores.values():  # every store's process at once: their imports overlap
        inbox.worker.start()
    for node_id, inbox in stores.items():
        try:
            await _open_watched(inbox, nodes[node_id], events)
        except RuntimeStartError:
            raise
        except Exception as exc:
            raise RuntimeStartError(
                f"node {node_id!r}: durable store {str(inbox.path)!r} could not be opened: {exc}"
            ) from exc

        inbox.worker.watch(partial(_lost, inbox, f"node {node_id!r}", stop))


def _lost(
    inbox: DurableInbox, node: str, stop: Callable[[str], None], error: StoreProcessDied
) -> None:
    inbox.store_lost(error)
    stop(f"{node}: {error}")


async def _open_watched(inbox: DurableInbox, node: Node, events: EventLog) -> None:
    """Open `inbox`'s store. While it has not answered for STALL_S (its process stopped, a
    file system that hangs) the run waits, as it must, but says so: an event, and the node's
    health (what `ctl status` and the console show before any tick runs) until it answers."""
    opening = asyncio.ensure_future(inbox.open())
    waited = 0.0
    try:
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(opening), STALL_S)
                break
            except TimeoutError:
                waited += STALL_S
                node.health = Health.DEGRADED
                node.health_reason = (
                    f"durable store {str(inbox.path)!r} has not answered its open for "
                    f"{waited:.0f} s (its process stopped, or its file system hangs): the run "
                    "starts once it does"
                )
                if waited == STALL_S:
                    events.add("warning", f"health ok -> degraded {node.health_reason}", node.id)
    except BaseException:
        opening.cancel()  # a stop while it waits, or its open failed (then this is a no-op)
        raise
    if waited:
        node.health, node.health_reason = Health.OK, ""
        events.add(
            "info",
            f"health degraded -> ok: durable store {str(inbox.path)!r} answered its open after "
            f"{waited:.0f}+ s",
            node.id,
        )


async def flush_stores(stores: dict[str, DurableInbox], timeout_s: float) -> bool:
    """Wait for every admitted packet to be committed; False if some were not in time."""
    flushed = await asyncio.gather(*(inbox.flush(timeout_s) for inbox in stores.values()))
    return all(flushed)


async def close_stores(stores: dict[str, DurableInbox], timeout_s: float, events: EventLog) -> None:
    """Write what the stores still have pending and close them, all at once."""
    results = await asyncio.gather(
        *(inbox.shutdown(timeout_s) for inbox in stores.values()),
        return_exceptions=True,
    )
    for (node_id, inbox), result in zip(stores.items(), results, strict=True):
        if isinstance(result, BaseException):
            events.add("error", f"closing the durable store failed: {result}", node_id)
        elif result:
            why, then = (
                ("its process died", "")
                if inbox.worker.gone
                else ("its file system stayed full", "; free space there before the next run")
            )
            events.add(
                "error",
                f"durable store {str(inbox.path)!r} closed with {result} packets it could not "
                f"commit ({why}): they are dropped (shutdown), never accepted{then}",
                node_id,
            )


def settled_count(stores: dict[str, DurableInbox]) -> int:
    """Packets every store deleted after their node was done (drain progress)."""
    return sum(inbox.stats.settled for inbox in stores.values())
