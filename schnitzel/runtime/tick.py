"""The metrics tick: once a second every node's rates, percentiles, troubles and health are
sampled from its counters (the hot path never computes a rate), and a new health level is
taken only once it held for two samples (failing at once), so a node hovering at a
threshold does not flap in the log.

The periodic tick samples `TICK_SLICE` nodes at a time and lets the loop run the graph in
between (about 10 us a node): in a graph of a thousand nodes one tick in one go would hold
every packet in flight for some 10 ms once a second, a latency tail of its own making."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping

from schnitzel.runtime.durable_check import is_durable
from schnitzel.runtime.events import EventLog
from schnitzel.runtime.health import Health, judge_health
from schnitzel.runtime.node import Node
from schnitzel.runtime.worker_api import NodeWorker

__all__ = ["TICK_S", "TICK_SLICE", "set_health", "tick_nodes", "tick_nodes_in_slices"]

TICK_S = 1.0
"""How often rates and health are sampled."""
TICK_SLICE = 32
"""Nodes the periodic tick samples before it lets the loop run the graph again."""


async def tick_nodes_in_slices(
    nodes: dict[str, Node], workers: Mapping[str, NodeWorker], events: EventLog
) -> None:
    """`tick_nodes`, `TICK_SLICE` nodes at a time, the loop running the graph in between."""
    every = list(nodes.values())
    for start in range(0, len(every), TICK_SLICE):
        if start:
            await asyncio.sleep(0)
        _tick(every[start : start + TICK_SLICE], workers, events, final=False)


def tick_nodes(
    nodes: dict[str, Node],
    workers: Mapping[str, NodeWorker],
    events: EventLog,
    final: bool = False,
) -> None:
    """Sample every node once; `final`: the report's health is what this sample says."""
    _tick(nodes.values(), workers, events, final)


def _tick(
    nodes: Iterable[Node], workers: Mapping[str, NodeWorker], events: EventLog, final: bool
) -> None:
    now = time.monotonic()
    for node in nodes:
        node.window.sample(node.metrics, now)
        inbox = node.inbox
        durable = is_durable(inbox)
        if is_durable(inbox):
            inbox.stats.sample(now)
        node.update_percentiles()
        delta = node.window.delta()
        node.troubles.tick(
            node.id, events, node.metrics, delta is not None and delta[1].emitted > 0
        )
        health, reason = judge_health(
            crashed=node.metrics.crashed,
            store_gone=inbox.gone() if is_durable(inbox) else "",
            delta=delta,
            depth=inbox.depth if inbox is not None else 0,
            capacity=inbox.capacity if inbox is not None and not durable else None,
            idle_s=0.0 if workers[node.id].waiting_downstream else now - node.metrics.last_progress,
            paused=node.paused,
            store_problem=inbox.problem() if is_durable(inbox) else "",
            trouble=node.troubles.health_reason(),
            parked=inbox.parked_problem() if is_durable(inbox) else "",
        )
        if final:  # no debounce
            node.health_pending = health
        set_health(node, health, reason, events)


def set_health(node: Node, health: str, reason: str, events: EventLog) -> None:
    """Take a new health level once it held for two samples (failing at once)."""
    if health == node.health:
        node.health_reason = reason
        node.health_pending = None
        return
    if health not in (Health.FAILING, node.health_pending):
        node.health_pending = health
        return
    level = "info" if health == Health.OK else "warning"
    events.add(level, f"health {node.health} -> {health} {reason}".strip(), node.id)
    node.health, node.health_reason, node.health_pending = health, reason, None
