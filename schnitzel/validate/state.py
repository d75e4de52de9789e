"""What one validation pass knows so far, and how it reports a problem.

The rule modules (`top_level`, `nodes`, `edges`, `structure`, `flow_rules`) each read and
extend one `CheckState`; `validator` runs them in order.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from schnitzel.registry.plugin import Plugin, PluginConfig
from schnitzel.registry.registry import PluginRegistry
from schnitzel.spec.model import EdgeSpec, NodeSpec, RuntimeSpec
from schnitzel.spec.yaml_source import SourceMap
from schnitzel.validate.graph import ResolvedEdge
from schnitzel.validate.problems import Location, Problem, Severity, ValidationReport
from schnitzel.validate.schema_errors import describe_error, errors_of, render_path

__all__ = ["CheckState", "NodeEntry"]


class NodeEntry:
    """A node that passed its own schema, and its plugin and config once resolved."""

    __slots__ = ("config", "index", "plugin", "spec")

    def __init__(self, index: int, spec: NodeSpec) -> None:
        self.index = index
        self.spec = spec
        self.plugin: type[Plugin] | None = None
        self.config: PluginConfig | None = None

    @property
    def at(self) -> tuple[Any, ...]:
        """Its path in the file."""
        return ("nodes", self.index)


class CheckState:
    """The report being written, and what the layers so far made sense of."""

    def __init__(
        self, source: str, registry: PluginRegistry, path: Path | None, source_map: SourceMap
    ) -> None:
        self.source = source
        self.registry = registry
        self.path = path
        self.source_map = source_map
        self.report = ValidationReport(source)
        self.runtime = RuntimeSpec.model_construct()  # the defaults; validator built if used
        self.nodes: dict[str, NodeEntry] = {}
        self.duplicates: list[NodeEntry] = []
        """Second and later nodes with a taken id: checked, but not part of the graph."""
        self.broken_kinds: dict[str, str | None] = {}
        """Ids of nodes that failed their own schema, with the kind they declare if any."""
        self.edges: list[tuple[int, ResolvedEdge]] = []
        self.edge_specs: list[EdgeSpec] = []
        # Ends of edges that were refused (broken node, wrong port, ...): the nodes they name
        # are connected as the author meant, so they are not reported as unfed or dangling.
        self.loose_sources: set[str] = set()
        self.loose_targets: set[str] = set()

    def problem(
        self,
        code: str,
        message: str,
        at: tuple[Any, ...],
        hint: str = "",
        node: str | None = None,
        edge: str | None = None,
        severity: Severity = "error",
    ) -> None:
        """Report a problem at a path of the file (its line is looked up)."""
        found = self.source_map.locate(at)
        line, column = found if found else (None, None)
        where = Location(self.source, line, column, node, edge, render_path(at) if at else None)
        self.report.problems.append(Problem(code, message, where, hint, severity))

    def schema_problems(
        self,
        exc: ValidationError,
        model: type[BaseModel],
        at: tuple[Any, ...],
        node: str | None = None,
        edge: str | None = None,
    ) -> None:
        """Report each error pydantic found in the part of the file at `at`."""
        for error in errors_of(exc):
            code, message, hint = describe_error(error, model, at)
            self.problem(code, message, at + tuple(error["loc"]), hint, node=node, edge=edge)

    def plugin_failed(self, entry: NodeEntry, plugin: str, doing: str, exc: Exception) -> None:
        """Report an exception raised by a plugin's own code as a problem of its node."""
        self.problem(
            "plugin-failed",
            f"plugin {plugin!r} raised {type(exc).__name__} while {doing}: {exc}",
            (*entry.at, "plugin"),
            "this is a bug in the plugin; report it to the plugin's authors with this message",
            node=entry.spec.id,
        )

    def kind_of(self, node_id: str) -> str | None:
        """The node kind a node declares, even when its own schema failed."""
        entry = self.nodes.get(node_id)
        return entry.spec.kind if entry is not None else self.broken_kinds.get(node_id)

    def successors(self) -> dict[str, list[str]]:
        """Accepted edges, from each node to the nodes it feeds."""
        out: dict[str, list[str]] = defaultdict(list)
        for _, edge in self.edges:
            out[edge.source].append(edge.target)
        return out

    def predecessors(self) -> dict[str, list[str]]:
        """Accepted edges, to each node from the nodes that feed it."""
        out: dict[str, list[str]] = defaultdict(list)
        for _, edge in self.edges:
            out[edge.target].append(edge.source)
        return out
