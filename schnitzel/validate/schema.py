"""The JSON Schema of the graph file, with each installed plugin's config schema, for editors.

Editors (VS Code's YAML extension, JetBrains, vim with a YAML language server) complete and
check a graph file from it: `schnitzel schema > graph.schema.json`.
"""

from __future__ import annotations

import copy
from typing import Any

from schnitzel.registry.registry import PluginRegistry
from schnitzel.spec.model import GraphSpec

__all__ = ["SCHEMA_ID", "graph_json_schema"]

SCHEMA_ID = "https://schnitzel.dev/schema/graph-v2.json"
_MODULE_REFERENCE = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"


def graph_json_schema(registry: PluginRegistry) -> dict[str, Any]:
    """The schema (draft 2020-12) of a version 2 graph file with the installed plugins."""
    schema = GraphSpec.model_json_schema(by_alias=True, mode="validation")
    defs = schema.setdefault("$defs", {})
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }
    # An empty `config:`, `inbox:`, `edges:` or `runtime:` is YAML null and means "defaults".
    _allow_null(schema["properties"], "edges", "runtime")
    node = defs["NodeSpec"]
    _allow_null(node["properties"], "inbox", "config")
    node["properties"]["plugin"] = {
        **node["properties"]["plugin"],
        "anyOf": [
            {"enum": registry.names()},
            {"pattern": _MODULE_REFERENCE, "description": "module:Class (allowlisted module)"},
        ],
    }
    rules = []
    for registered in registry.plugins():
        plugin = registered.plugin
        prefix = f"{plugin.node_kind}_{plugin.name}".replace("-", "_")
        try:
            own_schema = plugin.Config.model_json_schema()
        except Exception:  # a third-party field type with no JSON Schema: accept any object
            own_schema = {"type": "object"}
        config_schema = _relocate(own_schema, prefix, defs)
        config_schema["description"] = f"{plugin.name} ({plugin.node_kind}): {plugin.summary()}"
        rules.append(
            {
                "if": {
                    "properties": {
                        "plugin": {"const": plugin.name},
                        "kind": {"const": plugin.node_kind},
                    },
                    "required": ["plugin", "kind"],
                },
                "then": {"properties": {"config": _nullable(config_schema, plugin)}},
            }
        )
    node["allOf"] = rules
    return schema


def _allow_null(properties: dict[str, Any], *names: str) -> None:
    for name in names:
        properties[name] = {"anyOf": [properties[name], {"type": "null"}]}


def _nullable(config_schema: dict[str, Any], plugin: Any) -> dict[str, Any]:
    """`config:` left empty is accepted when the plugin has no required option."""
    if any(info.is_required() for info in plugin.Config.model_fields.values()):
        return config_schema
    return {"anyOf": [config_schema, {"type": "null"}]}


def _relocate(schema: dict[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """Move a config schema's own $defs into the graph schema's, renamed under `prefix`."""
    schema = copy.deepcopy(schema)
    local = schema.pop("$defs", {})
    renamed = {name: f"{prefix}__{name}" for name in local}

    def rewrite(value: Any) -> Any:
        if isinstance(value, dict):
            out = {k: rewrite(v) for k, v in value.items()}
            ref = out.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                out["$ref"] = "#/$defs/" + renamed.get(ref[8:], ref[8:])
            return out
        if isinstance(value, list):
            return [rewrite(v) for v in value]
        return value

    for name, definition in local.items():
        defs[renamed[name]] = rewrite(definition)
    return rewrite(schema)
