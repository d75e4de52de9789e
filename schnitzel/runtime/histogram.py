"""A fixed-bucket latency histogram: O(1) to record, cheap to read percentiles from."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import accumulate
from operator import attrgetter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from schnitzel.contract.packet import StreamPacket

__all__ = ["Histogram"]

# Bucket upper bounds in seconds: 1 µs to ~150 s, each 10% wider than the last, so any
# percentile is read back within 10% of the true value.
_BOUNDS: tuple[float, ...] = tuple(1e-6 * 1.1**i for i in range(200))
_ts = attrgetter("ts")


class Histogram:
    """Counts of durations (seconds) per bucket. `record` is one C bisect and one add."""

    __slots__ = ("count", "counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BOUNDS) + 1)
        self.count = 0
        self.total = 0.0

    def record(self, seconds: float, weight: int = 1) -> None:
        """Add `weight` observations of `seconds`."""
        self.counts[bisect_right(_BOUNDS, seconds)] += weight
        self.count += weight
        self.total += seconds * weight

    def record_ages(self, now: float, packets: list[StreamPacket], stride: int) -> None:
        """Add the age (`now - packet.ts`) of every `stride`-th packet, each weighing
        `stride`: one loop here instead of a `record` call per sample (the hot path)."""
        times = list(map(_ts, packets[::stride]))
        if not times:
            return
        counts, bounds = self.counts, _BOUNDS
        samples = len(times)
        self.count += samples * stride
        if times.count(times[0]) == samples:  # made together (`new_many`): one age
            age = now - times[0]
            counts[bisect_right(bounds, age)] += samples * stride
            self.total += age * samples * stride
            return
        total = 0.0
        for ts in times:
            age = now - ts
            counts[bisect_right(bounds, age)] += stride
            total += age
        self.total += total * stride

    def percentiles(self, *quantiles: float) -> list[float]:
        """The given quantiles (0..1) in seconds, each the upper bound of its bucket; 0.0 when
        empty."""
        if not self.count:
            return [0.0] * len(quantiles)
        running = list(accumulate(self.counts))  # C loops: a snapshot reads many of these
        last = len(_BOUNDS) - 1
        return [_BOUNDS[min(bisect_left(running, max(q * self.count, 1)), last)] for q in quantiles]
