"""Rules for the top level of a graph file: its keys, `version`, and the shape of each section."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from schnitzel.spec.model import GRAPH_VERSION, GraphSpec, RuntimeSpec
from schnitzel.spec.yaml_source import yaml_literal
from schnitzel.validate.state import CheckState

__all__ = ["check_top_level", "yaml_type"]

TOP_KEYS = tuple(field.alias or name for name, field in GraphSpec.model_fields.items())


def yaml_type(value: object) -> str:
    """What a YAML value is, in YAML's words (mapping, list, string, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {dict: "mapping", list: "list", str: "string", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


def check_top_level(state: CheckState, data: dict[Any, Any]) -> None:
    """Unknown keys, `version`, and the sections' types; parses `runtime` into the state."""
    for key in data:
        if key not in TOP_KEYS:
            state.problem(
                "unknown-key",
                f"unknown top-level key {yaml_literal(key)}",
                (key,),
                f"allowed top-level keys: {', '.join(TOP_KEYS)}",
            )
    _check_version(state, data)
    nodes = data.get("nodes")
    if "nodes" not in data or nodes is None or nodes == []:
        state.problem(
            "no-nodes",
            "the graph has no nodes",
            ("nodes",) if "nodes" in data else (),
            "list the nodes under `nodes:`, each with id, kind and plugin",
        )
    elif not isinstance(nodes, list):
        state.problem(
            "bad-value",
            f"`nodes` must be a list of nodes, not a {yaml_type(nodes)}",
            ("nodes",),
            "write each node as a list item starting with `- id: ...`",
        )
    edges = data.get("edges")
    if edges is not None and not isinstance(edges, list):
        state.problem(
            "bad-value",
            f"`edges` must be a list of edges, not a {yaml_type(edges)}",
            ("edges",),
            "write each edge as a list item: `- {from: a, to: b}`",
        )
    runtime = data.get("runtime")
    if runtime is None:  # the defaults (CheckState's), without building the validator
        return
    try:
        state.runtime = RuntimeSpec.model_validate(runtime)
    except ValidationError as exc:
        state.schema_problems(exc, RuntimeSpec, ("runtime",))


def _check_version(state: CheckState, data: dict[Any, Any]) -> None:
    if "version" not in data:
        state.problem(
            "bad-version",
            "the file does not say which format it uses",
            (),
            f"add `version: {GRAPH_VERSION}` as the first line",
        )
        return
    version = data["version"]
    if type(version) is not int or version != GRAPH_VERSION:
        state.problem(
            "bad-version",
            f"graph file version {yaml_literal(version)} is not supported; this runtime reads "
            f"version {GRAPH_VERSION}",
            ("version",),
            f"set `version: {GRAPH_VERSION}` and check the file against docs/graph-file.md",
        )
