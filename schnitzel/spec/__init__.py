"""The graph file: pydantic models, safe YAML loading with line numbers, the JSON Schema."""

from schnitzel.spec.model import (
    GRAPH_VERSION,
    DurableSpec,
    EdgeSpec,
    GraphSpec,
    InboxSpec,
    NodeKind,
    NodeSpec,
    Overflow,
    RuntimeSpec,
)

__all__ = [
    "GRAPH_VERSION",
    "DurableSpec",
    "EdgeSpec",
    "GraphSpec",
    "InboxSpec",
    "NodeKind",
    "NodeSpec",
    "Overflow",
    "RuntimeSpec",
]
