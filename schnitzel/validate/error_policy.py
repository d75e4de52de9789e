"""Rules for `on_error` and `dead_letter`: a dead-letter target must be a sink of this graph,
a source may have one only when its plugin reports bad input records (`BadRecord`), and
`park` needs a durable inbox."""

from __future__ import annotations

from schnitzel.spec.model import NodeSpec
from schnitzel.validate.state import CheckState

__all__ = ["check_error_policies"]


def check_error_policies(state: CheckState) -> None:
    """Each node's `dead_letter` names a sink, exactly when `on_error` is dead_letter."""
    for node_id, entry in state.nodes.items():
        spec = entry.spec
        if spec.on_error == "park" and (spec.kind == "source" or spec.inbox.durable is None):
            where = "a source has no inbox" if spec.kind == "source" else "its inbox is not durable"
            state.problem(
                "park-needs-durable",
                f"`on_error: park` keeps failed packets in the node's durable store, but {where}",
                (*entry.at, "on_error"),
                "give the node `inbox: {durable: {path: ...}}`, or choose `on_error: skip`, "
                "`dead_letter` or `stop`",
                node=node_id,
            )
        if spec.dead_letter is None:
            if spec.on_error == "dead_letter":
                state.problem(
                    "bad-dead-letter",
                    "`on_error: dead_letter` needs a `dead_letter` sink to send failed packets to",
                    (*entry.at, "on_error"),
                    "add `dead_letter: <id of a sink>`, or choose `on_error: skip` or `stop`",
                    node=node_id,
                )
            continue
        refused = _why_refused(state, node_id, spec)
        if refused is None:
            state.loose_targets.add(spec.dead_letter)  # fed by this node's failures
        else:
            message, hint = refused
            state.problem(
                "bad-dead-letter", message, (*entry.at, "dead_letter"), hint, node=node_id
            )


def _why_refused(state: CheckState, node_id: str, spec: NodeSpec) -> tuple[str, str] | None:
    """(message, hint) when `spec.dead_letter` cannot work; None when it can."""
    target = spec.dead_letter
    kind = state.kind_of(target) if target is not None else None
    if spec.on_error != "dead_letter":
        return (
            f"`dead_letter: {target}` is set but `on_error` is {spec.on_error}, so it would "
            "never be used",
            "set `on_error: dead_letter`, or remove `dead_letter`",
        )
    if spec.kind == "source":
        plugin = state.nodes[node_id].plugin
        if plugin is None or not getattr(plugin, "reports_bad_records", False):
            name = f"source plugin {plugin.name!r}" if plugin is not None else "this source"
            return (
                f"{name} does not report bad input records, so nothing would reach the "
                "dead-letter sink",
                "use `on_error: skip` or `stop`; sources that report bad records (jsonl) "
                "can send them to a dead-letter sink",
            )
    if target == node_id:
        return (
            "a node cannot be its own dead-letter sink: a failed packet would come back to the "
            "node that failed it",
            "name another sink, for example a jsonl sink that keeps failed packets",
        )
    if kind is None:
        return f"dead-letter node {target!r} does not exist", "name a sink node of this graph"
    if kind != "sink":
        return (
            f"dead-letter node {target!r} is a {kind}, not a sink",
            "failed packets must end somewhere: name a sink (jsonl writes them to a file)",
        )
    if target in state.nodes and state.nodes[target].spec.on_error == "dead_letter":
        return (
            f"dead-letter sink {target!r} sends its own failures on to another dead-letter "
            "sink: failed packets could go round for ever",
            f"give {target!r} `on_error: skip` (its failures are counted and kept) or stop",
        )
    return None
