"""Rates come from counter samples over a window, and are never negative.

The cause of the negative `rate_in_per_s` (-23.4) seen in a report: a swap that interrupts a
durable node's stuck call gives the batch back to the store and takes it off `processed`
(schnitzel/runtime/runners.py, `_interruptible_call`). A window whose first sample saw the
batch counted and whose last saw it given back had a negative increase.
"""

from __future__ import annotations

from schnitzel.runtime.metrics import NodeMetrics, RateWindow


def test_a_batch_given_back_within_the_window_makes_no_negative_rate() -> None:
    metrics, window = NodeMetrics(), RateWindow(window_s=10.0)
    metrics.received = metrics.processed = 234  # the node took a batch and is stuck on it
    window.sample(metrics, now=0.0)
    metrics.processed -= 234  # a swap interrupted the call: the batch is back in the store
    window.sample(metrics, now=10.0)
    delta = window.delta()
    assert delta is not None
    seconds, increase = delta
    assert seconds == 10.0
    assert increase.processed == 0  # was -234: -23.4 per second
    assert increase.received == 0


def test_work_done_after_a_give_back_is_counted_once_it_is_redone() -> None:
    metrics, window = NodeMetrics(), RateWindow(window_s=10.0)
    window.sample(metrics, now=0.0)
    metrics.processed = 100
    window.sample(metrics, now=1.0)
    metrics.processed -= 100  # given back
    metrics.processed += 100  # taken again by the new plugin
    metrics.processed += 50
    window.sample(metrics, now=2.0)
    delta = window.delta()
    assert delta is not None
    assert delta[1].processed == 150  # the first sample is the window's start


def test_counters_that_only_grow_give_their_increase_over_the_window() -> None:
    metrics, window = NodeMetrics(), RateWindow(window_s=10.0)
    for second in range(25):
        metrics.processed += 7
        metrics.emitted += 5
        window.sample(metrics, now=float(second))
    delta = window.delta()
    assert delta is not None
    seconds, increase = delta
    assert increase.processed == round(7 * seconds)
    assert increase.emitted == round(5 * seconds)
