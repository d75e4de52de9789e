"""The controller (`runtime.controller: suggest | auto`): watches the metrics, proposes one
concrete throttle change per node under pressure, applies it when approved (or at once in
`auto`), judges it after `verify_s` and rolls it back when it made things worse.

This module keeps the suggestions and their lifecycle; what counts as pressure is
`controller_watch`, what is proposed for it is `controller_rules`.

Guardrails: the limits (checked again by the control API); `cooldown_s` per node after any
change to it, whoever made it (seen as its throttle values or generation changing), and after
the control API refused one; at most one suggestion in play per node; a change that was
rejected, refused or rolled back is not proposed again for `VETO_S`; an open suggestion
expires once the pressure is gone for `window_s`, after `EXPIRE_S`, or when someone changes
its node meanwhile.

Statuses: `open` (waiting for an operator), `approved` (applied, being verified), then
`applied` (kept: verified no worse) or `rolled_back` (verified worse: the `before` values were
restored); `rejected`, `expired`, `failed` (the control API refused it). Verification compares
the target metric on N (drops per second; the inbox fill when nothing dropped; a durable
backlog's growth per second) over the newest `window_s` of samples before the change (those
that justified the suggestion when no newer ones cover any time) with the `verify_s` after it.
A rollback restores the `before` values, except an unlimited source's rate when its rate
limits are declared (the control API refuses "unlimited" then): that is set to the top of its
limits, and the verdict says so (`controller_rules` only slows such a source below that top).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from schnitzel.contract.run_report import NodeReport, RunReport
from schnitzel.control.actor import Actor
from schnitzel.control.controller_rules import Proposal, Rules, RuleSettings, num
from schnitzel.control.controller_watch import Load, Watcher
from schnitzel.errors import ControlError

__all__ = [
    "EXPIRE_S",
    "STEP_S",
    "VETO_S",
    "ControlApi",
    "Controller",
    "ControllerSettings",
]

STEP_S = 1.0
"""How often `run()` looks at the metrics."""
EXPIRE_S = 600.0
"""An open suggestion nobody decided on expires after this long."""
VETO_S = 600.0
"""A change rejected, refused or rolled back on a node is not proposed again for this long."""
WORSE_FACTOR = 1.1
"""Verification: "worse" is more than 10% above the baseline ..."""
WORSE_MARGIN = {"drop_rate_per_s": 1.0, "inbox_fill": 0.05, "backlog_growth_per_s": 1.0}
"""... and by more than this much of the metric's unit (noise at small values)."""
KEPT = 200
"""Decided suggestions kept for `suggestions()` (open and verifying ones are always kept)."""


class ControlApi(Protocol):
    """The part of the control API (`schnitzel.control.runtime_control.RuntimeControl`) the
    controller uses: it reads the same snapshot operators see and changes what they can change."""

    def snapshot(self) -> RunReport:
        """The live run report, with each node's `throttle`, `limits` and `generation`."""
        ...

    def describe(self) -> dict[str, Any]:
        """The graph: `nodes` (with `declared_limits`: the limits the graph file declares)
        and `edges`."""
        ...

    def throttle(
        self,
        node_id: str,
        rate_hz: Any = ...,
        sample_every: Any = ...,
        concurrency: Any = ...,
        *,
        actor: Actor,
        why: str = ...,
        suggestion: str | None = ...,
        action: str = ...,
    ) -> dict[str, Any]:
        """Change knobs of a node within its limits; audited. Raises ControlError."""
        ...

    def note(self, level: str, message: str, node: str | None = None) -> None:
        """Add an event to the runtime's event log (what the console shows)."""
        ...


class ControllerSettings(RuleSettings, Protocol):
    """The controller's settings (`schnitzel.spec.model.ControllerSpec` has this shape):
    those of watching and proposing, and these."""

    @property
    def mode(self) -> str: ...
    @property
    def cooldown_s(self) -> float: ...


@dataclass
class _Suggestion:
    id: str
    node: str
    created: str
    created_at: float
    proposal: Proposal
    rationale: str
    metric: dict[str, Any]
    status: str = "open"
    decided_by: dict[str, Any] | None = None
    decided_at: str | None = None
    verdict: str | None = None
    applied_at: float | None = None
    before: dict[str, Any] = field(default_factory=dict)
    generations: dict[str, Any] = field(default_factory=dict)
    """Generation of its node and target when applied: a swap since voids the verdict."""

    def to_json(self) -> dict[str, Any]:
        p = self.proposal
        return {
            "id": self.id,
            "node": self.node,
            "created": self.created,
            "status": self.status,
            "action": {"command": "throttle", "node": p.target, "args": dict(p.args)},
            "before": dict(self.before),
            "summary": p.summary,
            "rationale": self.rationale,
            "expected": p.expected,
            "metric": dict(self.metric),
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "verdict": self.verdict,
        }


class Controller:
    """Proposes, applies and verifies throttle changes; see the module docstring."""

    def __init__(
        self,
        control: ControlApi,
        settings: ControllerSettings,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._control = control
        self._settings = settings
        self._logger = logger
        self._clock = clock
        self._wall = wall
        self._actor = Actor.local("controller")
        self._watcher = Watcher(settings, clock)
        self._rules = Rules(self._watcher, settings)
        self._suggestions: list[_Suggestion] = []
        self._ids = itertools.count(1)
        self._vetoes: dict[tuple[str, str], float] = {}
        """(node, knob) -> when a change of it was rejected, refused or rolled back."""
        self._said_stuck: set[str] = set()
        """Nodes told "pressure, but nothing to change" about in this episode of pressure."""
        self._failures = 0
        self._looked = False
        self._halted = ""
        """Why the last look changed nothing at all (the run ending or draining)."""
        self._quiet: dict[str, str] = {}
        """Node -> why the last look suggested nothing for it although it was pressured (a
        sentence naming the node)."""
        self._pressured = 0
        """Nodes under pressure at the last look."""

    @property
    def mode(self) -> str:
        """off, suggest or auto."""
        return self._settings.mode

    # -- the public surface the control API delegates to ----------------------------------

    def suggestions(self) -> list[dict[str, Any]]:
        """Every suggestion kept, newest last."""
        return [s.to_json() for s in self._suggestions]

    def why_none(self) -> list[str]:
        """Why nothing is (or nothing more is) suggested, as of the last look, in sentences:
        no pressure, no declared limits, a cooldown, a node held back by another, ..."""
        if not self._looked:
            return [f"the controller has not looked at the metrics yet (every {STEP_S:g} s)"]
        if self._halted:
            return [self._halted]
        lines = list(self._quiet.values())
        if not self._pressured:
            lines.append(
                "no pressure: no inbox stayed "
                f"{self._settings.fill_threshold:.0%} full with drops or backpressure, and no "
                f"durable backlog grew, over the last {self._settings.window_s:g} s"
            )
        if not self._watcher.declares_limits():
            lines.append(
                "no node declares `limits:`: the controller only turns knobs within a node's "
                "declared limits (docs/graph-file.md)"
            )
        return lines

    async def approve(self, suggestion_id: str, actor: Actor, why: str = "") -> dict[str, Any]:
        """Apply an open suggestion on behalf of `actor`; it is verified after `verify_s`.
        Raises ControlError for an unknown id, a suggestion no longer open, or a node that
        changed since it was made (the suggestion then expires)."""
        s = self._open(suggestion_id, "approved")
        now = self._clock()
        current = self._live_knobs(s.proposal.target)
        stale = {k: v for k, v in s.before.items() if k in current and current[k] != v}
        if stale:
            changed = ", ".join(f"{k} is now {num(current[k])}" for k in stale)
            self._close(s, "expired", f"superseded: {s.proposal.target!r} changed ({changed})")
            self._note("info", f"{s.id} expired: {s.verdict}", s.node)
            raise ControlError(
                f"suggestion {s.id} is out of date: {changed} on node {s.proposal.target!r}; "
                "a new suggestion follows if the pressure stays"
            )
        self._decide(s, actor)
        note = f" ({why})" if why else ""
        self._note("info", f"{s.id} approved by {actor}{note}: {s.proposal.summary}", s.node)
        self._apply(s, now, f"{s.id} approved by {actor}: {s.rationale}")
        if s.status == "failed":
            raise ControlError(f"suggestion {s.id} could not be applied: {s.verdict}")
        return s.to_json()

    def reject(self, suggestion_id: str, actor: Actor, why: str = "") -> dict[str, Any]:
        """Turn an open suggestion down; the same change is not proposed again for VETO_S."""
        s = self._open(suggestion_id, "rejected")
        self._decide(s, actor)
        self._close(s, "rejected", why or f"rejected by {actor}")
        self._veto(s, self._clock())
        self._note("info", f"{s.id} rejected by {actor}: {s.proposal.summary}", s.node)
        return s.to_json()

    async def run(self) -> None:
        """Look at the metrics every STEP_S until cancelled; a failing step is logged and
        the next one tried (the controller must never take the runtime down)."""
        while True:
            try:
                self.step(self._control.snapshot(), self._clock())
                self._failures = 0
            except Exception:
                self._failures += 1
                if self._failures == 1 or self._failures % 60 == 0:
                    self._logger.exception(
                        "controller: a step failed (%d in a row); it tries again each second",
                        self._failures,
                    )
            await asyncio.sleep(STEP_S)

    # -- one look at the metrics ------------------------------------------------------------

    def step(self, snapshot: RunReport, now: float) -> None:
        """Take one snapshot in: follow every node, judge changes under verification, expire
        what is stale, and propose (in auto: apply) a change for each pressured node."""
        self._looked = True
        if snapshot.get("status", "running") != "running" or self.mode == "off":
            self._halted = "the run has ended: nothing more is suggested"
            return
        if snapshot.get("stopping"):  # a drain is no time to retune the graph
            self._halted = "the run is draining to stop: nothing is suggested meanwhile"
            return
        self._halted = ""
        self._quiet = {}
        self._pressured = 0
        nodes: dict[str, NodeReport] = snapshot.get("nodes", {})
        self._watcher.forget_gone(nodes)
        self._said_stuck.intersection_update(nodes)
        for node_id, entry in nodes.items():
            change = self._watcher.observe(node_id, entry, now)
            if change is not None:
                self._supersede(node_id, change.knobs, change.swapped)
        self._watcher.refresh_graph(nodes, self._control.describe)
        for s in self._with_status("approved"):
            if s.applied_at is not None and now - s.applied_at >= self._settings.verify_s:
                self._verify(s, now)
        for s in self._with_status("open"):
            self._maybe_expire(s, now)
        for node_id, watch in self._watcher.watches.items():
            if self._watcher.pressured(watch, now):
                self._pressured += 1
                self._consider(node_id, now)
            elif watch.calm_since is not None:
                self._said_stuck.discard(node_id)
        self._forget(now)

    # -- proposing --------------------------------------------------------------------------

    def _consider(self, node_id: str, now: float) -> None:
        watch = self._watcher.watches[node_id]
        if watch.entry.get("paused"):
            self._quiet[node_id] = f"{node_id!r} is under pressure, but paused by an operator"
            return
        if self._busy(node_id):  # the suggestion in play is in the list
            verifying = [
                s for s in self._with_status("approved") if node_id in (s.node, s.proposal.target)
            ]
            if verifying:
                self._quiet[node_id] = (
                    f"{node_id!r} is under pressure, but {verifying[0].id} is being verified "
                    f"({self._settings.verify_s:g} s after it was applied; verify_s)"
                )
            return
        if self._cooling(node_id, now):
            assert watch.changed_at is not None
            self._quiet[node_id] = (
                f"{node_id!r} is under pressure, but was changed {now - watch.changed_at:.0f} s "
                f"ago: a cooldown of {self._settings.cooldown_s:g} s follows any change "
                "(cooldown_s)"
            )
            return
        if self._watcher.held_back(node_id):
            # the pressure comes from further down: that node is the one to act on
            self._quiet[node_id] = (
                f"{node_id!r} is under pressure from a slower node further down the graph: "
                "a suggestion, if any, is for that node"
            )
            return
        load = self._watcher.load(node_id, now)
        sink = watch.entry.get("kind") == "sink"
        if load.handles <= 0 or (sink and load.delivers <= 0):  # a sink's backend is down
            self._say_stuck(
                node_id,
                f"pressure on {node_id!r} ({self._rules.situation(load)}), but it "
                f"{'delivered' if sink else 'handled'} nothing in that time: that is not a "
                "capacity problem (look at its errors and health: a backend down?); nothing "
                "suggested",
            )
            return
        proposals = self._rules.proposals(load)
        proposal = next((p for p in proposals if self._allowed(p, node_id, now)), None)
        if proposal is None:
            self._say_stuck(
                node_id,
                f"pressure on {node_id!r} ({self._rules.situation(load)}), but no knob with "
                "declared limits is left to turn (or the cooldown, a rejection or a "
                "rollback holds it); declare `limits:` or add capacity",
            )
            return
        self._suggest(node_id, load, proposal, now)

    def _allowed(self, proposal: Proposal, node_id: str, now: float) -> bool:
        target = proposal.target
        if target != node_id and (self._busy(target) or self._cooling(target, now)):
            return False
        return all(
            now - self._vetoes.get((target, knob), -math.inf) >= VETO_S for knob in proposal.args
        )

    def _suggest(self, node_id: str, load: Load, proposal: Proposal, now: float) -> None:
        name, baseline = self._baseline_metric(load)
        s = _Suggestion(
            id=f"s-{next(self._ids)}",
            node=node_id,
            created=_timestamp(self._wall()),
            created_at=now,
            proposal=proposal,
            rationale=f"{self._rules.situation(load)}; {proposal.reason}",
            metric={"name": name, "node": node_id, "baseline": baseline, "after": None},
            before=dict(proposal.before),
        )
        self._suggestions.append(s)
        self._said_stuck.discard(node_id)
        if self.mode == "auto":
            self._decide(s, self._actor)
            self._note(
                "info",
                f"{s.id}: {proposal.summary}, applied automatically ({s.rationale})",
                node_id,
            )
            self._apply(s, now, f"{s.id} (auto): {s.rationale}")
        else:
            self._note(
                "info",
                f"{s.id} suggested: {proposal.summary} ({s.rationale}); "
                f"expected: {proposal.expected}; approve or reject it",
                node_id,
            )

    # -- applying and verifying --------------------------------------------------------------

    def _apply(self, s: _Suggestion, now: float, why: str) -> None:
        target = s.proposal.target
        try:
            result = self._control.throttle(
                target, **s.proposal.args, actor=self._actor, why=why, suggestion=s.id
            )
        except ControlError as exc:
            self._close(s, "failed", f"the control API refused it: {exc}")
            self._veto(s, now)  # it would be refused again: not every second
            self._watcher.mark_changed({target, s.node}, now)
            self._note("warning", f"{s.id} not applied: {exc}", s.node)
            return
        changes = result.get("changes", {}) if isinstance(result, dict) else {}
        for knob, change in changes.items():
            if isinstance(change, dict) and "before" in change:
                s.before[knob] = change["before"]
        s.status = "approved"
        s.applied_at = now
        s.generations = {n: self._watcher.generation(n) for n in {target, s.node}}
        # an approval comes between two looks, maybe long after the suggestion: the newest
        # window of samples, not one ending at the clock (which may hold no sample at all)
        baseline = self._watcher.measure(s.metric["name"], s.node)
        if baseline is not None:
            s.metric["baseline"] = baseline
        self._watcher.mark_changed({target, s.node}, now)
        self._watcher.expect_knobs(target, s.proposal.args)

    def _verify(self, s: _Suggestion, now: float) -> None:
        assert s.applied_at is not None
        target = s.proposal.target
        current = self._watcher.knobs(target)
        moved = {k: v for k, v in s.proposal.args.items() if k in current and current[k] != v}
        swapped = [n for n, g in s.generations.items() if self._watcher.generation(n) != g]
        if moved or swapped:
            changed = ", ".join(f"{k} is now {num(v)}" for k, v in current.items() if k in moved)
            what = f"{target!r} was changed again meanwhile ({changed})" if moved else ""
            what = what or f"{swapped[0]!r} was swapped meanwhile"
            self._close(s, "applied", f"not judged: {what}")
            self._note("info", f"{s.id}: {s.verdict}", s.node)
            return
        name, baseline = s.metric["name"], s.metric["baseline"]
        after = self._watcher.measure(name, s.node, since=s.applied_at)
        if after is None:
            self._close(s, "applied", f"not judged: {s.node!r} has no samples since the change")
            self._note("info", f"{s.id}: {s.verdict}", s.node)
            return
        s.metric["after"] = after
        comparison = _describe_metric(name, s.node, baseline, after)
        worse = after > baseline * WORSE_FACTOR and after - baseline > WORSE_MARGIN[name]
        if not worse:
            better = "better" if after < baseline else "no worse"
            self._close(s, "applied", f"{comparison}: {better}; kept")
            self._note("info", f"{s.id} verified: {s.verdict}", s.node)
            return
        restore, caveat = self._restore_values(s)
        undo = ", ".join(
            f"{k} {num(v)} -> {num(restore.get(k))}" for k, v in s.proposal.args.items()
        )
        try:
            self._control.throttle(
                target,
                **restore,
                actor=self._actor,
                why=f"auto-rollback: {comparison} after {s.id} ({s.proposal.summary})",
                suggestion=s.id,
                action="auto_rollback",
            )
        except ControlError as exc:
            self._close(s, "failed", f"{comparison}: worse, and rolling back was refused: {exc}")
            self._veto(s, now)  # worse and still in place: never a further step of it
            self._note("error", f"{s.id}: {s.verdict}", s.node)
            return
        verdict = f"{comparison}: worse; rolled back {target!r} ({undo}{caveat})"
        self._close(s, "rolled_back", verdict)
        self._watcher.expect_knobs(target, restore)
        self._watcher.mark_changed({target, s.node}, now)
        self._veto(s, now)
        self._note("warning", f"{s.id} rolled back: {s.verdict}", s.node)

    def _baseline_metric(self, load: Load) -> tuple[str, float]:
        if load.drops > 0:
            name = "drop_rate_per_s"
        elif load.backlog is not None:
            name = "backlog_growth_per_s"
        else:
            name = "inbox_fill"
        return name, self._watcher.measure(name, load.node) or 0.0

    def _restore_values(self, s: _Suggestion) -> tuple[dict[str, Any], str]:
        """What a rollback of `s` sets, and a caveat for its verdict: the `before` values,
        except an unlimited source's rate where rate limits are declared for it (the control
        API refuses "unlimited" then): the top of those limits instead."""
        restore = dict(s.before)
        bounds = self._watcher.bounds(s.proposal.target, "rate_hz")
        if "rate_hz" not in restore or restore["rate_hz"] is not None or bounds is None:
            return restore, ""
        restore["rate_hz"] = bounds[1]
        return restore, (
            f"; it was unlimited, which its declared limits do not allow: set to their top, "
            f"{num(bounds[1])}/s"
        )

    def _live_knobs(self, node_id: str) -> dict[str, Any]:
        """The node's throttle values in a fresh snapshot."""
        nodes: dict[str, NodeReport] = self._control.snapshot().get("nodes", {})
        entry = nodes.get(node_id)
        return {} if entry is None else dict(entry.get("throttle") or {})

    # -- guardrails ---------------------------------------------------------------------------

    def _open(self, suggestion_id: str, verb: str) -> _Suggestion:
        s = next((s for s in self._suggestions if s.id == suggestion_id), None)
        if s is None:
            known = ", ".join(x.id for x in self._suggestions if x.status == "open") or "none"
            raise ControlError(
                f"no suggestion {suggestion_id!r}; open ones: {known} (see `suggestions`)"
            )
        if s.status != "open":
            raise ControlError(
                f"suggestion {s.id} is {s.status}, not open: only open ones can be {verb}"
            )
        return s

    def _decide(self, s: _Suggestion, actor: Actor) -> None:
        s.decided_by = actor.to_json()
        s.decided_at = _timestamp(self._wall())

    def _close(self, s: _Suggestion, status: str, verdict: str) -> None:
        s.status, s.verdict = status, verdict

    def _veto(self, s: _Suggestion, now: float) -> None:
        for knob in s.proposal.args:
            self._vetoes[(s.proposal.target, knob)] = now

    def _with_status(self, status: str) -> list[_Suggestion]:
        return [s for s in self._suggestions if s.status == status]

    def _busy(self, node_id: str) -> bool:
        """A suggestion is open or being verified for this node, or changes it."""
        return any(
            s.status in ("open", "approved") and node_id in (s.node, s.proposal.target)
            for s in self._suggestions
        )

    def _cooling(self, node_id: str, now: float) -> bool:
        watch = self._watcher.watches.get(node_id)
        changed = watch.changed_at if watch is not None else None
        return changed is not None and now - changed < self._settings.cooldown_s

    def _supersede(self, node_id: str, knobs: dict[str, Any], swapped: bool) -> None:
        """Someone changed `node_id`: open suggestions about it no longer describe it."""
        what = "it was swapped" if swapped else "its throttles were changed"
        for s in self._with_status("open"):
            if node_id in (s.node, s.proposal.target):
                now_values = ", ".join(f"{k} {num(v)}" for k, v in knobs.items())
                self._close(s, "expired", f"superseded: {what} ({now_values})")
                self._note("info", f"{s.id} expired: {s.verdict}", s.node)

    def _maybe_expire(self, s: _Suggestion, now: float) -> None:
        watch = self._watcher.watches.get(s.node)
        if watch is None:
            self._close(s, "expired", f"node {s.node!r} is gone")
        elif now - s.created_at >= EXPIRE_S:
            self._close(s, "expired", f"nobody decided within {EXPIRE_S / 60:g} min")
        elif watch.calm_since is not None and now - watch.calm_since >= self._settings.window_s:
            self._close(s, "expired", f"the pressure on {s.node!r} is gone")
        else:
            return
        self._note("info", f"{s.id} expired: {s.verdict}", s.node)

    def _forget(self, now: float) -> None:
        self._vetoes = {k: t for k, t in self._vetoes.items() if now - t < VETO_S}
        done = [s for s in self._suggestions if s.status not in ("open", "approved")]
        for s in done[: max(len(done) - KEPT, 0)]:
            self._suggestions.remove(s)

    def _say_stuck(self, node_id: str, message: str) -> None:
        self._quiet[node_id] = message
        if node_id not in self._said_stuck:
            self._said_stuck.add(node_id)
            self._note("warning", message, node_id)

    def _note(self, level: str, message: str, node: str | None) -> None:
        try:
            self._control.note(level, f"controller: {message}", node)
        except Exception:  # the event log is for people; the controller carries on
            self._logger.exception("controller: could not add an event")


# -- helpers ----------------------------------------------------------------------------------


def _describe_metric(name: str, node: str, baseline: float, after: float) -> str:
    if name == "drop_rate_per_s":
        return f"drops on {node!r} {num(baseline)}/s -> {num(after)}/s"
    if name == "backlog_growth_per_s":
        return f"backlog of {node!r} growing {num(baseline)}/s -> {num(after)}/s"
    return f"inbox of {node!r} {baseline:.0%} -> {after:.0%} full"


def _timestamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
