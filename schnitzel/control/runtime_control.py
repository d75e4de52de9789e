"""The control API's in-process core: what the console, the control socket, the controller and
a reload use (DESIGN 3.6).

Every method runs on the runtime's event loop thread. Commands that change something answer
with a dict saying what changed (before and after), and write one audit log entry each, also
when they are refused. The control plane's state of a run (the controller, the audit log, the
per-node and reload locks, the swap history) is one `ControlState` per runtime, shared by
every `RuntimeControl` of it, so any number of them agree; the runtime never reads it, but
for one answer the state registers on it: whether a node `can_rollback` (its report says).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from schnitzel.contract.run_report import EventEntry, RunReport
from schnitzel.control.actor import Actor
from schnitzel.control.audit import AUDIT_FILE, AuditLog
from schnitzel.control.secrets import masked
from schnitzel.control.swap import NodeVersion, plan_swap, swap_node
from schnitzel.control.throttles import apply_throttle
from schnitzel.errors import ControlError
from schnitzel.runtime.durable_check import is_durable
from schnitzel.runtime.knobs import knob_limits, plain_value
from schnitzel.runtime.node import Node
from schnitzel.runtime.runtime import Runtime, StopReason
from schnitzel.spec.names import unknown_node

if TYPE_CHECKING:
    from schnitzel.durable.parking import Selection
    from schnitzel.runtime.durable_inbox import DurableInbox

__all__ = ["NOT_GIVEN", "RuntimeControl"]


class _NotGiven:
    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _NotGiven()
"""A throttle argument left as it is."""


class ControlState:
    """The control plane's state of one run, shared by every `RuntimeControl` of it."""

    def __init__(self, runtime: Runtime) -> None:
        self.audit = AuditLog(runtime.state_dir / AUDIT_FILE)
        self.node_locks: dict[str, asyncio.Lock] = {}
        """Per node: held by a swap or rollback (one change of a node at a time)."""
        self.reload_lock = asyncio.Lock()
        self.controller: Any = None
        """The controller (schnitzel.control.controller), while `runtime.controller` is on."""
        self.swap_history: dict[str, list[NodeVersion]] = {}
        """Per node, the versions it ran before each swap (for rollback), oldest first."""
        runtime.can_rollback = self.can_rollback

    def can_rollback(self, node_id: str) -> bool:
        """True when the node was swapped: there is a version to roll back to."""
        return bool(self.swap_history.get(node_id))


_STATES: weakref.WeakKeyDictionary[Runtime, ControlState] = weakref.WeakKeyDictionary()


def _state_of(runtime: Runtime) -> ControlState:
    state = _STATES.get(runtime)
    if state is None:
        state = _STATES[runtime] = ControlState(runtime)
    return state


class RuntimeControl:
    """Read metrics and steer a running graph."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._state = _state_of(runtime)

    def start_controller(self, settings: Any, logger: logging.Logger) -> asyncio.Task[None]:
        """Start the controller (`runtime.controller: suggest | auto`) as a task of the run."""
        from schnitzel.control.controller import Controller

        controller = self._state.controller = Controller(self, settings, logger)
        return asyncio.create_task(controller.run(), name="schnitzel-controller")

    @property
    def runtime(self) -> Runtime:
        return self._runtime

    # -- reading ----------------------------------------------------------------------------

    def snapshot(self) -> RunReport:
        """Metrics and health of every node, in the run-report shape (DESIGN 3.5), live."""
        return self._runtime.snapshot()

    def describe(self) -> dict[str, Any]:
        """The graph being run: nodes (kind, plugin, config with secrets masked, inbox,
        limits, generation) and edges, in file order. A swap changes it (and says so in an
        event)."""
        runtime = self._runtime
        graph = runtime.graph
        nodes = []
        for node_id, resolved in graph.nodes.items():
            spec = resolved.spec
            node = runtime.nodes[node_id]
            nodes.append(
                {
                    "id": node_id,
                    "kind": spec.kind,
                    "plugin": spec.plugin,
                    "config": masked(resolved.config),
                    "inbox": spec.inbox.model_dump(mode="json"),
                    "dead_letter": spec.dead_letter,
                    "limits": {k: list(v) for k, v in knob_limits(node).items()},
                    "declared_limits": spec.limits.model_dump(mode="json"),
                    "generation": node.generation,
                }
            )
        edges = [
            {"from": e.source, "from_port": e.source_port, "to": e.target, "to_port": e.target_port}
            for e in graph.edges
        ]
        path = graph.path
        return {
            "graph": str(path) if path else "<memory>",
            "run_id": runtime.run_id,
            "nodes": nodes,
            "edges": edges,
        }

    def events(self, limit: int = 100, after: int = 0) -> list[EventEntry]:
        """The most recent events (health changes, errors, stops), oldest first; `after`: only
        those with a `seq` above it (what a client has not seen yet)."""
        recent = [e for e in self._runtime.events.recent if e.seq > after][-limit:]
        return [
            {"seq": e.seq, "ts": e.ts, "level": e.level, "node": e.node, "message": e.message}
            for e in recent
        ]

    def note(self, level: str, message: str, node: str | None = None) -> None:
        """Add an event for operators (the controller's suggestions and verdicts)."""
        self._runtime.events.add(level, message, node)

    def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        """The last `limit` audit log entries, oldest first."""
        return self._state.audit.recent(limit)

    def plugins(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The installed plugins a node may be swapped to, with their config's JSON schema."""
        registry = self._runtime.plugin_registry()
        found = []
        for entry in registry.plugins():
            plugin = entry.plugin
            if kind is not None and plugin.node_kind != kind:
                continue
            found.append(
                {
                    "name": plugin.name,
                    "kind": plugin.node_kind,
                    "summary": plugin.summary(),
                    "pack": entry.pack,
                    "config_schema": plugin.Config.model_json_schema(),
                }
            )
        return found

    def suggestions(self) -> list[dict[str, Any]]:
        """The controller's suggestions, oldest first (none while it is off)."""
        controller = self._state.controller
        return controller.suggestions() if controller is not None else []

    def controller(self) -> dict[str, Any]:
        """The controller's mode, how many suggestions wait for an operator, and `why_none`:
        why nothing (more) is suggested now, in sentences (off, no pressure, no declared
        limits, a cooldown, ...)."""
        controller = self._state.controller
        if controller is None:
            why = [
                "the controller is off: set runtime.controller.mode to suggest or auto in "
                "the graph file"
            ]
            return {"mode": "off", "open": 0, "why_none": why}
        return {
            "mode": controller.mode,
            "open": sum(1 for s in controller.suggestions() if s["status"] == "open"),
            "why_none": controller.why_none(),
        }

    async def parked(
        self, node_id: str, after: int = 0, limit: int = 100, seq: int | None = None
    ) -> dict[str, Any]:
        """A durable node's parked packets, oldest first (seq, parked at, reason, an excerpt
        of the payload); with `seq`, that one packet whole."""
        inbox = self._durable(node_id)
        try:
            rows = await inbox.list_parked(after, limit, seq)
        except RuntimeError as exc:
            raise ControlError(f"node {node_id!r}: {exc}; the run is ending") from None
        if seq is not None and not rows:
            raise ControlError(
                f"node {node_id!r} has no parked packet {seq}; `schnitzel ctl parked "
                f"{node_id}` lists the parked ones"
            )
        result: dict[str, Any] = {
            "node": node_id,
            "parked": inbox.parked_count,
            "parked_bytes": inbox.parked_bytes,
            "max_parked": inbox.max_parked,
        }
        if seq is not None:
            result["packet"] = rows[0].to_json()
        else:
            result["packets"] = [row.to_json() for row in rows]
        return result

    async def requeue(
        self, node_id: str, selection: Selection, *, actor: Actor | None = None, why: str = ""
    ) -> dict[str, Any]:
        """Move parked packets back to the end of the node's backlog (tried again)."""
        return await self._change_parked("requeue", node_id, selection, actor, why)

    async def drop_parked(
        self, node_id: str, selection: Selection, *, actor: Actor | None = None, why: str = ""
    ) -> dict[str, Any]:
        """Delete parked packets for good (counted as dropped, reason parked_dropped). The
        reason is required: the audit log keeps why data was thrown away."""
        return await self._change_parked("drop", node_id, selection, actor, why)

    async def _change_parked(
        self, action: str, node_id: str, selection: Selection, actor: Actor | None, why: str
    ) -> dict[str, Any]:
        audit_action = "requeue" if action == "requeue" else "drop-parked"
        attempted = {"seqs": selection.describe()}
        try:
            inbox = self._durable(node_id)
            if action == "drop" and not why.strip():
                raise ControlError(
                    "dropping parked packets deletes them for good: say why (--why TEXT), "
                    "for the audit log"
                )
            before = inbox.parked_count
            try:
                changes = await inbox.change_parked(action, selection)
            except RuntimeError as exc:
                raise ControlError(f"node {node_id!r}: {exc}; the run is ending") from None
            done = changes.requeued if action == "requeue" else changes.dropped
            if not done and selection.everything:
                raise ControlError(f"node {node_id!r} has no parked packets: nothing to {action}")
            if not done:
                raise ControlError(
                    f"node {node_id!r} has no parked packet {selection.describe()} "
                    f"({inbox.parked_count} parked); `schnitzel ctl parked {node_id}` lists them"
                )
        except ControlError as exc:
            self.write_audit(audit_action, node_id, actor, why, None, None, attempted, str(exc))
            raise
        verb = "requeued" if action == "requeue" else "dropped"
        self.note(
            "info" if action == "requeue" else "warning",
            f"{done} parked packets {verb} by {_who(actor)} (seq {selection.describe()})",
            node_id,
        )
        after = {"parked": inbox.parked_count, verb: done, "seqs": selection.describe()}
        self.write_audit(audit_action, node_id, actor, why, None, {"parked": before}, after)
        return {"node": node_id, verb: done, "parked": {"before": before, "after": after["parked"]}}

    # -- changing ---------------------------------------------------------------------------

    def throttle(
        self,
        node_id: str,
        rate_hz: Any = NOT_GIVEN,
        sample_every: Any = NOT_GIVEN,
        concurrency: Any = NOT_GIVEN,
        *,
        actor: Actor | None = None,
        why: str = "",
        suggestion: str | None = None,
        action: str = "throttle",
    ) -> dict[str, Any]:
        """Turn a node's knobs within its limits: a source's `rate_hz` (None: as fast as
        accepted), `sample_every` N (keep 1 of every N packets arriving), `concurrency`
        (calls at once of a blocking or async plugin). `action` names the change in the
        audit log (the controller's `auto_rollback`)."""
        given = {"rate_hz": rate_hz, "sample_every": sample_every, "concurrency": concurrency}
        changes = {k: v for k, v in given.items() if v is not NOT_GIVEN}

        def apply() -> tuple[dict[str, Any], Any, Any]:
            done = apply_throttle(self._node(node_id), changes)
            before = {k: v["before"] for k, v in done.items()}
            after = {k: v["after"] for k, v in done.items()}
            text = ", ".join(
                f"{k} {plain_value(change['before'])} -> {plain_value(change['after'])}"
                for k, change in done.items()
            )
            self.note("info", f"throttled by {_who(actor)}: {text}", node_id)
            return {"node": node_id, "changes": done}, before, after

        return self._audited(action, node_id, apply, actor, why, suggestion, attempted=changes)

    def pause(self, node_id: str, *, actor: Actor | None = None, why: str = "") -> dict[str, Any]:
        """Stop taking packets (a source stops producing; a node's inbox fills up)."""

        def apply() -> tuple[dict[str, Any], Any, Any]:
            node = self._node(node_id)
            was = node.paused
            node.running.clear()
            if not was:
                self.note("info", f"paused by {_who(actor)}", node_id)
            return {"node": node_id, "paused": {"before": was, "after": True}}, was, True

        return self._audited("pause", node_id, apply, actor, why)

    def resume(self, node_id: str, *, actor: Actor | None = None, why: str = "") -> dict[str, Any]:
        """Take packets again after `pause`."""

        def apply() -> tuple[dict[str, Any], Any, Any]:
            node = self._node(node_id)
            was = node.paused
            node.running.set()
            if was:
                self.note("info", f"resumed by {_who(actor)}", node_id)
            return {"node": node_id, "paused": {"before": was, "after": False}}, was, False

        return self._audited("resume", node_id, apply, actor, why)

    async def swap(
        self,
        node_id: str,
        plugin: str | None,
        config: dict[str, Any] | None = None,
        *,
        actor: Actor | None = None,
        why: str = "",
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Replace a node's plugin and/or config while the graph runs (see
        `schnitzel.control.swap`). `plugin=None`: keep the node's plugin, change its config.
        `config=None`: the current config when the plugin stays, else the plugin's defaults.
        `dry_run`: validate and show the diff, change nothing."""
        history = self._state.swap_history
        try:
            if dry_run:
                return self.plan(node_id, plugin, config)
            async with self._changing(node_id):  # planned against the version it replaces
                plan = plan_swap(self._runtime, node_id, plugin, config)
                handed_over = await swap_node(self._runtime, plan)
        except ControlError as exc:
            if not dry_run:
                self.write_audit(
                    "swap",
                    node_id,
                    actor,
                    why,
                    None,
                    None,
                    {"plugin": plugin or "(unchanged)"},
                    str(exc),
                )
            raise
        history.setdefault(node_id, []).append(plan.before)
        result = _swap_result(plan, handed_over, applied=True)
        self._after_swap("swapped", plan, handed_over, actor)
        self.write_audit("swap", node_id, actor, why, None, plan.before.shown(), plan.after.shown())
        return result

    def plan(
        self, node_id: str, plugin: str | None, config: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Check a swap without doing it (raises ControlError saying why it would fail)."""
        return _swap_result(plan_swap(self._runtime, node_id, plugin, config), False, False)

    async def reload(self, *, actor: Actor | None = None, why: str = "") -> dict[str, Any]:
        """Apply the changes of the graph file (see `schnitzel.control.reload`)."""
        from schnitzel.control.reload import reload_graph

        actor = actor or Actor.local("api")
        lock = self._state.reload_lock
        if lock.locked():
            error = "a reload is already running; try again when it has finished"
            self.write_audit("reload", None, actor, why, None, None, None, error)
            raise ControlError(error)
        async with lock:
            return await reload_graph(self, actor, why)

    async def rollback(
        self, node_id: str, *, actor: Actor | None = None, why: str = ""
    ) -> dict[str, Any]:
        """Back to the version the node ran before its last swap."""
        try:
            self._node(node_id)
            async with self._changing(node_id):
                history = self._state.swap_history.get(node_id)
                if not history:
                    raise ControlError(
                        f"node {node_id!r} has no swap to undo (never swapped, or every swap "
                        "rolled back already): nothing to roll back to"
                    )
                previous: NodeVersion = history[-1]
                plan = plan_swap(self._runtime, node_id, previous.plugin, previous.config)
                handed_over = await swap_node(self._runtime, plan)
                history.pop()
        except ControlError as exc:
            self.write_audit("rollback", node_id, actor, why, None, None, None, str(exc))
            raise
        result = _swap_result(plan, handed_over, applied=True)
        self._after_swap("rolled back", plan, handed_over, actor)
        self.write_audit(
            "rollback", node_id, actor, why, None, plan.before.shown(), plan.after.shown()
        )
        return result

    async def approve(
        self, suggestion_id: str, *, actor: Actor | None = None, why: str = ""
    ) -> dict[str, Any]:
        """Apply a suggestion of the controller (audited as the approval and as the change)."""
        actor = actor or Actor.local("api")
        try:
            suggestion = await self._controller().approve(suggestion_id, actor, why)
        except ControlError as exc:
            self.write_audit("approve", None, actor, why, suggestion_id, None, None, str(exc))
            raise
        self.write_audit(
            "approve",
            suggestion.get("node"),
            actor,
            why,
            suggestion_id,
            suggestion.get("before"),
            (suggestion.get("action") or {}).get("args"),
        )
        return suggestion

    def reject(
        self, suggestion_id: str, *, actor: Actor | None = None, why: str = ""
    ) -> dict[str, Any]:
        """Turn a suggestion down; the controller does not offer the same change for 10
        minutes."""
        actor = actor or Actor.local("api")
        try:
            suggestion = self._controller().reject(suggestion_id, actor, why)
        except ControlError as exc:
            self.write_audit("reject", None, actor, why, suggestion_id, None, None, str(exc))
            raise
        self.write_audit("reject", suggestion.get("node"), actor, why, suggestion_id, None, None)
        return suggestion

    def stop(
        self, force: bool = False, why: str = "", *, actor: Actor | None = None
    ) -> dict[str, Any]:
        """Stop the sources and drain, as SIGTERM does; `force`: stop now, as a second signal
        does (queued in-memory packets are dropped, durable inboxes keep theirs)."""
        runtime = self._runtime
        how = f"by {actor}" if actor is not None else "through the control API"
        if why:
            how = f"{how} ({why})"
        if force:
            runtime.force_stop(f"a stop {how}")
        else:
            runtime.request_stop(StopReason.SIGNAL, f"stop requested {how}")
        if actor is not None:
            self.write_audit("stop", None, actor, why, None, None, {"force": force})
        return {"stopping": True, "forced": force}

    # -- helpers ----------------------------------------------------------------------------

    def _node(self, node_id: str) -> Node:
        node = self._runtime.nodes.get(node_id)
        if node is None:
            raise ControlError(unknown_node(node_id, self._runtime.nodes))
        return node

    def _durable(self, node_id: str) -> DurableInbox:
        inbox = self._node(node_id).inbox
        if not is_durable(inbox):
            raise ControlError(
                f"node {node_id!r} has no durable inbox, so nothing is parked there; parking "
                "needs `inbox: {durable: {path: ...}}`"
            )
        return inbox

    @contextlib.asynccontextmanager
    async def _changing(self, node_id: str) -> AsyncIterator[None]:
        """One swap or rollback of a node at a time: the next waits, then plans against the
        version the first one left."""
        lock = self._state.node_locks.setdefault(node_id, asyncio.Lock())
        async with lock:
            yield

    def _controller(self) -> Any:
        controller = self._state.controller
        if controller is None:
            raise ControlError(
                "the controller is off in this graph; set `runtime: {controller: suggest}`"
            )
        return controller

    def _after_swap(self, verb: str, plan: Any, handed_over: bool, actor: Actor | None) -> None:
        state = "; state handed over" if handed_over else ""
        before, after = plan.before.plugin, plan.after.plugin
        change = f"config of {after} changed" if before == after else f"{before} -> {after}"
        self.note(
            "info",
            f"{verb} by {_who(actor)}: {change} (version {plan.node.generation}){state}",
            plan.node.id,
        )

    def _audited(
        self,
        action: str,
        node_id: str,
        apply: Callable[[], tuple[dict[str, Any], Any, Any]],
        actor: Actor | None,
        why: str,
        suggestion: str | None = None,
        attempted: Any = None,
    ) -> dict[str, Any]:
        try:
            result, before, after = apply()
        except ControlError as exc:
            self.write_audit(action, node_id, actor, why, suggestion, None, attempted, str(exc))
            raise
        self.write_audit(action, node_id, actor, why, suggestion, before, after)
        return result

    def write_audit(
        self,
        action: str,
        node_id: str | None,
        actor: Actor | None,
        why: str,
        suggestion: str | None,
        before: Any,
        after: Any,
        error: str | None = None,
    ) -> None:
        try:
            self._state.audit.write(
                actor or Actor.local("api"), action, node_id, before, after, why, suggestion, error
            )
        except OSError as exc:
            self.note("error", f"the audit log could not be written ({exc}); the change stands")


def _who(actor: Actor | None) -> str:
    return str(actor) if actor is not None else f"the control API (pid {os.getpid()})"


def _swap_result(plan: Any, handed_over: bool, applied: bool) -> dict[str, Any]:
    return {
        "node": plan.node.id,
        "before": plan.before.shown(),
        "after": plan.after.shown(),
        "diff": plan.diff(),
        "state_handed_over": handed_over,
        "generation": plan.node.generation,
        "applied": applied,
    }
