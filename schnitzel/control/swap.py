"""Hot swap: replace a running node's plugin and/or config between two of its batches.

The order is what keeps it safe:

1. the whole graph is validated again with the new node (plugin, config, packet kinds along
   its edges); refused with every problem otherwise;
2. the new plugin is made and opened while the old one keeps running;
3. the swap waits for the batch the old plugin holds (its `turn`), hands its state over when
   both versions can, and installs the new plugin: the next batch goes to it;
4. the old plugin is closed.

The inbox is never touched, so nothing queued is lost or reordered. A failure before step 3
leaves the old node running as it was.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import TYPE_CHECKING, Any

import yaml

from schnitzel.control.secrets import MASK, masked
from schnitzel.errors import ControlError, RuntimeStartError
from schnitzel.registry.plugin import Plugin
from schnitzel.runtime.node import Node
from schnitzel.spec.names import unknown_node
from schnitzel.validate.graph import ResolvedNode, ValidatedGraph
from schnitzel.validate.validator import validate_text

if TYPE_CHECKING:
    from schnitzel.runtime.runtime import Runtime

__all__ = ["NodeVersion", "SwapPlan", "plan_swap", "swap_node"]

OPEN_TIMEOUT_S = 30.0
"""How long the new plugin's open() may take before the swap is refused."""
CLOSE_TIMEOUT_S = 5.0
MAX_CONFIG_BYTES = 64 * 1024
"""The largest config a swap takes (as JSON): validation runs on the event loop."""
TURN_TIMEOUT_S = 30.0
INTERRUPT_AFTER_S = 3.0
"""How long a swap lets a durable node's plugin finish its batch before it interrupts it."""
"""How long the swap waits for the old plugin to finish the batch it holds."""
SWAPPABLE_KINDS = ("transform", "compute", "policy", "sink")


@dataclasses.dataclass(frozen=True)
class NodeVersion:
    """A node's plugin and config as written in the graph file (secrets not masked)."""

    plugin: str
    config: dict[str, Any]

    def shown(self) -> dict[str, Any]:
        """For replies and the audit log: secrets masked."""
        return {"plugin": self.plugin, "config": masked(self.config)}


@dataclasses.dataclass
class SwapPlan:
    """A validated swap, not applied yet."""

    node: Node
    before: NodeVersion
    after: NodeVersion
    graph: ValidatedGraph
    """The whole graph as it will be once swapped."""

    @property
    def resolved(self) -> ResolvedNode:
        return self.graph.nodes[self.node.id]

    def diff(self) -> str:
        """A unified diff of the node as YAML, before and after (secrets masked)."""
        import difflib  # here, not at the top: a run that is never asked for a diff skips it

        old = yaml.safe_dump(self.before.shown(), sort_keys=False).splitlines(keepends=True)
        new = yaml.safe_dump(self.after.shown(), sort_keys=False).splitlines(keepends=True)
        name = self.node.id
        return "".join(difflib.unified_diff(old, new, f"{name} (now)", f"{name} (new)"))


def plan_swap(
    runtime: Runtime, node_id: str, plugin: str | None, config: dict[str, Any] | None
) -> SwapPlan:
    """Check a swap without doing it: the node may be swapped, and the graph with the new
    node passes validation. `plugin=None` keeps the node's plugin and changes only its
    config. Raises ControlError saying why not."""
    node = runtime.nodes.get(node_id)
    if node is None:
        raise ControlError(unknown_node(node_id, runtime.nodes))
    if node.kind not in SWAPPABLE_KINDS:
        raise ControlError(
            f"node {node_id!r} is a {node.kind}; only {', '.join(SWAPPABLE_KINDS)} nodes can "
            "be swapped while the graph runs (a source or delay change needs a restart)"
        )
    if runtime.stopping or runtime.finished or node.abandoned:
        raise ControlError("the run is stopping; nothing can be swapped any more")
    spec = node.resolved.spec
    if plugin is None and config is not None:
        plugin = spec.plugin  # a config change: the node keeps its plugin
    if not isinstance(plugin, str) or not plugin:
        raise ControlError(
            "name the plugin to swap to, or give a config to change only the config "
            "(`schnitzel plugins` lists the plugins)"
        )
    before = NodeVersion(spec.plugin, dict(spec.config))
    if config is None:
        config = dict(spec.config) if plugin == spec.plugin else {}
    elif not isinstance(config, dict):
        raise ControlError(f"a config is a mapping of settings, not {type(config).__name__}")
    size = len(json.dumps(config, default=str))
    if size > MAX_CONFIG_BYTES:  # validating it holds the loop: keep that short
        raise ControlError(
            f"swap refused: the config is {size} bytes as JSON; at most {MAX_CONFIG_BYTES} "
            "(put large data in a file the plugin reads)"
        )
    config = _unmasked(config, spec.config)
    if _holds_mask(config):
        raise ControlError(
            "swap refused: the config still holds a masked secret (***) that is not the one "
            "shown for this node; give the real value, or leave the masked value as shown"
        )
    after = NodeVersion(plugin, config)
    graph = _validated_with(runtime, node_id, after)
    _check_calls_at_once(node, graph.nodes[node_id].plugin)
    return SwapPlan(node, before, after, graph)


def _check_calls_at_once(node: Node, cls: type[Plugin]) -> None:
    """The new plugin takes the calls at once the node runs now: its concurrency may be a
    live throttle above the file's value, which the validation above saw."""
    cap = cls.max_calls_at_once
    if cap is not None and node.concurrency > cap:
        raise ControlError(
            f"swap refused: node {node.id!r} runs {node.concurrency} calls at once now, and "
            f"plugin {cls.name!r} takes at most {cap} call(s) at once (its max_calls_at_once); "
            f"throttle the node first: `schnitzel ctl throttle {node.id} --concurrency {cap}`"
        )


async def swap_node(runtime: Runtime, plan: SwapPlan) -> bool:
    """Apply a planned swap; True when the old plugin's state was handed over. Raises
    ControlError (and leaves the old node as it was) when the new plugin cannot start."""
    node = plan.node
    resolved = plan.resolved
    try:
        new = runtime.instantiate(resolved.plugin, resolved.config, node.id)
    except RuntimeStartError as exc:
        raise ControlError(f"swap refused: {exc}") from exc
    try:
        await asyncio.wait_for(new.open(), OPEN_TIMEOUT_S)
    except Exception as exc:
        await _close(runtime, node, new)
        why = "it did not open within 30 s" if isinstance(exc, TimeoutError) else str(exc)
        raise ControlError(
            f"swap refused: the new {resolved.spec.plugin!r} could not open: {why}"
        ) from exc
    try:
        await _take_turn(runtime, node)
    except TimeoutError:
        await _close(runtime, node, new)
        raise ControlError(
            f"swap refused: node {node.id!r} did not finish its batch within "
            f"{TURN_TIMEOUT_S:g} s (a plugin call is stuck); nothing changed"
        ) from None
    try:
        if runtime.stopping or node.abandoned:
            raise ControlError("the run is stopping; the swap was not applied")
        old = node.plugin
        handed_over = _hand_over(old, new, node.id)
        old_pool = node.install(resolved, new)
        runtime.connect_outputs(node, plan.graph)
    except Exception as exc:
        node.turn.release()
        await _close(runtime, node, new)
        if isinstance(exc, ControlError):
            raise
        raise ControlError(f"swap refused: {exc}") from exc
    node.generation += 1
    runtime.graph = _with_node(runtime.graph, plan.graph, resolved)
    runtime.tickers.update(node)  # a plugin that ticks gets a ticker (runtime/held.py)
    node.turn.release()
    await _close(runtime, node, old)
    if old_pool is not None:
        old_pool.shutdown(wait=False)
    return handed_over


async def _take_turn(runtime: Runtime, node: Node) -> None:
    """Wait for the batch the old plugin holds. A durable node's call that goes on for
    INTERRUPT_AFTER_S (a sink retrying a backend that is down) is interrupted instead: its
    batch goes back to the front of the inbox, for the new plugin."""
    try:
        await asyncio.wait_for(node.turn.acquire(), INTERRUPT_AFTER_S)
        return
    except TimeoutError:
        if not runtime.workers[node.id].interrupt():
            await asyncio.wait_for(node.turn.acquire(), TURN_TIMEOUT_S - INTERRUPT_AFTER_S)
            return
    runtime.events.add(
        "info",
        f"swap: the old plugin was still on its batch after {INTERRUPT_AFTER_S:g} s; the "
        "batch goes back to the front of the durable inbox, for the new plugin",
        node.id,
    )
    await asyncio.wait_for(node.turn.acquire(), TURN_TIMEOUT_S - INTERRUPT_AFTER_S)


def _hand_over(old: Plugin, new: Plugin, node_id: str) -> bool:
    exports, _ = type(old).hands_over_state()
    _, imports = type(new).hands_over_state()
    if not (exports and imports):
        return False
    try:
        state = old.export_state()
    except Exception as exc:
        raise ControlError(f"the old plugin could not hand over its state: {exc}") from exc
    try:
        new.import_state(state)
    except Exception as exc:
        raise ControlError(f"the new plugin refused the old one's state: {exc}") from exc
    return True


async def _close(runtime: Runtime, node: Node, plugin: Plugin) -> None:
    try:
        await asyncio.wait_for(plugin.close(), CLOSE_TIMEOUT_S)
    except Exception as exc:
        runtime.events.add("warning", f"closing the replaced plugin failed: {exc}", node.id)


def _unmasked(config: Any, current: Any) -> Any:
    """`config` with each part that is exactly the masked form of the current value put back
    to the current value: a config shown masked (secrets under secret-looking keys,
    passwords in URLs) can be edited and sent back."""
    if current is not None and masked(current) == config:
        return current
    if isinstance(config, dict) and isinstance(current, dict):
        return {key: _unmasked(value, current.get(key)) for key, value in config.items()}
    return config


def _holds_mask(value: Any) -> bool:
    """True when a masked secret is left in `value` (it would be sent as `***`)."""
    if isinstance(value, dict):
        return any(_holds_mask(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_mask(v) for v in value)
    return isinstance(value, str) and (value == MASK or f":{MASK}@" in value)


def _validated_with(runtime: Runtime, node_id: str, version: NodeVersion) -> ValidatedGraph:
    """The running graph with one node changed, through the full validator."""
    document = runtime.graph.spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    document["version"] = runtime.graph.spec.version
    for node in document["nodes"]:
        if node["id"] == node_id:
            node["plugin"], node["config"] = version.plugin, version.config
    try:
        text = yaml.safe_dump(document, sort_keys=False)
    except yaml.YAMLError as exc:
        raise ControlError(f"swap refused: the config cannot be written as YAML: {exc}") from exc
    registry = runtime.plugin_registry()
    result = validate_text(
        text, source=f"swap of {node_id}", registry=registry, path=runtime.graph.path
    )
    if result.graph is None:
        problems = [p for p in result.report.problems if p.severity == "error"]
        lines = []
        for p in problems:
            other = p.where.node and p.where.node != node_id
            lines.append(
                (f"node {p.where.node!r}: " if other else "")
                + _for_a_swap(p.message, node_id)
                + (f" ({p.hint})" if p.hint else "")
            )
        raise ControlError(
            f"swap refused: node {node_id!r} with plugin {version.plugin!r} would not pass "
            "validation: " + "; ".join(lines)
        )
    return result.graph


def _for_a_swap(message: str, node_id: str) -> str:
    """The validator's words, less the advice a swap cannot follow (a swap keeps the node's
    kind: the plugin must be of that kind)."""
    kept, _, advice = message.partition("; set the node's kind to ")
    if not advice:
        return message
    wanted = advice.rsplit(" or pick a ", 1)[-1]
    return f"{kept}; node {node_id!r} keeps its kind: pick a {wanted}"


def _with_node(
    current: ValidatedGraph, swapped: ValidatedGraph, node: ResolvedNode
) -> ValidatedGraph:
    """The running graph with one node replaced (edges as the swapped graph resolves its
    ports); every other node keeps the objects it runs with."""
    nodes = {**current.nodes, node.id: node}
    spec = current.spec.model_copy(
        update={"nodes": [node.spec if n.id == node.id else n for n in current.spec.nodes]}
    )
    return dataclasses.replace(current, spec=spec, nodes=nodes, edges=swapped.edges)
