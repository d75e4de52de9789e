"""The quarantine commands of the control API: a running graph's durable stores' quarantine
entries listed, and requeued by their inbox's commit loop (runtime/durable_quarantine.py), as
`schnitzel quarantine list|requeue` do on a stopped store (the same planning code, the same
words: schnitzel/durable/quarantine.py).

    await quarantine_listing(control, "out")        # {"nodes": {"out": {"store", "entries"}}}
    await requeue_quarantined(control, "out", [3], actor=actor, why="row restored")

A requeue is audited (`requeue-quarantined`), applied or refused, like every change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from schnitzel.durable.store import StoreError
from schnitzel.errors import ControlError
from schnitzel.runtime.durable_check import is_durable
from schnitzel.spec.names import unknown_node

if TYPE_CHECKING:
    from schnitzel.control.actor import Actor
    from schnitzel.control.runtime_control import RuntimeControl
    from schnitzel.runtime.durable_inbox import DurableInbox

__all__ = ["quarantine_listing", "requeue_quarantined"]

AUDIT_ACTION = "requeue-quarantined"


async def quarantine_listing(control: RuntimeControl, node_id: str | None) -> dict[str, Any]:
    """The quarantine entries of `node_id`'s durable store, or of every durable node's (None),
    each as `schnitzel quarantine list --json` shows it."""
    if node_id is not None:
        inboxes = {node_id: _durable(control, node_id)}
    else:
        nodes = control.runtime.nodes
        inboxes = {i: n.inbox for i, n in nodes.items() if is_durable(n.inbox)}
    listed: dict[str, Any] = {}
    for name, inbox in inboxes.items():
        try:
            entries = await inbox.list_quarantine()
        except RuntimeError as exc:
            raise ControlError(f"node {name!r}: {exc}") from None
        listed[name] = {"store": str(inbox.path), "entries": [e.to_json() for e in entries]}
    return {"nodes": listed}


async def requeue_quarantined(
    control: RuntimeControl,
    node_id: str,
    entries: Sequence[int] | None,
    *,
    actor: Actor | None = None,
    why: str = "",
) -> dict[str, Any]:
    """Put the packets of quarantine entries `entries` (None: every one that matches its
    checksum) of the node's durable store back at the end of its backlog, by one commit of
    its inbox."""
    wanted = "all" if entries is None else ",".join(str(i) for i in entries)
    try:
        inbox = _durable(control, node_id)
        try:
            done = await inbox.requeue_quarantined(entries)
        except (RuntimeError, StoreError) as exc:  # closed, or a refusal naming the entry
            raise ControlError(f"node {node_id!r}: {exc}") from None
    except ControlError as exc:
        control.write_audit(AUDIT_ACTION, node_id, actor, why, None, None, {"entries": wanted},
                            str(exc))  # fmt: skip
        raise
    skipped = [{"id": entry, "why": words} for entry, words in done.skipped]
    ids = ",".join(str(i) for i in done.entries)
    who = str(actor) if actor is not None else "the control API"
    control.note(
        "info", f"{done.packets} quarantined packets requeued by {who} (entries {ids})", node_id
    )
    after = {"requeued": done.packets, "entries": list(done.entries)}
    if skipped:
        after["skipped"] = [entry["id"] for entry in skipped]
    control.write_audit(AUDIT_ACTION, node_id, actor, why, None, {"entries": wanted}, after)
    return {
        "node": node_id,
        "store": str(inbox.path),
        "requeued": done.packets,
        "entries": list(done.entries),
        "skipped": skipped,
    }


def _durable(control: RuntimeControl, node_id: str) -> DurableInbox:
    node = control.runtime.nodes.get(node_id)
    if node is None:
        raise ControlError(unknown_node(node_id, control.runtime.nodes))
    if not is_durable(node.inbox):
        raise ControlError(
            f"node {node_id!r} has no durable inbox, so it has no quarantine table (a durable "
            "store's); `schnitzel ctl quarantine list` lists those of the durable nodes"
        )
    return node.inbox
