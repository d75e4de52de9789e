"""What flows on each edge: packet kinds and payload profiles, inferred before running.

Shapes propagate from sources along edges until nothing changes (feedback cycles included);
kinds only grow and profiles only weaken, so this terminates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from schnitzel.contract.kinds import weakest_profile
from schnitzel.registry.plugin import ANY_KIND, Plugin, StreamShape

__all__ = ["FlowNode", "infer_outputs", "merge_shapes"]


class FlowNode(Protocol):
    """The part of a resolved node that shape inference needs."""

    @property
    def plugin(self) -> type[Plugin]: ...

    @property
    def config(self) -> Any: ...


def merge_shapes(shapes: Sequence[StreamShape]) -> StreamShape:
    """The shape of several streams merged into one inbox."""
    kinds: frozenset[str] | None = frozenset()
    for shape in shapes:
        # ANY_KIND is None: spelled out so the type checker sees both sets are sets
        kinds = ANY_KIND if kinds is None or shape.kinds is None else kinds | shape.kinds
    return StreamShape(kinds, weakest_profile([s.profile for s in shapes]))


def infer_outputs(
    nodes: Mapping[str, FlowNode], predecessors: Mapping[str, Sequence[str]]
) -> tuple[dict[str, StreamShape], dict[str, Exception]]:
    """The output shape of every node that emits something, and the nodes whose plugin
    raised while computing it.

    A node whose inputs are not known yet (inside a cycle, before the loop closes) is
    computed from the inputs that are known, then recomputed as more arrive.
    """
    outputs: dict[str, StreamShape] = {}
    failures: dict[str, Exception] = {}
    successors: dict[str, list[str]] = {node_id: [] for node_id in nodes}
    for target, sources in predecessors.items():
        if target not in nodes:
            continue
        for source in sources:
            if source in successors:
                successors[source].append(target)
    pending = list(nodes)
    rounds = 0
    limit = 4 * (len(nodes) + 1) ** 2  # far above what monotone growth can need
    while pending and rounds < limit:
        rounds += 1
        node_id = pending.pop()
        node = nodes[node_id]
        if not node.plugin.outputs or node_id in failures:
            continue
        known = [outputs[s] for s in predecessors.get(node_id, ()) if s in outputs]
        if node.plugin.inputs and not known and node.plugin.node_kind != "delay":
            continue
        incoming = merge_shapes(known) if known else None
        try:
            shape = node.plugin.output_shape(node.config, incoming)
            if not isinstance(shape, StreamShape):
                raise TypeError(f"output_shape returned {type(shape).__name__}, not StreamShape")
        except Exception as exc:  # a plugin's bug is reported as a problem of its node
            failures[node_id] = exc
            continue
        if outputs.get(node_id) != shape:
            outputs[node_id] = shape
            pending.extend(successors[node_id])
    return outputs, failures
