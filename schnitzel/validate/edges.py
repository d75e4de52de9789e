"""Rules for each edge: its keys, that both ends name nodes, node kinds at each end, ports."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from schnitzel.spec.model import EdgeSpec
from schnitzel.spec.names import did_you_mean, shown_plain
from schnitzel.validate.graph import ResolvedEdge
from schnitzel.validate.state import CheckState, NodeEntry
from schnitzel.validate.top_level import yaml_type

__all__ = ["check_edges"]


def check_edges(state: CheckState, raw_edges: list[Any]) -> None:
    """Resolve every edge; refused ones are reported and remembered as loose ends."""
    seen: set[tuple[str, str, str, str]] = set()
    for index, raw in enumerate(raw_edges):
        at = ("edges", index)
        if not isinstance(raw, dict):
            state.problem(
                "bad-value",
                f"edge {index} is a {yaml_type(raw)}, not a mapping",
                at,
                "write an edge as `- {from: a, to: b}`",
            )
            continue
        label = f"{raw.get('from', '?')} -> {raw.get('to', '?')}"
        try:
            spec = EdgeSpec.model_validate(raw)
        except ValidationError as exc:
            state.schema_problems(exc, EdgeSpec, at, edge=label)
            _note_refused_edge(state, raw.get("from"), raw.get("to"))
            continue
        edge = _resolve_edge(state, spec, at, label)
        if edge is None:
            _note_refused_edge(state, spec.source, spec.target)
            continue
        key = (edge.source, edge.source_port, edge.target, edge.target_port)
        if key in seen:
            state.problem(
                "duplicate-edge",
                "this edge is listed twice; every packet would be delivered twice",
                at,
                "remove one of them",
                edge=label,
            )
            continue
        seen.add(key)
        state.edges.append((index, edge))
        state.edge_specs.append(spec)


def _note_refused_edge(state: CheckState, source: object, target: object) -> None:
    """The author connected these nodes; an edge refused for another reason must not make
    them look unfed or dangling as well."""
    if isinstance(source, str):
        state.loose_sources.add(source.partition(".")[0])
    if isinstance(target, str):
        state.loose_targets.add(target.partition(".")[0])


def _resolve_edge(
    state: CheckState, spec: EdgeSpec, at: tuple[Any, ...], label: str
) -> ResolvedEdge | None:
    source_id, _, source_port = spec.source.partition(".")
    target_id, _, target_port = spec.target.partition(".")
    ok = True
    for end, node_id in (("from", source_id), ("to", target_id)):
        if node_id not in state.nodes and node_id not in state.broken_kinds:
            state.problem(
                "edge-missing-node",
                f"`{end}: {shown_plain(node_id)}` names no node",
                (*at, end),
                did_you_mean(node_id, state.nodes) + "an edge connects ids listed under `nodes:`",
                edge=label,
            )
            ok = False
    if not ok:
        return None
    if state.kind_of(source_id) == "sink":
        state.problem(
            "sink-has-output",
            f"node {source_id!r} is a sink: it has no outputs to connect",
            (*at, "from"),
            "connect the node that feeds the sink to the next node instead",
            edge=label,
        )
        ok = False
    if state.kind_of(target_id) == "source":
        state.problem(
            "source-has-input",
            f"node {target_id!r} is a source: it takes no inputs",
            (*at, "to"),
            "a source produces packets; point the edge at a transform or sink",
            edge=label,
        )
        ok = False
    source, target = state.nodes.get(source_id), state.nodes.get(target_id)
    if not ok or source is None or target is None:
        return None
    out_port = _check_port(state, source, source_port, "outputs", (*at, "from"), label)
    in_port = _check_port(state, target, target_port, "inputs", (*at, "to"), label)
    if out_port is None or in_port is None:
        return None
    return ResolvedEdge(source_id, out_port, target_id, in_port)


def _check_port(
    state: CheckState, entry: NodeEntry, port: str, side: str, at: tuple[Any, ...], label: str
) -> str | None:
    """The port an edge end uses: the named one if the plugin has it, else its first port."""
    if entry.plugin is None:
        return port or "?"  # plugin unknown (already reported): its ports cannot be checked
    ports: tuple[str, ...] = getattr(entry.plugin, side)
    if side == "outputs" and entry.config is not None:
        ports = entry.plugin.output_ports(entry.config)
    if not port:
        return ports[0]
    if port in ports:
        return port
    state.problem(
        "bad-port",
        f"node {entry.spec.id!r} ({entry.plugin.name}) has no {side[:-1]} port {port!r}",
        at,
        f"its {side[:-1]} ports: {', '.join(ports)}",
        edge=label,
    )
    return None
