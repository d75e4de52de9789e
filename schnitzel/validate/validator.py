"""The fail-closed validator: every problem of a graph file in one pass.

Checks run in layers, and each layer works with what the earlier ones could make sense of, so
a bad node is reported once and does not hide the problems of the others:

1. the file (`spec.yaml_source`): size, text, YAML syntax, nesting, aliases, duplicate keys;
2. the top level (`top_level`): `version`, `nodes`, `edges`, `runtime`, no unknown keys;
3. each node (`nodes`): keys, ids, kinds, inbox settings; then its plugin (registered or
   allowlisted, of the node's kind), its config and its environment;
4. each edge (`edges`): both ends name nodes, sources take no input, sinks give no output,
   ports exist, no edge twice;
5. the graph (`structure`): a source exists, nothing unfed, no output that goes nowhere, every
   node reached from a source, loops that reach a sink, every cycle through a delay node;
6. the flow (`flow_rules`): packet kinds each node accepts, portable payloads into durable
   inboxes and network sinks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schnitzel.errors import GraphInvalid, GraphLoadError
from schnitzel.registry.plugin import StreamShape
from schnitzel.registry.registry import PluginRegistry
from schnitzel.spec.model import GRAPH_VERSION, GraphSpec
from schnitzel.spec.yaml_source import (
    LIMITS,
    YamlLoadFailed,
    YamlProblem,
    decode_text,
    load_yaml,
    read_graph_bytes,
    too_large,
)
from schnitzel.validate.durable_paths import check_durable_paths
from schnitzel.validate.edges import check_edges
from schnitzel.validate.error_policy import check_error_policies
from schnitzel.validate.flow_rules import check_flow
from schnitzel.validate.graph import ResolvedNode, ValidatedGraph
from schnitzel.validate.nodes import check_nodes, resolve_plugins
from schnitzel.validate.problems import Location, Problem, ValidationReport
from schnitzel.validate.state import CheckState
from schnitzel.validate.structure import check_structure
from schnitzel.validate.top_level import check_top_level, yaml_type

__all__ = [
    "ValidationResult",
    "load_graph",
    "validate_bytes",
    "validate_file",
    "validate_text",
]


@dataclass
class ValidationResult:
    """The report, and the validated graph when there are no errors."""

    report: ValidationReport
    graph: ValidatedGraph | None


def validate_file(path: str | Path, registry: PluginRegistry | None = None) -> ValidationResult:
    """Validate a graph file. Raises GraphLoadError only when the file cannot be read at all."""
    path = Path(path)
    try:
        data = read_graph_bytes(path)
    except YamlLoadFailed as failed:
        return _failed_load(str(path), failed.problem)
    except FileNotFoundError as exc:
        raise GraphLoadError(f"{path}: no such file; pass the path of a graph .yaml file") from exc
    except IsADirectoryError as exc:
        raise GraphLoadError(f"{path} is a directory; pass the path of a graph .yaml file") from exc
    except OSError as exc:
        raise GraphLoadError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc
    return validate_bytes(data, source=str(path), registry=registry, path=path)


def validate_bytes(
    data: bytes,
    source: str = "<graph>",
    registry: PluginRegistry | None = None,
    path: Path | None = None,
) -> ValidationResult:
    """Validate the raw bytes of a graph file (size and encoding are checked first)."""
    try:
        if len(data) > LIMITS.max_bytes:
            raise YamlLoadFailed(too_large(len(data), LIMITS))
        text = decode_text(data)
    except YamlLoadFailed as failed:
        return _failed_load(source, failed.problem)
    return validate_text(text, source=source, registry=registry, path=path)


def validate_text(
    text: str,
    source: str = "<graph>",
    registry: PluginRegistry | None = None,
    path: Path | None = None,
) -> ValidationResult:
    """Validate the text of a graph file. `path` anchors relative paths inside the graph."""
    return _check(text, source, registry or PluginRegistry.from_entry_points(), path)


def _failed_load(source: str, problem: YamlProblem) -> ValidationResult:
    report = ValidationReport(source, [_from_yaml_problem(source, problem)])
    return ValidationResult(report, None)


def _from_yaml_problem(source: str, problem: YamlProblem) -> Problem:
    where = Location(source, problem.line, problem.column)
    return Problem(problem.code, problem.message, where, problem.hint)


def _check(text: str, source: str, registry: PluginRegistry, path: Path | None) -> ValidationResult:
    """Run every layer of rules over one graph text."""
    try:
        document = load_yaml(text)
    except YamlLoadFailed as failed:
        return _failed_load(source, failed.problem)
    state = CheckState(source, registry, path, document.source_map)
    state.report.problems.extend(_from_yaml_problem(source, p) for p in document.problems)
    data = document.data
    if not isinstance(data, dict):
        state.problem(
            "not-a-mapping",
            f"the file holds a YAML {yaml_type(data)}, not a mapping",
            (),
            "a graph file is a mapping with the keys version, nodes, edges and runtime",
        )
        return ValidationResult(state.report, None)
    check_top_level(state, data)
    raw_nodes, raw_edges = data.get("nodes"), data.get("edges")
    check_nodes(state, raw_nodes if isinstance(raw_nodes, list) else [])
    resolve_plugins(state)
    check_durable_paths(state)
    check_edges(state, raw_edges if isinstance(raw_edges, list) else [])
    check_error_policies(state)
    check_structure(state)
    shapes = check_flow(state)
    graph = _build(state, shapes) if state.report.valid else None
    return ValidationResult(state.report, graph)


def _build(state: CheckState, shapes: dict[str, StreamShape]) -> ValidatedGraph:
    # Every part was validated on its own; assembling them must not validate twice.
    spec = GraphSpec.model_construct(
        version=GRAPH_VERSION,
        nodes=[entry.spec for entry in state.nodes.values()],
        edges=state.edge_specs,
        runtime=state.runtime,
    )
    nodes = {}
    for node_id, entry in state.nodes.items():
        assert entry.plugin is not None and entry.config is not None  # valid: all resolved
        nodes[node_id] = ResolvedNode(entry.spec, entry.plugin, entry.config, shapes.get(node_id))
    return ValidatedGraph(spec, state.path, nodes, tuple(edge for _, edge in state.edges))


def load_graph(path: str | Path, registry: PluginRegistry | None = None) -> ValidatedGraph:
    """A validated graph from a file, or GraphInvalid listing every problem."""
    result = validate_file(path, registry)
    if result.graph is None:
        raise GraphInvalid(result.report)
    return result.graph
