"""Aggregates of one window: what `window` computes over the values it collected.

Pure logic, no runtime imports. An `Accumulator` keeps count, sum, mean and the sum of
squared deviations (Welford's update, merged with Chan's formula when two session windows
join), min, max, first and last by event time, and the values themselves only when a
percentile was asked for. Percentiles interpolate linearly between the two nearest ranks,
as `numpy.percentile` does by default; `stddev` is the population standard deviation
(`numpy.std` with `ddof=0`).
"""

from __future__ import annotations

import math
import re

__all__ = [
    "AGGREGATE_NAMES",
    "Accumulator",
    "check_aggregate",
    "percentile",
    "percentile_of",
]

AGGREGATE_NAMES = ("count", "sum", "mean", "min", "max", "stddev", "first", "last")
"""The aggregates besides percentiles (`p50`, `p99`, `p99.9`: any `p` with 0 to 100)."""

_PERCENTILE = re.compile(r"^p(100|[0-9]{1,2}(\.[0-9]+)?)$")

VALUE_BYTES = 8
"""What one kept value costs in the state bound (a float in a list)."""
WINDOW_BYTES = 600
"""What one open window costs in the state bound besides its values: tracemalloc measured
587 bytes per tumbling window of 1,000 keys (window, accumulator, index and heap entries)."""


def check_aggregate(name: str) -> str:
    """`name` if it is a known aggregate, else a ValueError that lists the known ones."""
    if name in AGGREGATE_NAMES or _PERCENTILE.match(name):
        return name
    known = ", ".join(AGGREGATE_NAMES)
    raise ValueError(f"unknown aggregate {name!r}; use {known} or a percentile such as p95")


def percentile_of(name: str) -> float | None:
    """The percentile an aggregate name asks for (`p95` -> 95.0), or None."""
    return float(name[1:]) if _PERCENTILE.match(name) else None


def percentile(ordered: list[float], q: float) -> float:
    """The q-th percentile (0..100) of sorted values, interpolated linearly between the two
    nearest ranks (numpy's default, `method="linear"`)."""
    position = (len(ordered) - 1) * q / 100.0
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    low, high = ordered[below], ordered[above]
    if not fraction:
        return low
    between = low + (high - low) * fraction
    # `high - low` of 1.7e308 and -1.7e308 overflows; the same point, weighted, does not
    return between if math.isfinite(between) else low * (1 - fraction) + high * fraction


class Accumulator:
    """The running aggregates of one window."""

    __slots__ = (
        "count",
        "first",
        "first_ts",
        "last",
        "last_ts",
        "m2",
        "max",
        "mean",
        "min",
        "sum",
        "values",
    )

    def __init__(self, keep_values: bool) -> None:
        self.count = 0
        self.sum = 0.0
        self.mean = 0.0
        self.m2 = 0.0
        """Sum of squared deviations from the mean (Welford)."""
        self.min = math.inf
        self.max = -math.inf
        self.first = self.last = math.nan
        self.first_ts = math.inf
        self.last_ts = -math.inf
        self.values: list[float] | None = [] if keep_values else None

    def add(self, value: float, ts: float) -> None:
        """Take one value seen at event time `ts` (out of order is fine)."""
        count = self.count = self.count + 1
        self.sum += value
        mean = self.mean
        delta = value - mean
        mean = self.mean = mean + delta / count
        self.m2 += delta * (value - mean)
        if value < self.min:  # noqa: PLR1730 (a comparison costs less than a call, per packet)
            self.min = value
        if value > self.max:  # noqa: PLR1730
            self.max = value
        if ts < self.first_ts:
            self.first, self.first_ts = value, ts
        if ts >= self.last_ts:
            self.last, self.last_ts = value, ts
        if self.values is not None:
            self.values.append(value)

    def add_count(self, ts: float) -> None:
        """Take one packet when only counting (no value field)."""
        self.count += 1
        self.first_ts = min(self.first_ts, ts)
        self.last_ts = max(ts, self.last_ts)

    def merge(self, other: Accumulator) -> None:
        """Take in another window's aggregates (two sessions that now touch)."""
        if other.count == 0:
            return
        total = self.count + other.count
        delta = other.mean - self.mean
        self.m2 += other.m2 + delta * delta * self.count * other.count / total
        self.mean += delta * other.count / total
        self.count = total
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        if other.first_ts < self.first_ts:
            self.first, self.first_ts = other.first, other.first_ts
        if other.last_ts >= self.last_ts:
            self.last, self.last_ts = other.last, other.last_ts
        if self.values is not None and other.values is not None:
            self.values.extend(other.values)

    @property
    def nbytes(self) -> int:
        """What this window costs in the state bound (an estimate)."""
        return WINDOW_BYTES + (VALUE_BYTES * len(self.values) if self.values is not None else 0)

    def result(self, names: tuple[str, ...]) -> dict[str, float | int | None]:
        """The asked aggregates; None where a window has no value (no numeric field seen)."""
        out: dict[str, float | int | None] = {}
        ordered: list[float] | None = None
        has_values = self.count > 0 and not math.isinf(self.min)
        for name in names:
            if name == "count":
                out[name] = self.count
            elif not has_values:
                out[name] = None
            elif name == "sum":  # finite readings can sum past a float's range: null
                out[name] = self.sum if math.isfinite(self.sum) else None
            elif name == "mean":  # (the running mean too, by the way: 1.7e308, -1.7e308)
                out[name] = self.mean if math.isfinite(self.mean) else None
            elif name == "min":
                out[name] = self.min
            elif name == "max":
                out[name] = self.max
            elif name == "stddev":
                finite = math.isfinite(self.mean) and math.isfinite(self.m2)
                out[name] = math.sqrt(max(self.m2, 0.0) / self.count) if finite else None
            elif name == "first":
                out[name] = self.first
            elif name == "last":
                out[name] = self.last
            else:
                if ordered is None:
                    ordered = sorted(self.values or ())
                q = percentile_of(name)
                out[name] = percentile(ordered, q) if ordered and q is not None else None
        return out
