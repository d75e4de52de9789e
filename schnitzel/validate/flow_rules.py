"""Rules for what flows: packet kinds each node accepts, and portable payloads into durable
inboxes and network sinks."""

from __future__ import annotations

from schnitzel.contract.kinds import PayloadProfile
from schnitzel.registry.plugin import Plugin, SameAsInput, StreamShape
from schnitzel.validate.flow import infer_outputs, merge_shapes
from schnitzel.validate.state import CheckState, NodeEntry

__all__ = ["check_flow"]


def check_flow(state: CheckState) -> dict[str, StreamShape]:
    """Infer what each node emits and check it against what the next node takes."""
    resolved = {n: e for n, e in state.nodes.items() if e.plugin is not None}
    predecessors = state.predecessors()
    shapes, failures = infer_outputs(resolved, predecessors)  # type: ignore[arg-type]
    for node_id, exc in failures.items():
        entry = state.nodes[node_id]
        assert entry.plugin is not None
        state.plugin_failed(entry, entry.plugin.name, "computing its output shape", exc)
    _check_kinds(state, shapes)
    _check_portability(state, shapes, predecessors)
    return shapes


def _check_kinds(state: CheckState, shapes: dict[str, StreamShape]) -> None:
    for index, edge in state.edges:
        upstream = shapes.get(edge.source)
        target = state.nodes[edge.target].plugin
        if upstream is None or target is None:
            continue
        accepts = target.accepts
        if upstream.kinds is None or accepts is None:
            continue  # "any kind": only the running graph can tell
        refused = sorted(upstream.kinds - accepts)
        if refused:
            state.problem(
                "kind-mismatch",
                f"{edge.source!r} emits {', '.join(refused)} packets, which {edge.target!r} "
                f"({target.name}) does not accept (it accepts {', '.join(sorted(accepts))})",
                ("edges", index),
                "put a transform between them that converts the packets, or route those "
                "kinds elsewhere",
                edge=f"{edge.source} -> {edge.target}",
            )


def _check_portability(
    state: CheckState, shapes: dict[str, StreamShape], predecessors: dict[str, list[str]]
) -> None:
    for node_id, entry in state.nodes.items():
        inputs = [shapes[s] for s in predecessors.get(node_id, ()) if s in shapes]
        if entry.plugin is None or not inputs:
            continue
        durable = entry.spec.inbox.durable is not None
        if not (durable or entry.plugin.requires_portable):
            continue
        if merge_shapes(inputs).profile.portable:
            continue
        lane = "a durable inbox" if durable else f"the {entry.plugin.name} sink"
        offenders = [
            s for s in predecessors[node_id] if s in shapes and not shapes[s].profile.portable
        ]
        frames = any("frame" in (shapes[o].kinds or ()) for o in offenders)
        undeclared = _undeclared_sources(state, shapes, offenders, predecessors)
        state.problem(
            "not-portable",
            f"packets from {', '.join(repr(o) for o in offenders)} can only live inside this "
            f"process (profile inproc_any), but they would reach {lane}",
            entry.at,
            _FRAMES_HINT if frames else _undeclared_hint(undeclared) or _HINT,
            node=node_id,
        )


def _undeclared_sources(
    state: CheckState,
    shapes: dict[str, StreamShape],
    offenders: list[str],
    predecessors: dict[str, list[str]],
) -> list[tuple[str, str]]:
    """The sources (id, plugin name) whose inproc_any packets reach `offenders`, and which are
    inproc_any only because their plugin declares no payload profile: a plugin author's first
    source, which usually makes JSON."""
    seen: set[str] = set()
    stack = list(offenders)
    while stack:
        node_id = stack.pop()
        shape = shapes.get(node_id)
        if node_id in seen or shape is None or shape.profile.portable:
            continue
        seen.add(node_id)
        inputs = [shapes[s] for s in predecessors.get(node_id, ()) if s in shapes]
        if _inproc_by_its_input(state.nodes[node_id], inputs):
            stack.extend(predecessors.get(node_id, ()))
    found = []
    for node_id in sorted(seen):
        plugin = state.nodes[node_id].plugin
        if plugin is not None and plugin.node_kind == "source" and _declares_nothing(plugin):
            found.append((node_id, plugin.name))
    return found


def _inproc_by_its_input(entry: NodeEntry, inputs: list[StreamShape]) -> bool:
    """Whether the node would emit portable packets were its input portable: only then are
    its inputs' sources the ones to blame (not a transform making inproc_any packets itself)."""
    if entry.plugin is None or not inputs:
        return False
    portable = StreamShape(merge_shapes(inputs).kinds, PayloadProfile.JSON_PORTABLE)
    try:
        return entry.plugin.output_shape(entry.config, portable).profile.portable
    except Exception:  # a plugin's bug there is reported as its node's problem already
        return False


def _declares_nothing(plugin: type[Plugin]) -> bool:
    overrides_shape = any("output_shape" in vars(k) for k in plugin.__mro__[:-1] if k is not Plugin)
    return isinstance(plugin.emits_profile, SameAsInput) and not overrides_shape


def _undeclared_hint(sources: list[tuple[str, str]]) -> str:
    if not sources:
        return ""
    named = ", ".join(f"{node_id!r} (plugin {plugin})" for node_id, plugin in sources)
    plural = len(sources) > 1
    source, declares, its = (
        ("sources", "declare", "their") if plural else ("source", "declares", "its")
    )
    return (
        f"{source} {named} {declares} no payload profile, so {its} packets count as inproc_any: "
        f"if {its} payloads are plain JSON, set `emits_profile = PayloadProfile.JSON_PORTABLE` "
        "(and `emits`) on the plugin class (docs/plugins.md#what-flows-on-an-edge)"
    )


_HINT = (
    "convert them first (encode frames, or store the bytes and send a payload_ref) so the "
    "payload is json_portable or ref_portable"
)
_FRAMES_HINT = (
    "raw frames (numpy images) never leave the process: put a node between that emits JSON, "
    "such as `detect` (its detections are written without pixels), or store the images with "
    "`blob_store` (JPEG files with retention; packets carry a payload_ref) (docs/vision.md)"
)
