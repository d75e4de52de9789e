"""The fixed-bucket histogram reads percentiles back within 10% of the true values."""

from __future__ import annotations

import math
import random

import pytest

from schnitzel.contract.packet import StreamPacket
from schnitzel.runtime.histogram import Histogram

QUANTILES = (0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0)


def exact(values: list[float], q: float) -> float:
    """The smallest value with at least q of all values at or below it."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def assert_within_10_percent(values: list[float]) -> None:
    histogram = Histogram()
    for value in values:
        histogram.record(value)
    for q, read in zip(QUANTILES, histogram.percentiles(*QUANTILES), strict=True):
        true = exact(values, q)
        assert abs(read - true) <= 0.1 * true, (q, read, true)


def test_percentiles_of_uniform_samples_are_within_10_percent() -> None:
    rng = random.Random(1234)
    assert_within_10_percent([rng.uniform(0.0005, 0.25) for _ in range(20_000)])


def test_percentiles_of_log_normal_samples_are_within_10_percent() -> None:
    rng = random.Random(5678)
    assert_within_10_percent([rng.lognormvariate(math.log(0.002), 1.5) for _ in range(20_000)])


def test_an_empty_histogram_reads_zero_for_every_quantile() -> None:
    assert Histogram().percentiles(0.5, 0.99, 1.0) == [0.0, 0.0, 0.0]


def test_percentiles_come_back_in_the_order_they_were_asked() -> None:
    histogram = Histogram()
    for value in [0.001] * 50 + [0.1] * 50:
        histogram.record(value)
    high, low = histogram.percentiles(0.99, 0.25)
    assert high == pytest.approx(0.1, rel=0.1)
    assert low == pytest.approx(0.001, rel=0.1)


def test_a_weight_counts_as_that_many_observations() -> None:
    weighted, repeated = Histogram(), Histogram()
    weighted.record(0.003, weight=9)
    weighted.record(2.0)
    for _ in range(9):
        repeated.record(0.003)
    repeated.record(2.0)
    assert weighted.counts == repeated.counts
    assert weighted.count == repeated.count == 10
    assert weighted.total == pytest.approx(repeated.total)
    median, top = weighted.percentiles(0.5, 0.95)
    assert median == pytest.approx(0.003, rel=0.1)
    assert top == pytest.approx(2.0, rel=0.1)


@pytest.mark.parametrize("stride", [1, 3, 16])
@pytest.mark.parametrize("together", [True, False])
def test_ages_of_a_batch_count_as_a_record_per_sampled_packet(stride: int, together: bool) -> None:
    now = 1_800_000_000.0
    if together:  # made by one new_many call: one ts
        packets = StreamPacket.new_many("sensor", "s", range(40), [None] * 40, ts=now - 0.003)
    else:
        packets = [StreamPacket.new("sensor", "s", n, ts=now - n * 0.0007) for n in range(40)]
    fast, slow = Histogram(), Histogram()
    fast.record_ages(now, packets, stride)
    for packet in packets[::stride]:
        slow.record(now - packet.ts, stride)
    assert fast.counts == slow.counts and fast.count == slow.count == 40 + (-40 % stride)
    assert fast.total == pytest.approx(slow.total)
    fast.record_ages(now, [], stride)
    assert fast.count == slow.count
