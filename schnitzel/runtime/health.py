"""A node's health from what its counters did over the last window, with the reason."""

from __future__ import annotations

from schnitzel.runtime.metrics import RateSample

__all__ = ["Health", "judge_health"]

STALL_S = 5.0
"""A node with queued packets and no progress for this long is stalled."""
FULL_FRACTION = 0.9


def _span(seconds: float) -> str:
    """A window's length for a reason: whole seconds, but a run shorter than one (the final
    report of a short run) is not said as `in the last 0 s`."""
    return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.2g} s"


class Health:
    """The three health levels, as strings (the run report's values)."""

    OK = "ok"
    DEGRADED = "degraded"
    FAILING = "failing"


def judge_health(
    *,
    crashed: str | None,
    store_gone: str = "",
    delta: tuple[float, RateSample] | None,
    depth: int,
    capacity: int | None,
    idle_s: float,
    paused: bool,
    store_problem: str = "",
    trouble: str = "",
    parked: str = "",
) -> tuple[str, str]:
    """(health, reason). `delta` is what the counters did over the window; `idle_s` is the
    time since the node last made progress; `store_gone` how a durable inbox's store process
    died (the run stops); `store_problem` what ails a durable inbox;
    `trouble` what the plugin reports it is handling (a retry): it comes first in the reason,
    since it says why; `parked` a durable inbox's parked packets waiting for an operator
    (degraded, after any error rate)."""
    if crashed:
        return Health.FAILING, f"stopped with an error: {crashed}"
    if store_gone:
        return Health.FAILING, store_gone
    if paused:
        return Health.OK, "paused by an operator"
    if depth and idle_s >= STALL_S:
        stalled = f"stalled: {depth} packets queued, no progress for {idle_s:.0f} s"
        return Health.FAILING, f"{trouble}; {stalled}" if trouble else stalled
    if store_problem:
        return Health.DEGRADED, f"{trouble}; {store_problem}" if trouble else store_problem
    also = f"; {parked}" if parked else ""  # the errors were parked: say where they wait
    if delta is not None:
        seconds, d = delta
        handled = max(d.processed, d.emitted)
        if d.errors and d.errors * 2 >= max(handled, 1):
            of = f" (of {handled} packets)" if handled else ""
            failing = f"{d.errors} errors in {_span(seconds)}{of}{also}"
            return Health.FAILING, f"{trouble}; {failing}" if trouble else failing
        if trouble:
            return Health.DEGRADED, f"{trouble}{also}"
        if d.errors:
            return Health.DEGRADED, f"{d.errors} errors in the last {_span(seconds)}{also}"
        if d.dropped:
            return Health.DEGRADED, f"dropped {d.dropped} packets in the last {_span(seconds)}"
    if trouble:
        return Health.DEGRADED, f"{trouble}{also}"
    if parked:
        return Health.DEGRADED, parked
    if capacity and depth >= FULL_FRACTION * capacity:
        return Health.DEGRADED, f"inbox {100 * depth // capacity}% full"
    return Health.OK, ""
