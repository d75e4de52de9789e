"""What the controller proposes for a pressured node: which knob to turn, by how much, and the
texts that tell an operator why (the situation in numbers) and what it should do.

What it proposes for N, in order of preference (only knobs the graph declares `limits:` for:
declaring them is the operator's consent):

1. raise N's `concurrency` by at most `max(1, ceil(current * max_step))`, within its limits;
2. lower the rate of the source upstream of N that sends the most, so that what arrives at
   N falls to 90% of what N handles, by at most `max_step` of its rate (rounded to three
   significant digits, upwards where that keeps the cut within `max_step`), within its
   limits (an unlimited source's rate is what it measurably emits). An unlimited source
   with declared rate limits cannot be set back to unlimited (the control API refuses a
   rate without a bound then): a rollback sets it to the top of its limits instead, so it is
   only slowed to below that top (else a rollback could not undo anything);
3. raise N's `sample_every` by at most `max(1, ceil(current * max_step))`: lossy, and the
   rationale says so.

Whether a proposal may be made now (cooldown, vetoes, one at a time) is the controller's call.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from schnitzel.control.controller_watch import Load, Watcher, WatchSettings

__all__ = ["HEADROOM", "Proposal", "RuleSettings", "Rules", "num"]

HEADROOM = 0.9
"""A lowered source rate aims at 90% of what the pressured node handles."""


class RuleSettings(WatchSettings, Protocol):
    """The settings the proposals depend on (`ControllerSettings` has them)."""

    @property
    def max_step(self) -> float: ...


@dataclass(frozen=True)
class Proposal:
    """One throttle change on `target`, with what it replaces and the words for it."""

    target: str
    args: dict[str, Any]
    before: dict[str, Any]
    summary: str
    reason: str
    expected: str


class Rules:
    """Turns what was measured on a pressured node into candidate changes, best first."""

    def __init__(self, watcher: Watcher, settings: RuleSettings) -> None:
        self._watcher = watcher
        self._settings = settings

    def proposals(self, load: Load) -> Iterator[Proposal]:
        """The candidate changes for a pressured node, in order of preference."""
        yield from self._more_concurrency(load)
        yield from self._slower_sources(load)
        yield from self._more_sampling(load)

    def situation(self, load: Load) -> str:
        """What is wrong, in numbers: 'inbox of `up` 96% full for 12 s, 40 drops/s; ...'."""
        node = load.node
        watches = self._watcher.watches
        if load.backlog is not None:
            first, last = load.backlog
            growth = (last - first) / load.high_for if load.high_for > 0 else 0.0
            text = (
                f"durable backlog of {node!r} grew {first} -> {last} packets in "
                f"{num(load.high_for)} s (+{num(growth)}/s)"
            )
        else:
            text = f"inbox of {node!r} {load.fill or 0:.0%} full for {num(load.high_for)} s"
        if load.drops > 0:
            text += f", {num(load.drops)} drops/s"
        elif watches[node].entry.get("overflow") == "block":
            text += ", overflow block: backpressure holds the sources back"
        sink = watches[node].entry.get("kind") == "sink"
        doing = f"delivers {num(load.delivers)}/s" if sink else f"handles {num(load.handles)}/s"
        now = self._watcher.latest_at(node)
        senders = [
            (s, self._watcher.source_rate(s, now)[0]) for s in self._watcher.upstream_sources(node)
        ]
        if len(senders) == 1:
            upstream = f"{senders[0][0]!r} sends {num(senders[0][1])}/s"
        elif senders:
            upstream = " and ".join(f"{s!r} {num(r)}/s" for s, r in senders) + " send"
        else:
            upstream = f"{num(load.arrives)}/s arrive"
        return f"{text}; it {doing} while {upstream}"

    # -- the three rules ------------------------------------------------------------------------

    def _more_concurrency(self, load: Load) -> Iterator[Proposal]:
        node = load.node
        for current, new, top in self._step_up(node, "concurrency"):
            estimate = load.handles * new / current
            yield Proposal(
                node,
                {"concurrency": new},
                {"concurrency": current},
                f"raise the concurrency of {node!r} from {current} to {new}",
                f"{current} call{'s' if current > 1 else ''} at once cannot keep up; "
                f"its limits allow up to {num(top)}",
                self._expected(
                    load, estimate, f"{node!r} handles up to ~{num(estimate)}/s", load.demand
                ),
            )

    def _slower_sources(self, load: Load) -> Iterator[Proposal]:
        now = self._watcher.latest_at(load.node)
        sources = self._watcher.upstream_sources(load.node)
        rates = {s: self._watcher.source_rate(s, now) for s in sources}
        total = sum(r for r, _configured in rates.values())
        if total <= 0 or load.arrives <= 0:
            return
        factor = HEADROOM * load.handles / load.arrives
        cut = total * (1 - factor)  # in packets per second of the sources
        ranked = sorted(rates, key=lambda s: rates[s][0], reverse=True)
        for source in ranked:
            bounds = self._watcher.bounds(source, "rate_hz")
            rate, configured = rates[source]
            if bounds is None or rate <= 0 or cut <= 0:
                continue
            low, top = bounds
            floor = max(low, rate * (1 - self._settings.max_step))
            aim = max(floor, rate - cut)
            new = min(max(_round_rate(aim, floor), low), top)
            if new >= rate * 0.99:
                continue  # at its lowest already, or its top is not below its rate
            if configured is None and new >= top:
                continue  # a rollback (to the top: see the module docstring) would undo nothing
            arrives = (total - rate + new) * load.arrives / total
            now_text = f"{num(rate)}/s" if configured is not None else f"unlimited, ~{num(rate)}/s"
            undo = ""
            if configured is None:
                undo = (
                    f"; a rollback would set it to {num(top)}/s, the top of its limits "
                    "(unlimited is outside them)"
                )
            yield Proposal(
                source,
                {"rate_hz": new},
                {"rate_hz": configured},
                f"lower the rate of {source!r} from {now_text} to {num(new)}/s",
                f"{load.node!r} cannot take more; {source!r} sends the most upstream of it "
                f"(its limits allow down to {num(low)}/s){undo}",
                self._expected(
                    load, load.handles, f"about {num(arrives)}/s arrive at {load.node!r}", arrives
                ),
            )

    def _more_sampling(self, load: Load) -> Iterator[Proposal]:
        node = load.node
        for current, new, _top in self._step_up(node, "sample_every"):
            kept = load.arrives * current / new
            estimate = load.handles * new / current  # skipped packets cost next to nothing
            yield Proposal(
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
                    f"{node!r} processes ~{num(kept)}/s of what arrives and skips the rest",
                    load.demand,
                ),
            )

    def _step_up(self, node: str, knob: str) -> Iterator[tuple[int, int, float]]:
        """(current, raised, top) of a whole-number knob with declared limits, raised by at
        most `max(1, ceil(current * max_step))` and not past its top; nothing when it cannot
        go up."""
        bounds = self._watcher.bounds(node, knob)
        current = (self._watcher.watches[node].knobs or {}).get(knob)
        if bounds is None or not isinstance(current, int) or current >= bounds[1]:
            return
        new = int(min(bounds[1], current + max(1, math.ceil(current * self._settings.max_step))))
        yield current, new, bounds[1]

    def _expected(self, load: Load, handles: float, effect: str, arrives: float) -> str:
        """What the change should do, in numbers: `effect`, then drops and fill, when the
        node then handles `handles` per second of `arrives` wanting in."""
        within = f"within ~{num(self._settings.verify_s)} s"
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
            return f"{effect}; the backlog of {load.node!r} grows ~{num(left)}/s (not 0 yet)"
        if load.drops > 0:
            return (
                f"{effect}; drops on {load.node!r} fall from {num(load.drops)}/s to about "
                f"{num(left)}/s {within} (not 0 yet: a further step may follow)"
            )
        return f"{effect}; its inbox stays full, but the sources are held back less"


# -- helpers ----------------------------------------------------------------------------------


def _round_rate(rate: float, floor: float) -> float:
    """`rate` to three significant digits, rounded up where rounding to the nearest would go
    below `floor` (the lowest the rate may be cut to: a bigger cut than `max_step`)."""
    nearest = float(f"{rate:.3g}")
    if nearest >= floor * (1 - 1e-9) or rate <= 0:  # 1e-9: float noise is no bigger cut
        return nearest
    step = 10.0 ** (math.floor(math.log10(rate)) - 2)
    return float(f"{math.ceil(rate / step) * step:.3g}")


def num(value: Any) -> str:
    """A number as an operator reads it: 200, 48, 3.5, 0.25; None as 'unlimited'."""
    if value is None:
        return "unlimited"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() or abs(value) >= 10:
        return f"{value:.0f}"
    return f"{value:.2g}" if abs(value) < 1 else f"{value:.1f}"
