"""Rules for `on_error` and `dead_letter`: a dead-letter target must be a sink of this graph."""

from __future__ import annotations

from schnitzel.validate.state import CheckState

__all__ = ["check_error_policies"]


def check_error_policies(state: CheckState) -> None:
    """Each node's `dead_letter` names a sink, exactly when `on_error` is dead_letter."""
    for node_id, entry in state.nodes.items():
        spec = entry.spec
        target = spec.dead_letter
        if spec.on_error == "dead_letter" and target is None:
            state.problem(
                "bad-dead-letter",
                "`on_error: dead_letter` needs a `dead_letter` sink to send failed packets to",
                (*entry.at, "on_error"),
                "add `dead_letter: <id of a sink>`, or choose `on_error: skip` or `stop`",
                node=node_id,
            )
            continue
        if target is None:
            continue
        if spec.on_error != "dead_letter":
            state.problem(
                "bad-dead-letter",
                f"`dead_letter: {target}` is set but `on_error` is {spec.on_error}, so it "
                "would never be used",
                (*entry.at, "dead_letter"),
                "set `on_error: dead_letter`, or remove `dead_letter`",
                node=node_id,
            )
        elif spec.kind == "source":
            state.problem(
                "bad-dead-letter",
                "a source has no input packet to send to a dead-letter sink",
                (*entry.at, "dead_letter"),
                "use `on_error: skip` or `stop` on sources",
                node=node_id,
            )
        elif target == node_id:
            state.problem(
                "bad-dead-letter",
                "a node cannot be its own dead-letter sink: a failed packet would come back "
                "to the node that failed it",
                (*entry.at, "dead_letter"),
                "name another sink, for example a jsonl sink that keeps failed packets",
                node=node_id,
            )
        elif state.kind_of(target) is None:
            state.problem(
                "bad-dead-letter",
                f"dead-letter node {target!r} does not exist",
                (*entry.at, "dead_letter"),
                "name a sink node of this graph",
                node=node_id,
            )
        elif state.kind_of(target) != "sink":
            state.problem(
                "bad-dead-letter",
                f"dead-letter node {target!r} is a {state.kind_of(target)}, not a sink",
                (*entry.at, "dead_letter"),
                "failed packets must end somewhere: name a sink (jsonl writes them to a file)",
                node=node_id,
            )
        elif target in state.nodes and state.nodes[target].spec.on_error == "dead_letter":
            state.problem(
                "bad-dead-letter",
                f"dead-letter sink {target!r} sends its own failures on to another "
                "dead-letter sink: failed packets could go round for ever",
                (*entry.at, "dead_letter"),
                f"give {target!r} `on_error: skip` (its failures are counted and kept) or stop",
                node=node_id,
            )
        else:
            state.loose_targets.add(target)  # fed by this node's failures
