"""Rules for the shape of the graph: sources, nodes nothing feeds, outputs (and output ports)
that go nowhere, nodes no source reaches, loops that never reach a sink, and cycles without
a delay node."""

from __future__ import annotations

from schnitzel.validate.state import CheckState
from schnitzel.validate.topology import (
    find_cycle,
    reachable_from,
    strongly_connected_components,
)

__all__ = ["check_structure"]


def check_structure(state: CheckState) -> None:
    """Every structural rule, on the edges that were accepted."""
    successors = state.successors()
    fed = {edge.target for _, edge in state.edges}
    sources = [n for n, e in state.nodes.items() if e.spec.kind == "source"]
    if state.nodes and not sources and "source" not in state.broken_kinds.values():
        state.problem(
            "no-source",
            "the graph has no source node, so nothing would ever flow",
            ("nodes",),
            "add a node with `kind: source` (for example plugin synthetic or jsonl)",
        )
    fed |= state.loose_targets
    emitting = successors.keys() | state.loose_sources
    unfed = []
    for node_id, entry in state.nodes.items():
        if entry.spec.kind != "source" and node_id not in fed:
            unfed.append(node_id)
            state.problem(
                "unfed-node",
                "nothing feeds this node: no edge leads to it",
                (*entry.at, "id"),
                f"add an edge `- {{from: <node>, to: {node_id}}}` or remove the node",
                node=node_id,
            )
        if entry.spec.kind != "sink" and node_id not in emitting:
            state.problem(
                "dangling-output",
                "what this node emits goes nowhere: no edge leaves it",
                (*entry.at, "id"),
                f"add an edge `- {{from: {node_id}, to: <node>}}`; to discard packets on "
                "purpose, send them to a `null` sink",
                node=node_id,
            )
    _check_ports(state)
    delays = [n for n, e in state.nodes.items() if e.spec.kind == "delay"]
    reached = reachable_from([*sources, *delays, *unfed, *state.loose_targets], successors)
    for node_id, entry in state.nodes.items():
        if node_id not in reached:
            state.problem(
                "unreachable-node",
                "no source reaches this node: it is fed only from a loop no source enters",
                (*entry.at, "id"),
                "connect a source upstream of it",
                node=node_id,
            )
    _check_exits(state, successors)
    _check_cycles(state, successors)


def _check_ports(state: CheckState) -> None:
    """Warn about an output port no edge leaves, on a node that has edges from other ports:
    what the plugin sends there is lost (`route`'s `default`, `rate_limit`'s `excess`)."""
    used: dict[str, set[str]] = {}
    for _, edge in state.edges:
        used.setdefault(edge.source, set()).add(edge.source_port)
    for node_id, ports_used in used.items():
        entry = state.nodes.get(node_id)
        if entry is None or entry.plugin is None or entry.config is None:
            continue
        for port in entry.plugin.output_ports(entry.config):
            if port not in ports_used:
                state.problem(
                    "dangling-port",
                    f"output port {port!r} leads nowhere: what the node sends there is lost",
                    (*entry.at, "id"),
                    f"add an edge `- {{from: {node_id}.{port}, to: <node>}}`; to discard "
                    "packets on purpose, send them to a `null` sink",
                    node=node_id,
                    severity="warning",
                )


def _check_exits(state: CheckState, successors: dict[str, list[str]]) -> None:
    """Warn about nodes whose packets can never reach a sink (they only circulate)."""
    predecessors = state.predecessors()
    sinks = [n for n, e in state.nodes.items() if e.spec.kind == "sink"]
    exits = reachable_from([*sinks, *state.loose_sources], predecessors)
    for node_id, entry in state.nodes.items():
        if node_id not in exits and node_id in successors:  # no edge at all: dangling-output
            state.problem(
                "no-path-to-sink",
                "nothing this node emits can ever reach a sink: its packets only go round a loop "
                "or into nodes that lead nowhere",
                (*entry.at, "id"),
                "give its path (or the loop it feeds) an exit: an edge to a sink",
                node=node_id,
                severity="warning",
            )


def _check_cycles(state: CheckState, successors: dict[str, list[str]]) -> None:
    """Each cycle must pass through a delay node: one that does uses an edge leaving a delay,
    so the cycles left once those edges are removed are exactly the ones without a delay."""
    without_delay_exits = {
        node: [] if state.kind_of(node) == "delay" else targets
        for node, targets in successors.items()
    }
    for component in strongly_connected_components(list(state.nodes), without_delay_exits):
        if not _is_cycle(component, without_delay_exits):
            continue
        cycle = find_cycle(component, without_delay_exits)
        first = _edge_index(state, cycle[0], cycle[1])
        state.problem(
            "cycle-without-delay",
            f"cycle {' -> '.join(cycle)} has no delay node",
            ("edges", first) if first is not None else ("nodes",),
            "a feedback loop needs a node with `kind: delay` (plugin delay, with an "
            "`initial` value) to start it and to keep its bounded inboxes from deadlocking",
            edge=f"{cycle[0]} -> {cycle[1]}",
        )
    in_cycle = {
        node
        for component in strongly_connected_components(list(state.nodes), successors)
        if _is_cycle(component, successors)
        for node in component
    }
    for node_id, entry in state.nodes.items():
        if entry.spec.kind == "delay" and node_id not in in_cycle:
            state.problem(
                "delay-outside-cycle",
                "this delay node is not part of a cycle; it only holds back one packet",
                (*entry.at, "kind"),
                "use delay nodes to close feedback loops; elsewhere use a transform",
                node=node_id,
                severity="warning",
            )


def _is_cycle(component: list[str], successors: dict[str, list[str]]) -> bool:
    return len(component) > 1 or component[0] in successors.get(component[0], ())


def _edge_index(state: CheckState, source: str, target: str) -> int | None:
    for index, edge in state.edges:
        if edge.source == source and edge.target == target:
            return index
    return None
