"""Rules for each node on its own: its keys and id, then its plugin, config and environment."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schnitzel.errors import PluginError
from schnitzel.registry.plugin import CheckContext, Plugin, cannot_run
from schnitzel.registry.registry import allowed_modules
from schnitzel.spec.model import NODE_ID_PATTERN, NodeSpec
from schnitzel.spec.names import shown
from schnitzel.spec.yaml_source import yaml_literal
from schnitzel.validate.schema_errors import describe_error, errors_of
from schnitzel.validate.state import CheckState, NodeEntry
from schnitzel.validate.top_level import yaml_type

__all__ = ["check_nodes", "resolve_plugins"]


def check_nodes(state: CheckState, raw_nodes: list[Any]) -> None:
    """Validate each node's own keys; keep the good ones, note ids and kinds of broken ones."""
    first_line: dict[str, int | None] = {}
    for index, raw in enumerate(raw_nodes):
        at = ("nodes", index)
        if not isinstance(raw, dict):
            state.problem(
                "bad-value",
                f"node {index} is a {yaml_type(raw)}, not a mapping",
                at,
                "write a node as `- id: name` with kind and plugin keys below it",
            )
            continue
        label = _label(raw.get("id"))
        if label is not None:
            if label in first_line:
                _duplicate_id(state, label, at, first_line[label])
            else:
                located = state.source_map.locate((*at, "id"))
                first_line[label] = located[0] if located else None
        try:
            spec = NodeSpec.model_validate(raw)
        except ValidationError as exc:
            _node_schema_problems(state, exc, at, label)
            if label is not None:
                declared = raw.get("kind")
                state.broken_kinds.setdefault(
                    label, declared if isinstance(declared, str) else None
                )
            continue
        if spec.kind == "source" and "inbox" in raw:
            state.problem(
                "source-inbox",
                "a source has no inbox: nothing is sent to it, so `inbox:` would have no effect",
                (*at, "inbox"),
                "remove `inbox:`; to make what a source emits durable, give the next node a "
                "durable inbox",
                node=spec.id,
            )
        entry = NodeEntry(index, spec)
        if spec.id in state.nodes or spec.id in state.broken_kinds:
            state.duplicates.append(entry)
        else:
            state.nodes[spec.id] = entry


def _label(raw_id: object) -> str | None:
    """What to call a node in messages, even when its id is not a valid one (`id: 1`)."""
    if isinstance(raw_id, str):
        return raw_id
    if raw_id is None or isinstance(raw_id, dict | list):
        return None
    return yaml_literal(raw_id)


def _duplicate_id(state: CheckState, label: str, at: tuple[Any, ...], first: int | None) -> None:
    state.problem(
        "duplicate-id",
        f"id {label!r} is used by more than one node"
        + (f" (first on line {first})" if first else ""),
        (*at, "id"),
        "give every node its own id",
        node=label,
    )


def _node_schema_problems(
    state: CheckState, exc: ValidationError, at: tuple[Any, ...], label: str | None
) -> None:
    for error in errors_of(exc):
        if error["loc"] == ("plugin",) and error["input"] is None:
            state.problem(
                "bad-value",
                "`plugin: null` is YAML's empty value, not the plugin named null",
                (*at, "plugin"),
                'quote the name: `plugin: "null"`',
                node=label,
            )
        elif error["loc"] == ("id",) and error["type"] == "string_pattern_mismatch":
            state.problem(
                "bad-id",
                f"node id {shown(error['input'])} is not allowed",
                (*at, "id"),
                "use 1 to 64 characters of a-z, 0-9, _ and - (lowercase, no dots or spaces)",
                node=label,
            )
        elif error["loc"] == ("id",) and error["type"] == "string_type":
            written = yaml_literal(error["input"])
            quotable = re.fullmatch(NODE_ID_PATTERN[1:-1], written) is not None
            state.problem(
                "bad-id",
                f"node id {written} is not a string",
                (*at, "id"),
                f'quote it: `id: "{written}"`, or use a name'
                if quotable
                else "use a name of 1 to 64 characters of a-z, 0-9, _ and -",
                node=label,
            )
        else:
            code, message, hint = describe_error(error, NodeSpec, at)
            state.problem(code, message, at + tuple(error["loc"]), hint, node=label)


def resolve_plugins(state: CheckState) -> None:
    """Find each node's plugin, parse its config, and ask the plugin about its environment.

    Duplicated nodes are checked too, so their own problems show in the same pass.
    """
    allow = allowed_modules(state.runtime.allow_modules)
    context = CheckContext(state.path.parent if state.path is not None else Path.cwd())
    for entry in [*state.nodes.values(), *state.duplicates]:
        _resolve(state, entry, allow, context)


def _resolve(
    state: CheckState, entry: NodeEntry, allow: tuple[str, ...], context: CheckContext
) -> None:
    spec = entry.spec
    try:
        graph_dir = context.graph_dir if state.path is not None else None
        plugin = state.registry.resolve(spec.plugin, spec.kind, allow, graph_dir)
    except PluginError as exc:
        state.problem(
            exc.code,
            str(exc),
            (*entry.at, "plugin"),
            "`schnitzel plugins` lists the installed plugins and their options",
            node=spec.id,
        )
        return
    why_not = cannot_run(plugin)
    if why_not is not None:
        state.problem("plugin-incomplete", why_not, (*entry.at, "plugin"), node=spec.id)
    _calls_at_once(state, entry, plugin)
    try:
        config = plugin.Config.model_validate(spec.config)
    except ValidationError as exc:
        for error in errors_of(exc):
            _, message, hint = describe_error(error, plugin.Config, (*entry.at, "config"))
            state.problem(
                "bad-config",
                f"plugin {plugin.name!r} refuses its config: {message}",
                (*entry.at, "config", *error["loc"]),
                hint,
                node=spec.id,
            )
        return
    except Exception as exc:  # a plugin's own validator failed: report, not crash
        state.plugin_failed(entry, plugin.name, "validating its config", exc)
        return
    entry.plugin, entry.config = plugin, config
    try:
        environment = plugin.check_environment(config, context)
    except Exception as exc:  # third-party code must not take the validator down
        state.plugin_failed(entry, plugin.name, "checking its environment", exc)
        return
    for env in environment:
        key_path = (*entry.at, "config", env.config_key) if env.config_key else entry.at
        state.problem(
            "environment",
            env.message,
            key_path,
            env.hint,
            node=spec.id,
            severity="warning" if env.severity == "warning" else "error",
        )


def _calls_at_once(state: CheckState, entry: NodeEntry, plugin: type[Plugin]) -> None:
    """A node may not be given more calls at once than its plugin takes (`max_calls_at_once`)."""
    cap, spec = plugin.max_calls_at_once, entry.spec
    if cap is None:
        return
    hint = f"plugin {plugin.name!r} takes at most {cap} call(s) at once (its max_calls_at_once)"
    if spec.concurrency > cap:
        message = f"concurrency {spec.concurrency} is more than plugin {plugin.name!r} takes"
        state.problem("bad-value", message, (*entry.at, "concurrency"), hint, node=spec.id)
    if spec.limits.concurrency is not None and spec.limits.concurrency[1] > cap:
        high = spec.limits.concurrency[1]
        message = f"limits.concurrency up to {high} is more than plugin {plugin.name!r} takes"
        at = (*entry.at, "limits", "concurrency")
        state.problem("bad-value", message, at, hint, node=spec.id)
