"""The source pacer, the shared packet budget and the health verdict."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from schnitzel.contract.packet import StreamPacket
from schnitzel.runtime import Runtime
from schnitzel.runtime.budget import Budget
from schnitzel.runtime.health import STALL_S, Health, judge_health
from schnitzel.runtime.metrics import RateSample
from schnitzel.runtime.node import Node
from schnitzel.runtime.pacer import Pacer
from schnitzel.runtime.tick import TICK_SLICE, tick_nodes_in_slices
from tests.runtime.conftest import FakeClock
from tests.runtime.harness import graph_from

GUARD_S = 60.0
"""Hang guard only: nothing here should wait for real time."""


# --- Pacer -------------------------------------------------------------------------------


@pytest.mark.parametrize(("rate_hz", "burst"), [(50.0, 2), (1000.0, 10), (100_000.0, 1000)])
def test_pacer_never_grants_more_than_the_burst_after_a_long_pause(
    clock: FakeClock, rate_hz: float, burst: int
) -> None:
    pacer = Pacer(rate_hz)
    clock.now += 3600.0  # an hour of unused permits must not turn into a burst

    granted = asyncio.run(asyncio.wait_for(pacer.take(1_000_000), GUARD_S))
    assert granted == burst


def test_pacer_grants_only_what_accumulated_at_the_rate(clock: FakeClock) -> None:
    pacer = Pacer(1000.0)
    clock.now += 1.0

    async def scenario() -> None:
        assert await pacer.take(500) == 10  # the bucket holds 10 ms worth
        clock.now += 0.0045  # 4.5 permits
        assert await pacer.take(500) == 4
        clock.now += 0.002  # 0.5 left + 2
        assert await pacer.take(1) == 1
        assert await pacer.take(500) == 1

    asyncio.run(asyncio.wait_for(scenario(), GUARD_S))


def test_pacer_without_a_rate_grants_everything_asked() -> None:
    async def scenario() -> None:
        pacer = Pacer(None)
        assert await pacer.take(1) == 1
        assert await pacer.take(123_456) == 123_456

    asyncio.run(asyncio.wait_for(scenario(), GUARD_S))


@pytest.mark.parametrize("new_rate", [None, 1_000_000.0])
def test_set_rate_wakes_a_take_waiting_on_a_very_low_rate(new_rate: float | None) -> None:
    async def scenario() -> int:
        pacer = Pacer(0.001)  # one permit per 1000 s
        assert await pacer.take(5) == 1  # the first permit is there at once
        waiting = asyncio.create_task(pacer.take(5))
        await asyncio.sleep(0)  # one scheduling step: the task parks in its wait
        assert not waiting.done()
        pacer.set_rate(new_rate)
        return await waiting

    granted = asyncio.run(asyncio.wait_for(scenario(), GUARD_S))
    assert 1 <= granted <= 5
    if new_rate is None:
        assert granted == 5


# --- Budget ------------------------------------------------------------------------------


def test_budget_without_a_limit_grants_everything_and_is_never_spent() -> None:
    budget = Budget(None)
    assert budget.take(10**9) == 10**9
    budget.settle(10**9, 5)
    assert budget.remaining is None
    assert not budget.spent


def test_budget_grants_up_to_what_remains_and_is_spent_once_reservations_settle() -> None:
    budget = Budget(10)
    assert budget.take(4) == 4
    assert budget.take(10) == 6
    assert budget.take(1) == 0
    assert not budget.spent  # reserved, not produced yet
    budget.settle(4, 4)
    budget.settle(6, 6)
    assert budget.spent


def test_an_unused_reservation_returns_to_the_pool_and_wakes_waiting_sources() -> None:
    async def scenario() -> None:
        budget = Budget(10)
        assert budget.take(8) == 8
        assert budget.take(5) == 2
        waiting = asyncio.create_task(budget.changed.wait())
        await asyncio.sleep(0)
        budget.settle(8, 5)  # that source ended after producing 5
        await asyncio.wait_for(waiting, GUARD_S)
        assert budget.remaining == 3
        assert budget.take(100) == 3
        assert budget.take(1) == 0

    asyncio.run(scenario())


# --- Health ------------------------------------------------------------------------------


def window(
    *, processed: int = 100, emitted: int = 100, dropped: int = 0, errors: int = 0
) -> tuple[float, RateSample]:
    return (10.0, RateSample(10.0, processed, processed, emitted, dropped, errors))


def judge(
    *,
    crashed: str | None = None,
    delta: tuple[float, RateSample] | None = None,
    depth: int = 0,
    capacity: int | None = 100,
    idle_s: float = 0.0,
    paused: bool = False,
) -> tuple[str, str]:
    return judge_health(
        crashed=crashed,
        delta=delta,
        depth=depth,
        capacity=capacity,
        idle_s=idle_s,
        paused=paused,
    )


def test_a_crashed_node_is_failing_with_its_error_even_when_paused() -> None:
    health, reason = judge(crashed="KeyError: 'x'", delta=window(), paused=True)
    assert health == Health.FAILING
    assert "KeyError: 'x'" in reason


def test_a_node_with_queued_packets_and_no_progress_is_failing_as_stalled() -> None:
    health, reason = judge(depth=7, idle_s=STALL_S, delta=window())
    assert health == Health.FAILING
    assert "stalled" in reason and "7 packets" in reason


def test_an_empty_idle_node_is_not_stalled() -> None:
    assert judge(depth=0, idle_s=10 * STALL_S) == (Health.OK, "")


@pytest.mark.parametrize(("errors", "handled"), [(50, 100), (80, 100), (3, 0)])
def test_errors_on_half_or_more_of_the_packets_mean_failing(errors: int, handled: int) -> None:
    health, reason = judge(delta=window(processed=handled, emitted=handled, errors=errors))
    assert health == Health.FAILING
    assert f"{errors} errors" in reason


def test_errors_are_measured_against_the_larger_of_processed_and_emitted() -> None:
    health, _ = judge(delta=window(processed=10, emitted=100, errors=10))
    assert health == Health.DEGRADED


def test_some_errors_mean_degraded() -> None:
    health, reason = judge(delta=window(errors=49))
    assert health == Health.DEGRADED
    assert "49 errors" in reason


def test_drops_mean_degraded() -> None:
    health, reason = judge(delta=window(dropped=3))
    assert health == Health.DEGRADED
    assert "dropped 3" in reason


@pytest.mark.parametrize(
    ("seconds", "said"), [(10.0, "in the last 10 s"), (0.35, "in the last 0.35 s")]
)
def test_the_reason_says_the_window_a_short_run_had(seconds: float, said: str) -> None:
    # The final report of a run shorter than a second once said `in the last 0 s`.
    _, reason = judge(delta=(seconds, RateSample(seconds, 10, 10, 10, 3, 0)))
    assert reason == f"dropped 3 packets {said}"


@pytest.mark.parametrize(("depth", "expected"), [(89, Health.OK), (90, Health.DEGRADED)])
def test_an_inbox_at_least_90_percent_full_means_degraded(depth: int, expected: str) -> None:
    health, reason = judge(depth=depth, capacity=100, delta=window())
    assert health == expected
    if expected == Health.DEGRADED:
        assert "90% full" in reason


def test_a_paused_node_is_ok_with_the_reason_even_with_a_queue_and_no_progress() -> None:
    health, reason = judge(paused=True, depth=100, idle_s=10 * STALL_S, delta=window(errors=99))
    assert health == Health.OK
    assert reason == "paused by an operator"


def test_a_healthy_node_is_ok_without_a_reason() -> None:
    assert judge(delta=window(), depth=10) == (Health.OK, "")
    assert judge(delta=None, capacity=None, depth=10**6) == (Health.OK, "")


# --- Health on the first metrics tick -----------------------------------------------------


def test_a_node_unhealthy_at_the_first_tick_keeps_metrics_ticking(tmp_path: Path) -> None:
    """A restart with a nearly full inbox or store is degraded from the first sample; that
    first change must be debounced like any other, not stop rates and health for the run."""
    graph = graph_from(
        tmp_path,
        """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 2}}
  - {id: out, kind: sink, plugin: "null", inbox: {max: 2}}
edges:
  - {from: src, to: out}
""",
    )
    runtime = Runtime(graph, tmp_path / "state")
    packets = [StreamPacket.new("sensor", "src", n, {}) for n in (0, 1)]

    async def fill_then_tick() -> None:
        await runtime.nodes["out"].inbox.put(packets)
        runtime._tick_once()
        runtime._tick_once()

    asyncio.run(fill_then_tick())
    assert runtime.nodes["out"].health == Health.DEGRADED
    assert "100% full" in runtime.nodes["out"].health_reason


def test_the_periodic_tick_of_a_big_graph_lets_the_graph_run_between_slices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tick samples about 10 us a node: a thousand nodes in one go would hold every packet
    in flight for ~10 ms once a second. It takes TICK_SLICE nodes per pass of the loop."""
    sources = 3 * TICK_SLICE + 5
    body = "nodes:\n" + "".join(
        f"  - {{id: s{i}, kind: source, plugin: synthetic, config: {{count: 1}}}}\n"
        for i in range(sources)
    )
    body += '  - {id: out, kind: sink, plugin: "null"}\nedges:\n'
    body += "".join(f"  - {{from: s{i}, to: out}}\n" for i in range(sources))
    runtime = Runtime(graph_from(tmp_path, body), tmp_path / "state")
    passes = 0
    sampled_in_pass: list[int] = []
    sample = Node.update_percentiles

    def counted(node: Node) -> None:
        sampled_in_pass.append(passes)
        sample(node)

    async def tick_while_the_loop_runs() -> None:
        nonlocal passes

        async def count_passes() -> None:
            nonlocal passes
            while True:
                await asyncio.sleep(0)
                passes += 1

        counter = asyncio.create_task(count_passes())
        await asyncio.sleep(0)
        monkeypatch.setattr(Node, "update_percentiles", counted)
        await tick_nodes_in_slices(runtime.nodes, runtime.workers, runtime.events)
        counter.cancel()

    asyncio.run(asyncio.wait_for(tick_while_the_loop_runs(), GUARD_S))
    assert len(sampled_in_pass) == len(runtime.nodes)  # every node, once
    per_pass = Counter(sampled_in_pass)
    assert max(per_pass.values()) == TICK_SLICE
    assert len(per_pass) == 4  # 3 full slices and the rest, each in a pass of its own
