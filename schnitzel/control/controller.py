"""The controller (`runtime.controller: suggest | auto`): watches the metrics, proposes one
concrete throttle change per node under pressure, applies it when approved (or at once in
`auto`), judges it after `verify_s` and rolls it back when it made things worse.

Pressure on a node N, judged from `snapshot()` once a second:

- its in-memory inbox has been at least `fill_threshold` full for `window_s` without a break,
  and packets are being dropped there or its overflow is `block` (backpressure holds the
  sources back); or
- its durable inbox lost ground at every sample for `window_s`: the backlog grew or the
  store dropped packets.

What it proposes for N, the first that applies (only knobs the graph declares `limits:` for:
declaring them is the operator's consent):

1. raise N's `concurrency` by at most `max(1, ceil(current * max_step))`, within its limits;
2. lower the rate of the source upstream of N that sends the most, so that what arrives at
   N falls to 90% of what N handles, by at most `max_step` of its rate, within its limits
   (an unlimited source's rate is what it measurably emits);
3. raise N's `sample_every` by at most `max(1, ceil(current * max_step))`: lossy, and the
   rationale says so.

Guardrails: the limits (checked again by the control API); `cooldown_s` per node after any
change to it, whoever made it (seen as its throttle values or generation changing); at most
one suggestion in play per node; a change that was rejected or rolled back is not proposed
again for `VETO_S`; an open suggestion expires once the pressure is gone for `window_s`,
after `EXPIRE_S`, or when someone changes its node meanwhile.

Statuses: `open` (waiting for an operator), `approved` (applied, being verified), then
`applied` (kept: verified no worse) or `rolled_back` (verified worse: the `before` values were
restored); `rejected`, `expired`, `failed` (the control API refused it). Verification compares
the target metric on N (drops per second; the inbox fill when nothing dropped; a durable
backlog's growth per second) over `window_s` before the change with the `verify_s` after it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from schnitzel.control.actor import Actor
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
"""A change rejected or rolled back on a node is not proposed again for this long."""
WORSE_FACTOR = 1.1
"""Verification: "worse" is more than 10% above the baseline ..."""
WORSE_MARGIN = {"drop_rate_per_s": 1.0, "inbox_fill": 0.05, "backlog_growth_per_s": 1.0}
"""... and by more than this much of the metric's unit (noise at small values)."""
HEADROOM = 0.9
"""A lowered source rate aims at 90% of what the pressured node handles."""
KEPT = 200
"""Decided suggestions kept for `suggestions()` (open and verifying ones are always kept)."""
HISTORY_S = 5.0
"""Samples kept beyond the longest window the controller looks back over."""


class ControlApi(Protocol):
    """The part of the control API (`schnitzel.runtime.control.RuntimeControl`) the controller
    uses: it reads the same snapshot operators see and changes what they can change."""

    def snapshot(self) -> dict[str, Any]:
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


class ControllerSettings(Protocol):
    """The controller's settings (`schnitzel.spec.model.ControllerSpec` has this shape)."""

    @property
    def mode(self) -> str: ...
    @property
    def window_s(self) -> float: ...
    @property
    def cooldown_s(self) -> float: ...
    @property
    def verify_s(self) -> float: ...
    @property
    def max_step(self) -> float: ...
    @property
    def fill_threshold(self) -> float: ...


# -- what the controller remembers per node -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sample:
    at: float
    taken: int
    """Packets the node took from its inbox (`in`)."""
    out: int
    received: int
    dropped: int
    fill: float | None
    """Inbox depth / capacity; None for a durable inbox."""
    backlog: int | None
    """A durable inbox's backlog; None otherwise."""


@dataclass
class _Watch:
    """One node as the controller follows it from snapshot to snapshot."""

    entry: dict[str, Any]
    samples: deque[_Sample] = field(default_factory=deque)
    high_since: float | None = None
    """Since when the inbox is at least `fill_threshold` full (or a durable one losing
    ground), without a break."""
    calm_since: float | None = None
    """Since when it is not."""
    knobs: dict[str, Any] | None = None
    generation: int | None = None
    changed_at: float | None = None
    """When its knobs or generation last changed (cooldown)."""
    said_stuck: bool = False
    """"Pressure, but nothing to change" was said for this episode of pressure."""


@dataclass(frozen=True)
class _Proposal:
    target: str
    args: dict[str, Any]
    before: dict[str, Any]
    summary: str
    reason: str
    expected: str


@dataclass
class _Suggestion:
    id: str
    node: str
    created: str
    created_at: float
    proposal: _Proposal
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


@dataclass(frozen=True)
class _Load:
    """What the controller measured on a pressured node over the window."""

    node: str
    fill: float | None
    high_for: float
    drops: float
    handles: float
    """Packets per second the node takes from its inbox."""
    delivers: float
    arrives: float
    demand: float
    """What wants to arrive: what arrives (dropped or not), or under `overflow: block` what
    the sources upstream are set to send (infinite when one is unlimited)."""
    backlog: tuple[int, int] | None


# -- the controller -------------------------------------------------------------------------


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
        self._watches: dict[str, _Watch] = {}
        self._suggestions: list[_Suggestion] = []
        self._ids = itertools.count(1)
        self._vetoes: dict[tuple[str, str], float] = {}
        """(node, knob) -> when a change of it was rejected or rolled back."""
        self._edges: list[tuple[str, str]] | None = None
        self._declared: dict[str, set[str]] = {}
        self._graph_key: tuple[Any, ...] | None = None
        self._failures = 0

    @property
    def mode(self) -> str:
        """off, suggest or auto."""
        return self._settings.mode

    # -- the public surface the control API delegates to ----------------------------------

    def suggestions(self) -> list[dict[str, Any]]:
        """Every suggestion kept, newest last."""
        return [s.to_json() for s in self._suggestions]

    async def approve(self, suggestion_id: str, actor: Actor, why: str = "") -> dict[str, Any]:
        """Apply an open suggestion on behalf of `actor`; it is verified after `verify_s`.
        Raises ControlError for an unknown id, a suggestion no longer open, or a node that
        changed since it was made (the suggestion then expires)."""
        s = self._open(suggestion_id, "approve")
        now = self._clock()
        current = self._current_knobs(s.proposal.target)
        stale = {k: v for k, v in s.before.items() if k in current and current[k] != v}
        if stale:
            changed = ", ".join(f"{k} is now {_num(current[k])}" for k in stale)
            self._close(s, "expired", f"superseded: {s.proposal.target!r} changed ({changed})")
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
        s = self._open(suggestion_id, "reject")
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

    def step(self, snapshot: dict[str, Any], now: float) -> None:
        """Take one snapshot in: follow every node, judge changes under verification, expire
        what is stale, and propose (in auto: apply) a change for each pressured node."""
        if snapshot.get("status", "running") != "running" or self.mode == "off":
            return
        if snapshot.get("stopping"):  # a drain is no time to retune the graph
            return
        nodes: dict[str, dict[str, Any]] = snapshot.get("nodes", {})
        for node_id in list(self._watches):
            if node_id not in nodes:
                del self._watches[node_id]
        for node_id, entry in nodes.items():
            self._observe(node_id, entry, now)
        self._refresh_graph(nodes)
        for s in self._with_status("approved"):
            if s.applied_at is not None and now - s.applied_at >= self._settings.verify_s:
                self._verify(s, now)
        for s in self._with_status("open"):
            self._maybe_expire(s, now)
        for node_id, watch in self._watches.items():
            if self._pressured(watch, now):
                self._consider(node_id, now)
            elif watch.calm_since is not None:
                watch.said_stuck = False
        self._forget(now)

    def _observe(self, node_id: str, entry: dict[str, Any], now: float) -> None:
        watch = self._watches.get(node_id)
        if watch is None:
            watch = self._watches[node_id] = _Watch(entry)
        watch.entry = entry
        knobs = dict(entry.get("throttle") or {})
        generation = entry.get("generation")
        if watch.knobs is not None and (knobs != watch.knobs or generation != watch.generation):
            watch.changed_at = now
            self._supersede(node_id, knobs, generation != watch.generation)
        watch.knobs, watch.generation = knobs, generation
        if entry.get("kind") == "source":
            sample = _Sample(now, 0, int(entry.get("out", 0)), 0, 0, None, None)
            _append(watch.samples, sample, self._horizon())
            return
        durable = entry.get("durable")
        capacity = entry.get("queue_capacity") or 0
        fill = None
        if durable is None and capacity > 0:
            fill = min(entry.get("queue_depth", 0) / capacity, 1.0)
        backlog = int(durable.get("backlog", 0)) if isinstance(durable, dict) else None
        sample = _Sample(
            now,
            int(entry.get("in", 0)),
            int(entry.get("out", 0)),
            int(entry.get("received", 0)),
            int(entry.get("dropped", 0)),
            fill,
            backlog,
        )
        previous = watch.samples[-1] if watch.samples else None
        _append(watch.samples, sample, self._horizon())
        if fill is not None:
            hot = fill >= self._settings.fill_threshold
        elif backlog is not None and previous is not None and previous.backlog is not None:
            hot = backlog > previous.backlog or sample.dropped > previous.dropped
        else:
            hot = False
        if hot:
            watch.calm_since = None
            if watch.high_since is None:
                watch.high_since = previous.at if fill is None and previous else now
        else:
            watch.high_since = None
            if watch.calm_since is None:
                watch.calm_since = now

    def _horizon(self) -> float:
        s = self._settings
        return max(s.window_s, s.verify_s) + s.window_s + HISTORY_S

    def _pressured(self, watch: _Watch, now: float) -> bool:
        entry = watch.entry
        if entry.get("kind") == "source" or watch.high_since is None:
            return False
        if now - watch.high_since < self._settings.window_s:
            return False
        if entry.get("durable") is not None:
            return True
        drops = _rate(watch.samples, "dropped", now - self._settings.window_s)
        return drops > 0 or entry.get("overflow") == "block"

    # -- proposing --------------------------------------------------------------------------

    def _consider(self, node_id: str, now: float) -> None:
        watch = self._watches[node_id]
        if watch.entry.get("paused") or self._busy(node_id) or self._cooling(node_id, now):
            return
        if self._held_back(node_id):
            return  # the pressure comes from further down: that node is the one to act on
        load = self._load(node_id, now)
        if load.handles <= 0:
            self._say_stuck(
                watch,
                node_id,
                f"pressure on {node_id!r} ({self._situation(load)}), but it handled nothing "
                "in that time: that is not a capacity problem (look at its errors and "
                "health); nothing suggested",
            )
            return
        proposal = next((p for p in self._proposals(load) if self._allowed(p, node_id, now)), None)
        if proposal is None:
            self._say_stuck(
                watch,
                node_id,
                f"pressure on {node_id!r} ({self._situation(load)}), but no knob with "
                "declared limits is left to turn (or the cooldown, a rejection or a "
                "rollback holds it); declare `limits:` or add capacity",
            )
            return
        self._suggest(node_id, load, proposal, now)

    def _proposals(self, load: _Load) -> Iterator[_Proposal]:
        """The candidate changes for a pressured node, in order of preference."""
        yield from self._more_concurrency(load)
        yield from self._slower_sources(load)
        yield from self._more_sampling(load)

    def _more_concurrency(self, load: _Load) -> Iterator[_Proposal]:
        node = load.node
        bounds = self._bounds(node, "concurrency")
        current = (self._watches[node].knobs or {}).get("concurrency")
        if bounds is None or not isinstance(current, int) or current >= bounds[1]:
            return
        new = int(min(bounds[1], current + max(1, math.ceil(current * self._settings.max_step))))
        estimate = load.handles * new / current
        yield _Proposal(
            node,
            {"concurrency": new},
            {"concurrency": current},
            f"raise the concurrency of {node!r} from {current} to {new}",
            f"{current} call{'s' if current > 1 else ''} at once cannot keep up; "
            f"its limits allow up to {_num(bounds[1])}",
            self._expected(
                load, estimate, f"{node!r} handles up to ~{_num(estimate)}/s", load.demand
            ),
        )

    def _slower_sources(self, load: _Load) -> Iterator[_Proposal]:
        now = self._latest_at(load.node)
        sources = self._upstream_sources(load.node)
        rates = {s: self._source_rate(s, now) for s in sources}
        total = sum(r for r, _configured in rates.values())
        if total <= 0 or load.arrives <= 0:
            return
        factor = HEADROOM * load.handles / load.arrives
        cut = total * (1 - factor)  # in packets per second of the sources
        ranked = sorted(rates, key=lambda s: rates[s][0], reverse=True)
        for source in ranked:
            bounds = self._bounds(source, "rate_hz")
            rate, configured = rates[source]
            if bounds is None or rate <= 0 or cut <= 0:
                continue
            floor = max(bounds[0], rate * (1 - self._settings.max_step))
            new = _round_rate(max(floor, rate - cut), bounds[0])
            if new >= rate * 0.99:
                continue  # at its lowest already
            arrives = (total - rate + new) * load.arrives / total
            now_text = (
                f"{_num(rate)}/s" if configured is not None else f"unlimited, ~{_num(rate)}/s"
            )
            yield _Proposal(
                source,
                {"rate_hz": new},
                {"rate_hz": configured},
                f"lower the rate of {source!r} from {now_text} to {_num(new)}/s",
                f"{load.node!r} cannot take more; {source!r} sends the most upstream of it "
                f"(its limits allow down to {_num(bounds[0])}/s)",
                self._expected(
                    load, load.handles, f"about {_num(arrives)}/s arrive at {load.node!r}", arrives
                ),
            )

    def _more_sampling(self, load: _Load) -> Iterator[_Proposal]:
        node = load.node
        bounds = self._bounds(node, "sample_every")
        current = (self._watches[node].knobs or {}).get("sample_every")
        if bounds is None or not isinstance(current, int) or current >= bounds[1]:
            return
        new = int(min(bounds[1], current + max(1, math.ceil(current * self._settings.max_step))))
        kept = load.arrives * current / new
        estimate = load.handles * new / current  # skipped packets cost next to nothing
        yield _Proposal(
            node,
            {"sample_every": new},
            {"sample_every": current},
            f"raise sample_every of {node!r} from {current} to {new} (keep 1 packet in {new})",
            "neither its concurrency nor a source's rate can be changed within their limits; "
            f"LOSSY: {node!r} then skips {new - 1} of every {new} packets (counted as "
            "filtered, not processed)",
            self._expected(
                load,
                estimate,
                f"{node!r} processes ~{_num(kept)}/s of what arrives and skips the rest",
                load.demand,
            ),
        )

    def _expected(self, load: _Load, handles: float, effect: str, arrives: float) -> str:
        """What the change should do, in numbers: `effect`, then drops and fill, when the
        node then handles `handles` per second of `arrives` wanting in."""
        within = f"within ~{_num(self._settings.verify_s)} s"
        threshold = f"{self._settings.fill_threshold:.0%}"
        if handles >= arrives:
            if load.backlog is not None:
                return f"{effect}; the backlog of {load.node!r} stops growing {within}"
            drops = f"drops on {load.node!r} fall to 0 and " if load.drops > 0 else ""
            return f"{effect}; {drops}its inbox drains below {threshold} {within}"
        left = arrives - handles
        if math.isinf(left):
            return f"{effect}; its inbox stays full, but the sources are held back less"
        if load.backlog is not None:
            return f"{effect}; the backlog of {load.node!r} grows ~{_num(left)}/s (not 0 yet)"
        if load.drops > 0:
            return (
                f"{effect}; drops on {load.node!r} fall from {_num(load.drops)}/s to about "
                f"{_num(left)}/s {within} (not 0 yet: a further step may follow)"
            )
        return f"{effect}; its inbox stays full, but the sources are held back less"

    def _allowed(self, proposal: _Proposal, node_id: str, now: float) -> bool:
        target = proposal.target
        if target != node_id and (self._busy(target) or self._cooling(target, now)):
            return False
        return all(
            now - self._vetoes.get((target, knob), -math.inf) >= VETO_S for knob in proposal.args
        )

    def _suggest(self, node_id: str, load: _Load, proposal: _Proposal, now: float) -> None:
        name, baseline = self._baseline_metric(load, now)
        s = _Suggestion(
            id=f"s-{next(self._ids)}",
            node=node_id,
            created=_timestamp(self._wall()),
            created_at=now,
            proposal=proposal,
            rationale=f"{self._situation(load)}; {proposal.reason}",
            metric={"name": name, "node": node_id, "baseline": baseline, "after": None},
            before=dict(proposal.before),
        )
        self._suggestions.append(s)
        self._watches[node_id].said_stuck = False
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
            self._note("warning", f"{s.id} not applied: {exc}", s.node)
            return
        changes = result.get("changes", {}) if isinstance(result, dict) else {}
        for knob, change in changes.items():
            if isinstance(change, dict) and "before" in change:
                s.before[knob] = change["before"]
        s.status = "approved"
        s.applied_at = now
        s.generations = {n: self._generation(n) for n in {target, s.node}}
        name = s.metric["name"]
        s.metric["baseline"] = self._measure(name, s.node, now - self._settings.window_s, now)
        for node in {target, s.node}:
            if node in self._watches:
                self._watches[node].changed_at = now
        self._expect_knobs(target, s.proposal.args)

    def _expect_knobs(self, node_id: str, args: dict[str, Any]) -> None:
        """Our own change is not someone else's: the next snapshot shows it as it was meant."""
        watch = self._watches.get(node_id)
        if watch is not None and watch.knobs is not None:
            watch.knobs = {**watch.knobs, **args}

    def _verify(self, s: _Suggestion, now: float) -> None:
        assert s.applied_at is not None
        target = s.proposal.target
        current = self._current_knobs(target, live=False)
        moved = {k: v for k, v in s.proposal.args.items() if k in current and current[k] != v}
        swapped = [n for n, g in s.generations.items() if self._generation(n) != g]
        if moved or swapped:
            changed = ", ".join(f"{k} is now {_num(v)}" for k, v in current.items() if k in moved)
            what = f"{target!r} was changed again meanwhile ({changed})" if moved else ""
            what = what or f"{swapped[0]!r} was swapped meanwhile"
            self._close(s, "applied", f"not judged: {what}")
            self._note("info", f"{s.id}: {s.verdict}", s.node)
            return
        name, baseline = s.metric["name"], s.metric["baseline"]
        after = self._measure(name, s.node, s.applied_at, now)
        s.metric["after"] = after
        comparison = _describe_metric(name, s.node, baseline, after)
        worse = after > baseline * WORSE_FACTOR and after - baseline > WORSE_MARGIN[name]
        if not worse:
            better = "better" if after < baseline else "no worse"
            self._close(s, "applied", f"{comparison}: {better}; kept")
            self._note("info", f"{s.id} verified: {s.verdict}", s.node)
            return
        undo = ", ".join(
            f"{k} {_num(v)} -> {_num(s.before.get(k))}" for k, v in s.proposal.args.items()
        )
        try:
            self._control.throttle(
                target,
                **s.before,
                actor=self._actor,
                why=f"auto-rollback: {comparison} after {s.id} ({s.proposal.summary})",
                suggestion=s.id,
                action="auto_rollback",
            )
        except ControlError as exc:
            self._close(s, "failed", f"{comparison}: worse, and rolling back was refused: {exc}")
            self._note("error", f"{s.id}: {s.verdict}", s.node)
            return
        self._close(s, "rolled_back", f"{comparison}: worse; rolled back {target!r} ({undo})")
        self._expect_knobs(target, s.before)
        for node in {target, s.node}:
            if node in self._watches:
                self._watches[node].changed_at = now
        self._veto(s, now)
        self._note("warning", f"{s.id} rolled back: {s.verdict}", s.node)

    def _baseline_metric(self, load: _Load, now: float) -> tuple[str, float]:
        if load.drops > 0:
            name = "drop_rate_per_s"
        elif load.backlog is not None:
            name = "backlog_growth_per_s"
        else:
            name = "inbox_fill"
        return name, self._measure(name, load.node, now - self._settings.window_s, now)

    def _measure(self, name: str, node_id: str, since: float, now: float) -> float:
        """The metric `name` on `node_id` between `since` and `now`."""
        watch = self._watches.get(node_id)
        if watch is None:
            return 0.0
        samples = watch.samples
        if name == "drop_rate_per_s":
            return round(_rate(samples, "dropped", since), 2)
        if name == "backlog_growth_per_s":
            return round(_rate(samples, "backlog", since), 2)
        fills = [s.fill for s in samples if s.at > since and s.fill is not None]
        return round(sum(fills) / len(fills), 3) if fills else 0.0

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
                f"suggestion {s.id} is {s.status}, not open: only open ones can be {verb}d"
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
        watch = self._watches.get(node_id)
        changed = watch.changed_at if watch is not None else None
        return changed is not None and now - changed < self._settings.cooldown_s

    def _supersede(self, node_id: str, knobs: dict[str, Any], swapped: bool) -> None:
        """Someone changed `node_id`: open suggestions about it no longer describe it."""
        what = "it was swapped" if swapped else "its throttles were changed"
        for s in self._with_status("open"):
            if node_id in (s.node, s.proposal.target):
                now_values = ", ".join(f"{k} {_num(v)}" for k, v in knobs.items())
                self._close(s, "expired", f"superseded: {what} ({now_values})")
                self._note("info", f"{s.id} expired: {s.verdict}", s.node)

    def _maybe_expire(self, s: _Suggestion, now: float) -> None:
        watch = self._watches.get(s.node)
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

    def _say_stuck(self, watch: _Watch, node_id: str, message: str) -> None:
        if not watch.said_stuck:
            watch.said_stuck = True
            self._note("warning", message, node_id)

    # -- measurements -------------------------------------------------------------------------

    def _load(self, node_id: str, now: float) -> _Load:
        watch = self._watches[node_id]
        since = now - self._settings.window_s
        samples = watch.samples
        backlog = None
        if watch.samples[-1].backlog is not None:
            first = _at_or_before(samples, watch.high_since or since)
            backlog = (first.backlog or 0, samples[-1].backlog or 0)
        arrives = _rate(samples, "received", since)
        demand = arrives
        if watch.entry.get("overflow") == "block" and backlog is None:
            rates = [
                (self._watches[s].knobs or {}).get("rate_hz")
                for s in self._upstream_sources(node_id)
            ]
            demand = math.inf if None in rates or not rates else max(float(sum(rates)), arrives)
        return _Load(
            node=node_id,
            fill=samples[-1].fill,
            high_for=now - (watch.high_since or now),
            drops=_rate(samples, "dropped", since),
            handles=_rate(samples, "taken", since),
            delivers=_rate(samples, "out", since),
            arrives=arrives,
            demand=demand,
            backlog=backlog,
        )

    def _situation(self, load: _Load) -> str:
        """What is wrong, in numbers: 'inbox of `up` 96% full for 12 s, 40 drops/s; ...'."""
        node = load.node
        if load.backlog is not None:
            first, last = load.backlog
            growth = (last - first) / load.high_for if load.high_for > 0 else 0.0
            text = (
                f"durable backlog of {node!r} grew {first} -> {last} packets in "
                f"{_num(load.high_for)} s (+{_num(growth)}/s)"
            )
        else:
            text = f"inbox of {node!r} {load.fill or 0:.0%} full for {_num(load.high_for)} s"
        if load.drops > 0:
            text += f", {_num(load.drops)} drops/s"
        elif self._watches[node].entry.get("overflow") == "block":
            text += ", overflow block: backpressure holds the sources back"
        sink = self._watches[node].entry.get("kind") == "sink"
        doing = f"delivers {_num(load.delivers)}/s" if sink else f"handles {_num(load.handles)}/s"
        now = self._latest_at(node)
        senders = [(s, self._source_rate(s, now)[0]) for s in self._upstream_sources(node)]
        if len(senders) == 1:
            upstream = f"{senders[0][0]!r} sends {_num(senders[0][1])}/s"
        elif senders:
            upstream = " and ".join(f"{s!r} {_num(r)}/s" for s, r in senders) + " send"
        else:
            upstream = f"{_num(load.arrives)}/s arrive"
        return f"{text}; it {doing} while {upstream}"

    def _source_rate(self, source: str, now: float) -> tuple[float, float | None]:
        """(what the source sends now, its configured rate or None when unlimited): the
        configured rate, or the measured one where that is lower (held back) or none is set."""
        watch = self._watches.get(source)
        if watch is None:
            return 0.0, None
        configured = (watch.knobs or {}).get("rate_hz")
        measured = _rate(watch.samples, "out", now - self._settings.window_s)
        if configured is None:
            return measured, None
        return (min(configured, measured) if measured > 0 else float(configured)), configured

    def _generation(self, node_id: str) -> Any:
        watch = self._watches.get(node_id)
        return watch.generation if watch is not None else None

    def _latest_at(self, node_id: str) -> float:
        samples = self._watches[node_id].samples
        return samples[-1].at if samples else self._clock()

    def _current_knobs(self, node_id: str, live: bool = True) -> dict[str, Any]:
        """The node's throttle values: from a fresh snapshot (`live`), else the last one."""
        if live:
            entry = self._control.snapshot().get("nodes", {}).get(node_id, {})
            return dict(entry.get("throttle") or {})
        watch = self._watches.get(node_id)
        return dict(watch.knobs or {}) if watch is not None else {}

    # -- the graph ------------------------------------------------------------------------------

    def _refresh_graph(self, nodes: dict[str, dict[str, Any]]) -> None:
        """Edges and declared limits from describe(), again whenever nodes or their
        generations change (a swap or a reload)."""
        key = tuple(sorted((n, e.get("generation")) for n, e in nodes.items()))
        if key == self._graph_key:
            return
        described = self._control.describe()
        self._edges = [(e["from"], e["to"]) for e in described.get("edges", [])]
        self._declared = {n["id"]: _declared_knobs(n) for n in described.get("nodes", [])}
        self._graph_key = key

    def _bounds(self, node_id: str, knob: str) -> tuple[float, float] | None:
        """[low, high] of a knob the graph declares limits for on this node, else None."""
        if knob not in self._declared.get(node_id, set()):
            return None
        limits = self._watches[node_id].entry.get("limits") or {}
        bounds = limits.get(knob)
        if not isinstance(bounds, list | tuple) or len(bounds) != 2:
            return None
        low, high = bounds
        return float(low), float(high)

    def _upstream_sources(self, node_id: str) -> list[str]:
        """The sources whose packets reach `node_id`, in graph order."""
        feeders: dict[str, set[str]] = {}
        for source, target in self._edges or []:
            feeders.setdefault(target, set()).add(source)
        seen: set[str] = set()
        todo = [node_id]
        while todo:
            for feeder in feeders.get(todo.pop(), ()):
                if feeder not in seen:
                    seen.add(feeder)
                    todo.append(feeder)
        return [
            n for n, w in self._watches.items() if n in seen and w.entry.get("kind") == "source"
        ]

    def _held_back(self, node_id: str) -> bool:
        """A node it sends to is full and blocks, or paused: that one is the bottleneck."""
        threshold = self._settings.fill_threshold
        for source, target in self._edges or []:
            watch = self._watches.get(target)
            if source != node_id or watch is None:
                continue
            fill = watch.samples[-1].fill if watch.samples else None
            blocking = watch.entry.get("overflow") == "block" and (fill or 0) >= threshold
            if blocking or watch.entry.get("paused"):
                return True
        return False

    def _note(self, level: str, message: str, node: str | None) -> None:
        try:
            self._control.note(level, f"controller: {message}", node)
        except Exception:  # the event log is for people; the controller carries on
            self._logger.exception("controller: could not add an event")


# -- helpers ----------------------------------------------------------------------------------


def _declared_knobs(described: dict[str, Any]) -> set[str]:
    """The knobs the graph file declares `limits:` for on a node of describe(): its
    `declared_limits` (None for a knob not declared); `limits` where that key is missing."""
    declared = described.get("declared_limits", described.get("limits")) or {}
    return {knob for knob, bounds in declared.items() if bounds is not None}


def _append(samples: deque[_Sample], sample: _Sample, horizon: float) -> None:
    if samples and sample.at <= samples[-1].at:
        return  # a repeated or out-of-order look tells nothing new
    if samples and _went_back(samples[-1], sample):
        samples.clear()  # counters restarted (a new run, a reload): rates start over
    samples.append(sample)
    while len(samples) > 2 and sample.at - samples[1].at >= horizon:
        samples.popleft()


def _went_back(old: _Sample, new: _Sample) -> bool:
    return new.taken < old.taken or new.dropped < old.dropped or new.received < old.received


def _at_or_before(samples: deque[_Sample], since: float) -> _Sample:
    """The newest sample taken at or before `since` (so a window is fully covered), else
    the oldest."""
    chosen = samples[0]
    for sample in samples:
        if sample.at > since:
            break
        chosen = sample
    return chosen


def _rate(samples: deque[_Sample], counter: str, since: float) -> float:
    """Per second increase of `counter` from `since` to the newest sample; 0 without two."""
    if len(samples) < 2:
        return 0.0
    first, last = _at_or_before(samples, since), samples[-1]
    seconds = last.at - first.at
    if seconds <= 0:
        return 0.0
    return max((getattr(last, counter) or 0) - (getattr(first, counter) or 0), 0) / seconds


def _round_rate(rate: float, low: float) -> float:
    """Three significant digits, never below `low`."""
    return max(float(f"{rate:.3g}"), low)


def _num(value: Any) -> str:
    """A number as an operator reads it: 200, 48, 3.5, 0.25; None as 'unlimited'."""
    if value is None:
        return "unlimited"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() or abs(value) >= 10:
        return f"{value:.0f}"
    return f"{value:.2g}" if abs(value) < 1 else f"{value:.1f}"


def _describe_metric(name: str, node: str, baseline: float, after: float) -> str:
    if name == "drop_rate_per_s":
        return f"drops on {node!r} {_num(baseline)}/s -> {_num(after)}/s"
    if name == "backlog_growth_per_s":
        return f"backlog of {node!r} growing {_num(baseline)}/s -> {_num(after)}/s"
    return f"inbox of {node!r} {baseline:.0%} -> {after:.0%} full"


def _timestamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
