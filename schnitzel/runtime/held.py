"""Plugins that hold packets back (windows, joins): their timer and their flush at the end.

A processor normally emits only when a packet comes in. One that holds state over time also
needs to emit when time alone moves (`Processor.tick`, every `tick_interval_s`) and once
more when the run ends with a drain (`Processor.flush`), in the order of the graph, so a
window feeding a window is flushed first and the second sees what the first released.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from schnitzel.registry.plugin import Processor
from schnitzel.runtime.node import Node
from schnitzel.runtime.processing import Outcome, Routed, checked_outputs
from schnitzel.runtime.worker_api import NodeWorker

if TYPE_CHECKING:
    from schnitzel.runtime.runtime import Runtime

__all__ = ["Tickers", "flush_order", "holds", "release", "run_ticks", "ticks"]


def holds(node: Node, method: str) -> bool:
    """True when the node's plugin overrides `Processor.tick` or `Processor.flush`."""
    plugin = node.plugin
    return isinstance(plugin, Processor) and getattr(type(plugin), method) is not getattr(
        Processor, method
    )


def ticks(node: Node) -> bool:
    """True when the node's plugin wants its `tick` called (it defines one and an interval)."""
    return holds(node, "tick") and getattr(node.plugin, "tick_interval_s", None) is not None


class Tickers:
    """The tick tasks of a run: one per node whose plugin ticks, and none for the others (a
    plugin without `tick` costs no wake-up). A swap calls `update`: a plugin that ticks gets
    a task; a running ticker wakes at once to follow the new plugin (its interval from now, or
    its end when the plugin does not tick), never in the middle of passing on what a tick
    released."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._swapped: dict[str, asyncio.Event] = {}

    @property
    def running(self) -> set[str]:
        """The ids of the nodes whose ticker is running."""
        return {node_id for node_id, task in self._tasks.items() if not task.done()}

    def start(self) -> None:
        """A ticker for every node whose plugin ticks (at the start of the run)."""
        for node in self._runtime.nodes.values():
            self.update(node)

    def update(self, node: Node) -> None:
        """After a swap: wake `node`'s ticker to follow its new plugin, or start one if the
        plugin ticks and none runs."""
        task = self._tasks.get(node.id)
        if task is not None and not task.done():
            self._swapped[node.id].set()
        elif ticks(node) and not self._runtime.stopping:
            swapped = self._swapped[node.id] = asyncio.Event()
            self._tasks[node.id] = asyncio.create_task(
                run_ticks(node, self._runtime, swapped), name=f"schnitzel-tick-{node.id}"
            )

    def stop(self) -> None:
        """Cancel every ticker (the end of the run)."""
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
        self._swapped.clear()


async def run_ticks(node: Node, runtime: Runtime, swapped: asyncio.Event) -> None:
    """Call the node's `tick` every `tick_interval_s` and pass on what it releases, for as
    long as its plugin ticks (`swapped` set: the plugin changed, its interval starts now)."""
    while not runtime.stopping and not node.abandoned:
        interval = getattr(node.plugin, "tick_interval_s", None)
        if interval is None or not holds(node, "tick"):
            return  # swapped for a plugin that does not tick
        swapped.clear()
        try:
            async with asyncio.timeout(interval):
                await swapped.wait()
            continue  # a swap: follow the new plugin
        except TimeoutError:
            pass
        if runtime.stopping or node.abandoned or node.paused:
            continue
        async with node.turn:  # between two batches, and never during a swap
            plugin = node.plugin
            if not holds(node, "tick"):
                continue
            try:
                items = list(plugin.tick(time.time()))  # type: ignore[attr-defined]
            except Exception as exc:
                node.metrics.error(None, exc)
                runtime.events.add("error", f"tick() failed: {exc}", node.id)
                continue
        await release(node, runtime.workers[node.id], items)


async def release(node: Node, worker: NodeWorker, items: list[Any]) -> None:
    """Emit what a plugin released without an input packet (counted as the node's output),
    through the node's worker: a wait for room downstream is not a stall."""
    if not items:
        return
    outcome = Outcome()
    try:
        outcome.outputs = checked_outputs(items)
    except TypeError as exc:  # the plugin returned something that is not packets
        node.metrics.error(None, exc)
        return
    outcome.routed = any(item.__class__ is Routed for item in outcome.outputs)
    if outcome.routed:
        node.check_routes(outcome)  # an unknown port: those packets fail
        for packet, refused in outcome.failures:
            node.metrics.error(packet.packet_id, refused)
    if not outcome.outputs:
        return
    node.metrics.passed_on(len(outcome.outputs))
    await worker.emit(outcome.outputs, outcome.routed)


def flush_order(runtime: Runtime) -> list[Node]:
    """The nodes upstream first (edges leaving a delay node are ignored, so cycles break)."""
    graph = runtime.graph
    incoming = {node_id: 0 for node_id in runtime.nodes}
    successors: dict[str, list[str]] = {node_id: [] for node_id in runtime.nodes}
    for edge in graph.edges:
        if runtime.nodes[edge.source].kind == "delay":
            continue
        successors[edge.source].append(edge.target)
        incoming[edge.target] += 1
    ready = [node_id for node_id, n in incoming.items() if n == 0]
    order: list[str] = []
    while ready:
        node_id = ready.pop(0)
        order.append(node_id)
        for target in successors[node_id]:
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
    order += [node_id for node_id in runtime.nodes if node_id not in order]
    return [runtime.nodes[node_id] for node_id in order]
