"""Time fusion: the readings of partner streams matched to a primary packet's time.

Pure logic, no runtime imports. Each partner keeps a bounded buffer of readings ordered by
event time (readings out of order are inserted in place). For a primary packet at time `t`:

- `nearest`: the reading closest to `t` within the tolerance (the earlier one on a tie);
- `interpolate`: each field linearly between the last reading at or before `t` and the first
  at or after it, both within the tolerance; with only one side in tolerance, that reading
  (method `nearest`); a reading exactly at `t` is taken as it is.

A partner is *ready* for `t` once it has a reading at or after `t` (or past `t + tolerance`):
no later reading can then be nearer, nor change an interpolation. Readings out of order within
a partner stream are not waited for.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from math import isfinite
from typing import Any, Literal

__all__ = ["Match", "PartnerBuffer", "interpolate"]

Strategy = Literal["nearest", "interpolate"]


@dataclass(frozen=True)
class Match:
    """What a partner contributes to one primary packet."""

    values: dict[str, Any]
    ts: float
    """The reading's time (the primary's time for an interpolation)."""
    method: str
    """`nearest` or `interpolate`: how the values were found."""
    dt: float
    """Partner time minus primary time (0 for an interpolation), seconds."""

    def as_payload(self) -> dict[str, Any]:
        return {**self.values, "ts": self.ts, "dt": self.dt, "method": self.method}


def interpolate(
    t: float, before: tuple[float, dict[str, Any]], after: tuple[float, dict[str, Any]]
) -> dict[str, Any]:
    """Each field linearly between two readings, at time `t` (between their times)."""
    (t0, v0), (t1, v1) = before, after
    if t1 == t0:
        return dict(v0)
    w = (t - t0) / (t1 - t0)
    return {name: _between(v0[name], v1[name], w) for name in v0}


def _between(low: float, high: float, w: float) -> float:
    value = low + (high - low) * w
    # `high - low` of 1.7e308 and -1.7e308 overflows; the same point, weighted, does not
    return value if isfinite(value) else low * (1 - w) + high * w


@dataclass
class PartnerBuffer:
    """One partner stream's recent readings, ordered by time, at most `max_readings`."""

    name: str
    strategy: Strategy
    tolerance_s: float
    max_readings: int
    times: list[float] = field(default_factory=list)
    readings: list[dict[str, Any]] = field(default_factory=list)
    newest: float = float("-inf")
    dropped: int = 0
    """Readings dropped to keep the bound (the oldest first)."""

    def add(self, ts: float, values: dict[str, Any]) -> None:
        """Keep one reading (in time order)."""
        times = self.times
        if not times or ts >= times[-1]:
            times.append(ts)
            self.readings.append(values)
        else:
            index = bisect.bisect_right(times, ts)
            times.insert(index, ts)
            self.readings.insert(index, values)
        self.newest = max(self.newest, ts)
        if len(times) > self.max_readings:
            excess = len(times) - self.max_readings
            del times[:excess]
            del self.readings[:excess]
            self.dropped += excess

    def ready(self, t: float) -> bool:
        """True when no reading still to come can change the match for time `t`."""
        return self.newest >= t

    def match(self, t: float) -> Match | None:
        """The partner's values for time `t`, or None when nothing is within tolerance."""
        times = self.times
        if not times:
            return None
        tol = self.tolerance_s
        right = bisect.bisect_left(times, t)  # first reading at or after t
        after = right if right < len(times) and times[right] - t <= tol else None
        left = right - 1
        before = left if left >= 0 and t - times[left] <= tol else None
        if after is not None and times[after] == t:
            return Match(dict(self.readings[after]), t, "nearest", 0.0)
        if self.strategy == "interpolate" and before is not None and after is not None:
            values = interpolate(
                t,
                (times[before], self.readings[before]),
                (times[after], self.readings[after]),
            )
            return Match(values, t, "interpolate", 0.0)
        if before is None and after is None:
            return None
        if after is None or (before is not None and t - times[before] <= times[after] - t):
            index = before
        else:
            index = after
        assert index is not None
        return Match(dict(self.readings[index]), times[index], "nearest", times[index] - t)

    def forget_before(self, t: float) -> None:
        """Drop readings no primary at or after `t` can use (older than `t - tolerance`)."""
        cut = bisect.bisect_left(self.times, t - self.tolerance_s)
        if cut:
            del self.times[:cut]
            del self.readings[:cut]
