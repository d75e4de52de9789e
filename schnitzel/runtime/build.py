"""Building the running graph from a validated one: a plugin instance, an inbox and a `Node`
per graph node, then the edges as each node's targets. No task runs yet."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from schnitzel.errors import RuntimeStartError
from schnitzel.registry.plugin import NodeContext, Plugin, cannot_run
from schnitzel.runtime.events import EventLog
from schnitzel.runtime.held_refs import HeldRefs
from schnitzel.runtime.inbox import Inbox, InFlight
from schnitzel.runtime.knobs import knob_bounds
from schnitzel.runtime.metrics import NodeMetrics
from schnitzel.runtime.node import Node, Target
from schnitzel.validate.graph import ValidatedGraph

__all__ = ["build_nodes", "connect_outputs", "instantiate"]


def build_nodes(
    graph: ValidatedGraph,
    in_flight: InFlight,
    state_dir: Path,
    logger: logging.Logger,
    events: EventLog,
    held_refs: HeldRefs | None = None,
    run_id: str = "",
) -> dict[str, Node]:
    """Every node of `graph`, started nowhere yet, its outputs and dead letters connected."""
    nodes: dict[str, Node] = {}
    for node_id, resolved in graph.nodes.items():
        plugin = instantiate(
            graph,
            state_dir,
            logger,
            events,
            resolved.plugin,
            resolved.config,
            node_id,
            held_refs,
            run_id,
        )
        inbox = (
            None if resolved.spec.kind == "source" else _inbox(graph, node_id, in_flight, events)
        )
        nodes[node_id] = node = Node(resolved, plugin, inbox)
        _check_rate_within_limits(node)
    for node in nodes.values():
        connect_outputs(node, graph, nodes)
    for node in nodes.values():
        dead_letter = node.resolved.spec.dead_letter
        if dead_letter is not None:
            node.dead_letter = nodes[dead_letter].inbox
    return nodes


def connect_outputs(node: Node, graph: ValidatedGraph, nodes: dict[str, Node]) -> None:
    """Point each output port of `node` at the inboxes its edges in `graph` lead to."""
    targets: dict[str, list[Target]] = {port: [] for port in node.plugin.outputs}
    for edge in graph.edges:
        if edge.source == node.id:
            target = nodes[edge.target]
            assert target.inbox is not None
            force = node.kind == "delay" and target.inbox.overflow == "block"
            targets[edge.source_port].append(Target(target.id, target.inbox, force))
    node.targets = targets


def _inbox(graph: ValidatedGraph, node_id: str, in_flight: InFlight, events: EventLog) -> Inbox:
    spec = graph.nodes[node_id].spec.inbox
    if spec.durable is None:
        return Inbox(spec.max, spec.overflow, NodeMetrics(), in_flight, spec.max_bytes)
    # here: SQLite and the codec come with it, for graphs that have a durable inbox only
    from schnitzel.runtime.durable_inbox import DurableInbox

    durable = spec.durable
    path = Path(durable.path).expanduser()
    return DurableInbox(
        spec.max,
        spec.overflow,
        NodeMetrics(),
        in_flight,
        path if path.is_absolute() else graph.base_dir / path,
        durable.max_bytes,
        durable.max_packets,
        durable.sync.upper(),
        lambda level, message: events.add(level, message, node_id),
        durable.max_parked,
        durable.max_parked_bytes,
        durable.process,
    )


def instantiate(
    graph: ValidatedGraph,
    state_dir: Path,
    logger: logging.Logger,
    events: EventLog,
    cls: type[Plugin],
    config: Any,
    node_id: str,
    held_refs: HeldRefs | None = None,
    run_id: str = "",
) -> Plugin:
    """An instance of `cls` for node `node_id` of `graph`, with its `NodeContext`."""
    why_not = cannot_run(cls)  # the validator says so first; a graph built by hand may not
    if why_not is not None:
        raise RuntimeStartError(f"node {node_id!r}: {why_not}")
    spec = graph.nodes[node_id].spec
    top = spec.limits.concurrency[1] if spec.limits.concurrency else spec.concurrency
    if cls.max_calls_at_once is not None:  # a bound the plugin rests on: the throttle's top
        top = min(int(knob_bounds(spec.limits, "concurrency")[1]), cls.max_calls_at_once)
    context = NodeContext(
        node_id,
        graph.base_dir,
        state_dir,
        logger.getChild(node_id),
        durable=spec.inbox.durable is not None,
        max_concurrency=max(spec.concurrency, top),
        event=lambda level, message: events.add(level, message, node_id),
        held_refs=(held_refs or HeldRefs()).now,
        run_id=run_id,
    )
    try:
        return cls(config, context)
    except Exception as exc:
        raise RuntimeStartError(
            f"node {node_id!r}: plugin {cls.name!r} failed to start: {exc}"
        ) from exc


def _check_rate_within_limits(node: Node) -> None:
    """A source whose declared `limits.rate_hz` do not hold its own rate could never be put
    back where it started once throttled: refuse it before anything runs."""
    bounds = node.resolved.spec.limits.rate_hz
    if bounds is None or node.pacer is None:
        return
    rate, (low, high) = node.pacer.rate_hz, bounds
    if rate is None or not low <= rate <= high:
        now = "is not paced (no rate)" if rate is None else f"runs at {rate:.12g}/s"
        raise RuntimeStartError(
            f"node {node.id!r}: the source {now}, outside its limits.rate_hz "
            f"[{low:.12g}, {high:.12g}]; give it a rate within them (its config) or widen them"
        )
