"""`schnitzel schema` and `schnitzel plugins [--json]`."""

from __future__ import annotations

import json
from typing import Any

from schnitzel.launch.output import print_json, say
from schnitzel.registry.plugin import Plugin, SameAsInput
from schnitzel.registry.registry import PluginRegistry

__all__ = ["config_fields", "plugin_json", "run_plugins", "run_schema"]


def run_schema(indent: int = 2) -> int:
    """Print the JSON Schema of graph files with the installed plugins' configs."""
    from schnitzel.validate.schema import graph_json_schema

    print_json(graph_json_schema(PluginRegistry.from_entry_points()), indent=indent or None)
    return 0


def config_fields(plugin: type[Plugin]) -> list[dict[str, Any]]:
    """Each config option: name, JSON type, required, default, description."""
    properties = config_schema(plugin).get("properties", {})
    fields = []
    for name, info in plugin.Config.model_fields.items():
        required = info.is_required()
        fields.append(
            {
                "name": name,
                "type": _type_of(properties.get(name, {})),
                "required": required,
                "default": None if required else info.get_default(call_default_factory=True),
                "description": info.description or "",
            }
        )
    return fields


def config_schema(plugin: type[Plugin]) -> dict[str, Any]:
    """The JSON Schema of a plugin's config; empty when a field type has none."""
    try:
        return plugin.Config.model_json_schema()
    except Exception:  # a third-party field type pydantic cannot describe: list it as `any`
        return {}


def _type_of(prop: dict[str, Any]) -> str:
    if "type" in prop:
        return str(prop["type"])
    if "anyOf" in prop:
        return "|".join(_type_of(option) for option in prop["anyOf"])
    if "$ref" in prop:
        return "object"
    return "any"


def _kinds(value: object) -> Any:
    if isinstance(value, SameAsInput):
        return "same_as_input"
    return "any" if value is None else sorted(value)  # type: ignore[call-overload]


def plugin_json(plugin: type[Plugin], pack: str) -> dict[str, Any]:
    """Everything a plugin declares, as `schnitzel plugins --json` prints it.

    `emits` is "config_dependent" for plugins that compute their output from their config
    (they override `output_shape`), as `synthetic` does with its `kind` option.
    """
    profile = plugin.emits_profile
    dynamic = plugin.output_shape.__func__ is not Plugin.output_shape.__func__  # type: ignore[attr-defined]
    emits = "config_dependent" if dynamic else _kinds(plugin.emits)
    return {
        "name": plugin.name,
        "node_kind": plugin.node_kind,
        "pack": pack,
        "api_version": plugin.api_version,
        "summary": plugin.summary(),
        "inputs": list(plugin.inputs),
        "outputs": list(plugin.outputs),
        "accepts": _kinds(plugin.accepts),
        "emits": emits if plugin.outputs else None,
        "emits_profile": None
        if not plugin.outputs
        else ("same_as_input" if isinstance(profile, SameAsInput) else profile.value),
        "requires_portable": plugin.requires_portable,
        "config": config_fields(plugin),
    }


def run_plugins(as_json: bool = False) -> int:
    """List plugins with their options, and packs that failed to load."""
    registry = PluginRegistry.from_entry_points()
    listed = [plugin_json(r.plugin, r.pack) for r in registry.plugins()]
    broken = [{"pack": b.pack, "name": b.name, "reason": b.reason} for b in registry.broken]
    if as_json:
        print_json({"plugins": listed, "broken": broken})
        return 0
    for item in listed:
        say(f"{item['name']} ({item['node_kind']}, pack {item['pack']}): {item['summary']}")
        for field in item["config"]:
            default = (
                "required"
                if field["required"]
                else f"default {json.dumps(field['default'], default=str)}"
            )
            say(f"    {field['name']}: {field['type']} ({default})  {field['description']}")
    for item in broken:
        say(
            f"BROKEN pack {item['pack']}{' ' + item['name'] if item['name'] else ''}: "
            f"{item['reason']}"
        )
    return 0
