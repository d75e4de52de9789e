"""Reloading the graph file into a running graph (SIGHUP, `schnitzel ctl reload`).

The edited file is validated as a whole first. What can change live is then applied: a
node's plugin or config (a hot swap), its `concurrency` and a source's `rate_hz` (throttles).
Anything else (nodes or edges added or removed, a kind, an inbox, an error policy, limits,
the `runtime:` section) needs a restart; the reload is then refused as a whole, naming each
such change, and nothing is applied. Swaps are planned (validated) and throttles checked
against the limits before any is done; if a swap fails to start (or a throttle fails: its
node swapped meanwhile by someone else), the swaps and throttles already done in this reload
are undone (a swap whose rollback fails too stays, and the answer names it).

The file is compared with the graph as last loaded: the file the run started from, with
what each reload applied. A knob is throttled only when the file changed it since, so a
throttle made in between (by an operator or the controller) stays until the file says
otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schnitzel.control.actor import Actor
from schnitzel.control.throttles import check_throttle
from schnitzel.errors import ControlError, GraphLoadError
from schnitzel.registry.plugin import Plugin, Source
from schnitzel.registry.registry import PluginRegistry
from schnitzel.runtime.knobs import knob_bounds
from schnitzel.runtime.node import Node, takes_concurrency
from schnitzel.spec.model import NodeSpec
from schnitzel.validate.graph import ValidatedGraph
from schnitzel.validate.validator import validate_file

if TYPE_CHECKING:
    from schnitzel.control.runtime_control import RuntimeControl
    from schnitzel.runtime.runtime import Runtime

__all__ = ["reload_graph"]

RESTART_FIELDS = ("kind", "inbox", "on_error", "dead_letter", "limits")
"""Node settings a running graph cannot change (the inbox is what a swap keeps)."""


async def reload_graph(control: RuntimeControl, actor: Actor, why: str = "") -> dict[str, Any]:
    """Apply the graph file's changes; what was done. Raises ControlError (nothing applied)
    when the file is invalid or changes something that needs a restart."""
    runtime = control.runtime
    path = runtime.graph.path
    if path is None:
        raise ControlError("this graph was not loaded from a file: there is nothing to reload")
    applied: list[dict[str, Any]] = []
    try:  # everything checked before the first change is made
        new = _load(path, runtime.plugin_registry())
        paced = {n for n, node in runtime.nodes.items() if _paced_by_config(node)}
        swaps, throttles = _changes(runtime.graph, new, paced)
        plugins = {spec.id: new.nodes[spec.id].plugin for spec in swaps}
        for spec in swaps:
            control.plan(spec.id, spec.plugin, dict(spec.config))
        for node_id, knobs in throttles.items():
            node = runtime.nodes[node_id]
            if "concurrency" in knobs:
                plugin = plugins.get(node_id, type(node.plugin))
                _check_concurrency(node, plugin, knobs["concurrency"])
            if "rate_hz" in knobs:
                check_throttle(node, {"rate_hz": knobs["rate_hz"]})
    except ControlError as exc:
        control.write_audit("reload", None, actor, why, None, None, {"graph": str(path)}, str(exc))
        control.note("error", f"reload of {path} refused: {exc}")
        raise
    done: list[str] = []
    turned: list[tuple[str, dict[str, Any]]] = []
    try:
        for spec in swaps:
            result = await control.swap(
                spec.id, spec.plugin, dict(spec.config), actor=actor, why=why or "reload"
            )
            done.append(spec.id)
            applied.append({"node": spec.id, "swap": result["after"]})
        for node_id, knobs in throttles.items():
            result = control.throttle(node_id, **knobs, actor=actor, why=why or "reload")
            turned.append((node_id, {k: v["before"] for k, v in result["changes"].items()}))
            applied.append({"node": node_id, "throttle": result["changes"]})
    except ControlError as exc:
        kept = await _undo(control, actor, turned, done)
        error = f"reload failed and was undone: {exc}"
        if kept:
            error = (
                f"reload failed: {exc}; undone except what could not be put back: "
                f"{', '.join(kept)}: those run the file's new version, as the running graph "
                "now says (`ctl rollback` them once their old plugin opens again, or restart)"
            )
        control.write_audit("reload", None, actor, why, None, None, {"graph": str(path)}, error)
        control.note("error", f"{error} ({path})")
        raise ControlError(error) from exc
    _adopt(runtime, new, throttles)
    summary = {"graph": str(path), "applied": applied}
    control.write_audit("reload", None, actor, why, None, None, summary)
    what = ", ".join(sorted({a["node"] for a in applied})) or "nothing changed"
    control.note("info", f"reloaded {path} by {actor}: {what}")
    return summary


async def _undo(
    control: RuntimeControl,
    actor: Actor,
    turned: list[tuple[str, dict[str, Any]]],
    swapped: list[str],
) -> list[str]:
    """Undo a reload that failed part way, newest change first: its throttles, then its swaps;
    return the swapped nodes whose rollback failed too (each audited with its reason), so
    that one failure does not leave the other changes in place unsaid."""
    # checked first, a throttle can still fail: a node swapped meanwhile (`ctl swap` while
    # the reload's swaps awaited) may no longer take it
    for node_id, before in reversed(turned):
        with contextlib.suppress(ControlError):  # its audit entry says why not
            control.throttle(node_id, **before, actor=actor, why="reload failed part way")
    kept: list[str] = []
    for node_id in reversed(swapped):
        try:
            await control.rollback(node_id, actor=actor, why="reload failed part way")
        except ControlError as failed:
            kept.append(f"{node_id!r} ({failed})")
    return kept


def _check_concurrency(node: Node, plugin: type[Plugin], concurrency: int) -> None:
    """`concurrency` can be set on `node` once it runs `plugin`."""
    if not takes_concurrency(node.kind, plugin):
        raise ControlError(
            f"node {node.id!r}: concurrency changed, but its plugin runs one call at a time; "
            "restart to apply"
        )
    low, high = knob_bounds(node.resolved.spec.limits, "concurrency")
    if not low <= concurrency <= high:
        raise ControlError(
            f"node {node.id!r}: concurrency {concurrency} is outside its limits "
            f"[{low:.12g}, {high:.12g}]; change the limits and restart"
        )


def _load(path: Path, registry: PluginRegistry) -> ValidatedGraph:
    try:
        result = validate_file(path, registry)
    except GraphLoadError as exc:
        raise ControlError(str(exc)) from exc
    if result.graph is None:
        problems = [p.render() for p in result.report.problems if p.severity == "error"]
        raise ControlError(f"{path} is invalid: " + "; ".join(problems))
    return result.graph


def _adopt(runtime: Runtime, new: ValidatedGraph, throttled: dict[str, dict[str, Any]]) -> None:
    """Record the file's settings of the nodes the reload throttled in the running graph
    (the next reload compares with them); the other nodes already match the file."""
    if not throttled:
        return
    current = runtime.graph
    nodes = dict(current.nodes)
    for node_id in throttled:
        written = new.nodes[node_id]
        nodes[node_id] = dataclasses.replace(
            nodes[node_id], spec=written.spec, config=written.config
        )
        runtime.nodes[node_id].resolved = nodes[node_id]
    spec = current.spec.model_copy(update={"nodes": [nodes[n.id].spec for n in current.spec.nodes]})
    runtime.graph = dataclasses.replace(current, spec=spec, nodes=nodes)


def _paced_by_config(node: Node) -> bool:
    """A source the runtime paces to its config's `rate_hz`: a change of that key alone is a
    throttle. The pace is the plugin's `rate_hz()` (docs/plugins.md); a `rate_hz` in its
    config may be something else (a device's sampling rate, a pace only with another key)."""
    plugin = node.plugin
    if not isinstance(plugin, Source):
        return False
    written = getattr(plugin.config, "rate_hz", _NOT_IN_CONFIG)
    try:
        return written is not _NOT_IN_CONFIG and plugin.rate_hz() == written
    except Exception:  # the plugin's own code: not a pace it can be shown to follow
        return False


_NOT_IN_CONFIG = object()


def _changes(
    running: ValidatedGraph, new: ValidatedGraph, paced_by_config: set[str]
) -> tuple[list[NodeSpec], dict[str, dict[str, Any]]]:
    """The swaps and throttles (per node, knob -> value) that turn `running` into `new`;
    ControlError listing every change that needs a restart. `paced_by_config`: the sources
    whose `rate_hz` in the config is their pace."""
    restart: list[str] = []
    old_nodes = {n.id: n for n in running.spec.nodes}
    new_nodes = {n.id: n for n in new.spec.nodes}
    added = sorted(new_nodes.keys() - old_nodes.keys())
    removed = sorted(old_nodes.keys() - new_nodes.keys())
    if added:
        restart.append(f"nodes added: {', '.join(added)}")
    if removed:
        restart.append(f"nodes removed: {', '.join(removed)}")
    old_edges = {(e.source, e.target) for e in running.spec.edges}
    new_edges = {(e.source, e.target) for e in new.spec.edges}
    if old_edges != new_edges:
        changed = sorted(f"{a} -> {b}" for a, b in old_edges ^ new_edges)
        restart.append(f"edges changed: {', '.join(changed)}")
    if running.spec.runtime != new.spec.runtime:
        restart.append("the runtime: section changed")
    swaps: list[NodeSpec] = []
    throttles: dict[str, dict[str, Any]] = {}
    for node_id in sorted(old_nodes.keys() & new_nodes.keys()):
        old, spec = old_nodes[node_id], new_nodes[node_id]
        knobs: dict[str, Any] = {}
        for field in RESTART_FIELDS:
            if getattr(old, field) != getattr(spec, field):
                restart.append(f"node {node_id!r}: {field} changed")
        if (old.plugin, old.config) != (spec.plugin, spec.config):
            if node_id in paced_by_config and _paced_only(old, spec):
                knobs["rate_hz"] = getattr(new.nodes[node_id].config, "rate_hz", None)
            elif old.kind in ("source", "delay"):
                restart.append(_needs_restart(node_id, old.kind))
            else:
                swaps.append(spec)
        if old.concurrency != spec.concurrency:
            knobs["concurrency"] = spec.concurrency
        if knobs:
            throttles[node_id] = knobs
    if restart:
        raise ControlError(
            "these changes need a restart (nothing was applied): " + "; ".join(restart)
        )
    return swaps, throttles


def _paced_only(old: NodeSpec, new: NodeSpec) -> bool:
    """Of a source's plugin and config, only `rate_hz` changed: its pace, a throttle."""

    def others(spec: NodeSpec) -> dict[str, Any]:
        return {k: v for k, v in spec.config.items() if k != "rate_hz"}

    return old.plugin == new.plugin and others(old) == others(new)


def _needs_restart(node_id: str, kind: str) -> str:
    """Why a source or delay node's change refuses the reload."""
    if kind == "source":
        return (
            f"node {node_id!r}: a source's plugin or config changed (of a source, only "
            "rate_hz changes live)"
        )
    return f"node {node_id!r}: a {kind}'s plugin or config changed"
