"""What the controller sees: each node followed from snapshot to snapshot (samples of its
counters, rates over a window), when it is under pressure, and the graph around it.

Pressure on a node N, judged from `snapshot()` once a second:

- its in-memory inbox has been at least `fill_threshold` full for `window_s` without a break,
  and packets are being dropped there or its overflow is `block` (backpressure holds the
  sources back); or
- its durable inbox lost ground at every sample for `window_s`: the backlog grew or the
  store dropped packets.

Nothing here decides or changes anything: `controller_rules` turns a `Load` into proposals,
`controller` decides and applies them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from schnitzel.contract.run_report import NodeReport

__all__ = ["HISTORY_S", "Change", "Load", "Sample", "Watch", "WatchSettings", "Watcher"]

HISTORY_S = 5.0
"""Samples kept beyond the longest window the controller looks back over."""


class WatchSettings(Protocol):
    """The settings watching depends on (`ControllerSettings` has them)."""

    @property
    def window_s(self) -> float: ...
    @property
    def verify_s(self) -> float: ...
    @property
    def fill_threshold(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Sample:
    """One node's counters at one look."""

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
class Watch:
    """One node as the controller follows it from snapshot to snapshot."""

    entry: NodeReport
    samples: deque[Sample] = field(default_factory=deque)
    high_since: float | None = None
    """Since when the inbox is at least `fill_threshold` full (or a durable one losing
    ground), without a break."""
    calm_since: float | None = None
    """Since when it is not."""
    knobs: dict[str, Any] | None = None
    generation: int | None = None
    changed_at: float | None = None
    """When its knobs or generation last changed (cooldown)."""


@dataclass(frozen=True)
class Change:
    """A node's knobs or generation differ from the previous look: someone changed it."""

    knobs: dict[str, Any]
    """Its throttle values now."""
    swapped: bool
    """Its generation changed (a swap), not only its throttles."""


@dataclass(frozen=True)
class Load:
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


class Watcher:
    """Every node of the graph as followed over the last looks, and the graph's edges and
    declared limits."""

    def __init__(self, settings: WatchSettings, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._clock = clock
        self.watches: dict[str, Watch] = {}
        """Node id -> what is known of it; read by the controller, written only here."""
        self._edges: list[tuple[str, str]] | None = None
        self._declared: dict[str, set[str]] = {}
        self._graph_key: tuple[Any, ...] | None = None

    # -- following the nodes ------------------------------------------------------------------

    def forget_gone(self, nodes: dict[str, NodeReport]) -> None:
        """Stop following nodes no longer in the snapshot."""
        for node_id in list(self.watches):
            if node_id not in nodes:
                del self.watches[node_id]

    def observe(self, node_id: str, entry: NodeReport, now: float) -> Change | None:
        """Take one node's snapshot entry in; say whether someone changed it since the last
        look (its throttle values or generation)."""
        watch = self.watches.get(node_id)
        if watch is None:
            watch = self.watches[node_id] = Watch(entry)
        watch.entry = entry
        knobs = dict(entry.get("throttle") or {})
        generation = entry.get("generation")
        change = None
        if watch.knobs is not None and (knobs != watch.knobs or generation != watch.generation):
            watch.changed_at = now
            change = Change(knobs, generation != watch.generation)
        watch.knobs, watch.generation = knobs, generation
        if entry.get("kind") == "source":
            sample = Sample(now, 0, int(entry.get("out", 0)), 0, 0, None, None)
            _append(watch.samples, sample, self._horizon())
            return change
        durable = entry.get("durable")
        capacity = entry.get("queue_capacity") or 0
        fill = None
        if durable is None and capacity > 0:
            fill = min(entry.get("queue_depth", 0) / capacity, 1.0)
        backlog = int(durable.get("backlog", 0)) if isinstance(durable, dict) else None
        sample = Sample(
            now,
            int(entry.get("in", 0)),
            int(entry.get("out", 0)),
            int(entry.get("received", 0)),
            int(entry.get("dropped", 0)),
            fill,
            backlog,
        )
        previous = watch.samples[-1] if watch.samples else None
        if _append(watch.samples, sample, self._horizon()):
            watch.high_since = previous = None  # a new run: its pressure starts over too
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
        return change

    def _horizon(self) -> float:
        s = self._settings
        return max(s.window_s, s.verify_s) + s.window_s + HISTORY_S

    def mark_changed(self, nodes: set[str], now: float) -> None:
        """These nodes were changed now by the controller (or a change of them was refused):
        their cooldown starts."""
        for node in nodes:
            if node in self.watches:
                self.watches[node].changed_at = now

    def expect_knobs(self, node_id: str, args: dict[str, Any]) -> None:
        """Our own change is not someone else's: the next snapshot shows it as it was meant."""
        watch = self.watches.get(node_id)
        if watch is not None and watch.knobs is not None:
            watch.knobs = {**watch.knobs, **args}

    # -- judging --------------------------------------------------------------------------------

    def pressured(self, watch: Watch, now: float) -> bool:
        """The node is under pressure (see the module docstring)."""
        entry = watch.entry
        if entry.get("kind") == "source" or watch.high_since is None:
            return False
        if now - watch.high_since < self._settings.window_s:
            return False
        if entry.get("durable") is not None:
            return True
        drops = _rate(watch.samples, "dropped", now - self._settings.window_s)
        return drops > 0 or entry.get("overflow") == "block"

    def load(self, node_id: str, now: float) -> Load:
        """What a pressured node went through over the window."""
        watch = self.watches[node_id]
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
                (self.watches[s].knobs or {}).get("rate_hz") for s in self.upstream_sources(node_id)
            ]
            limited = [rate for rate in rates if rate is not None]
            unlimited = len(limited) < len(rates) or not rates
            demand = math.inf if unlimited else max(float(sum(limited)), arrives)
        return Load(
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

    def measure(self, name: str, node_id: str, since: float | None = None) -> float | None:
        """The metric `name` on `node_id` from `since` to the newest sample (by default over
        the newest `window_s` of samples, however long ago that sample was taken); None when
        the samples cover no time (fewer than two for a rate, none for the fill)."""
        watch = self.watches.get(node_id)
        if watch is None or not watch.samples:
            return None
        samples = watch.samples
        if since is None:
            since = samples[-1].at - self._settings.window_s
        if name == "inbox_fill":
            fills = [s.fill for s in samples if s.at > since and s.fill is not None]
            return round(sum(fills) / len(fills), 3) if fills else None
        counter = "dropped" if name == "drop_rate_per_s" else "backlog"
        rate = _rate_over(samples, counter, since)
        return round(rate, 2) if rate is not None else None

    def source_rate(self, source: str, now: float) -> tuple[float, float | None]:
        """(what the source sends now, its configured rate or None when unlimited): the
        configured rate, or the measured one where that is lower (held back) or none is set."""
        watch = self.watches.get(source)
        if watch is None:
            return 0.0, None
        configured = (watch.knobs or {}).get("rate_hz")
        measured = _rate(watch.samples, "out", now - self._settings.window_s)
        if configured is None:
            return measured, None
        return (min(configured, measured) if measured > 0 else float(configured)), configured

    def generation(self, node_id: str) -> Any:
        """The node's generation at the last look; None for a node not followed."""
        watch = self.watches.get(node_id)
        return watch.generation if watch is not None else None

    def latest_at(self, node_id: str) -> float:
        """When the node was last sampled."""
        samples = self.watches[node_id].samples
        return samples[-1].at if samples else self._clock()

    def knobs(self, node_id: str) -> dict[str, Any]:
        """The node's throttle values at the last look."""
        watch = self.watches.get(node_id)
        return dict(watch.knobs or {}) if watch is not None else {}

    # -- the graph ------------------------------------------------------------------------------

    def refresh_graph(
        self, nodes: dict[str, NodeReport], describe: Callable[[], dict[str, Any]]
    ) -> None:
        """Edges and declared limits from describe(), again whenever nodes or their
        generations change (a swap or a reload)."""
        key = tuple(sorted((n, e.get("generation")) for n, e in nodes.items()))
        if key == self._graph_key:
            return
        described = describe()
        self._edges = [(e["from"], e["to"]) for e in described.get("edges", [])]
        self._declared = {n["id"]: _declared_knobs(n) for n in described.get("nodes", [])}
        self._graph_key = key

    def declares_limits(self) -> bool:
        """True when some node of the graph declares limits for a knob."""
        return any(self._declared.values())

    def bounds(self, node_id: str, knob: str) -> tuple[float, float] | None:
        """[low, high] of a knob the graph declares limits for on this node, else None."""
        if knob not in self._declared.get(node_id, set()):
            return None
        limits = self.watches[node_id].entry.get("limits") or {}
        bounds = limits.get(knob)
        if not isinstance(bounds, list | tuple) or len(bounds) != 2:
            return None
        low, high = bounds
        return float(low), float(high)

    def upstream_sources(self, node_id: str) -> list[str]:
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
        return [n for n, w in self.watches.items() if n in seen and w.entry.get("kind") == "source"]

    def held_back(self, node_id: str) -> bool:
        """A node it sends to is full and blocks, or paused: that one is the bottleneck."""
        threshold = self._settings.fill_threshold
        for source, target in self._edges or []:
            watch = self.watches.get(target)
            if source != node_id or watch is None:
                continue
            fill = watch.samples[-1].fill if watch.samples else None
            blocking = watch.entry.get("overflow") == "block" and (fill or 0) >= threshold
            if blocking or watch.entry.get("paused"):
                return True
        return False


# -- helpers ----------------------------------------------------------------------------------


def _declared_knobs(described: dict[str, Any]) -> set[str]:
    """The knobs the graph file declares `limits:` for on a node of describe(): its
    `declared_limits` (None for a knob not declared); `limits` where that key is missing."""
    declared = described.get("declared_limits", described.get("limits")) or {}
    return {knob for knob, bounds in declared.items() if bounds is not None}


def _append(samples: deque[Sample], sample: Sample, horizon: float) -> bool:
    """Keep `sample` and forget those older than `horizon`; say whether the counters
    restarted (then only `sample` is kept)."""
    if samples and sample.at <= samples[-1].at:
        return False  # a repeated or out-of-order look tells nothing new
    restarted = bool(samples) and _went_back(samples[-1], sample)
    if restarted:
        samples.clear()  # a new run, a reload: rates start over
    samples.append(sample)
    while len(samples) > 2 and sample.at - samples[1].at >= horizon:
        samples.popleft()
    return restarted


def _went_back(old: Sample, new: Sample) -> bool:
    return (
        new.taken < old.taken
        or new.out < old.out
        or new.dropped < old.dropped
        or new.received < old.received
    )


def _at_or_before(samples: deque[Sample], since: float) -> Sample:
    """The newest sample taken at or before `since` (so a window is fully covered), else
    the oldest."""
    chosen = samples[0]
    for sample in samples:
        if sample.at > since:
            break
        chosen = sample
    return chosen


def _rate_over(samples: deque[Sample], counter: str, since: float) -> float | None:
    """Per second increase of `counter` from `since` to the newest sample; None when the
    samples cover no time."""
    if len(samples) < 2:
        return None
    first, last = _at_or_before(samples, since), samples[-1]
    seconds = last.at - first.at
    if seconds <= 0:
        return None
    return max((getattr(last, counter) or 0) - (getattr(first, counter) or 0), 0) / seconds


def _rate(samples: deque[Sample], counter: str, since: float) -> float:
    """As `_rate_over`, 0 when the samples cover no time."""
    rate = _rate_over(samples, counter, since)
    return rate if rate is not None else 0.0
