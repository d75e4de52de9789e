"""A validated graph: what the runtime builds from. Only `validate` creates one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schnitzel.registry.plugin import Plugin, PluginConfig, StreamShape
from schnitzel.spec.model import GraphSpec, NodeSpec

__all__ = ["ResolvedEdge", "ResolvedNode", "ValidatedGraph"]


@dataclass(frozen=True)
class ResolvedNode:
    """A node with its plugin class and its parsed config."""

    spec: NodeSpec
    plugin: type[Plugin]
    config: PluginConfig
    output: StreamShape | None
    """What the node emits, as inferred; None for sinks."""

    @property
    def id(self) -> str:
        """The node id."""
        return self.spec.id


@dataclass(frozen=True)
class ResolvedEdge:
    """An edge with both ports named."""

    source: str
    source_port: str
    target: str
    target_port: str


@dataclass(frozen=True)
class ValidatedGraph:
    """A graph that passed validation, with plugins resolved and configs parsed."""

    spec: GraphSpec
    path: Path | None
    """The graph file; relative paths inside the graph resolve against its directory."""
    nodes: dict[str, ResolvedNode]
    edges: tuple[ResolvedEdge, ...]

    @property
    def base_dir(self) -> Path:
        """The directory relative paths in the graph resolve against."""
        return self.path.parent if self.path is not None else Path.cwd()
