"""Pacing many sources: the shared clock that wakes sources due together, a pacer that keeps
each source's rate exact over time (early by at most the slack, late wake-ups made up),
fairness between paced sources, throttles on a running source, and tick tasks only for
plugins that tick (started by a swap that installs one, ended when swapped away)."""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from collections import defaultdict
from pathlib import Path

import pytest

from schnitzel import Runtime, RuntimeControl
from schnitzel.runtime.pacer import (
    ABANDONED_MIN,
    CATCH_UP_S,
    PACE_SLACK_S,
    ClockStep,
    PaceClock,
    Pacer,
)
from tests.runtime import plugins
from tests.runtime.conftest import FakeClock
from tests.runtime.harness import graph_from, run, steer

GUARD_S = 60.0
"""Hang guard only: nothing here waits for a set amount of real time."""
TEST_PLUGINS = "tests.runtime.plugins"


async def _until(predicate: object, guard_s: float = GUARD_S) -> None:
    async with asyncio.timeout(guard_s):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.005)


# --- the pacer's arithmetic (a fake clock) -----------------------------------------------


@pytest.mark.parametrize("rate_hz", [7.0, 100.0, 2500.0])
def test_a_source_asking_at_random_times_gets_exactly_its_rate_over_time(
    clock: FakeClock, rate_hz: float
) -> None:
    pacer = Pacer(rate_hz)
    rng = random.Random(18)
    seconds, granted, most = 20.0, 0, 0
    end = clock.now + seconds
    while clock.now < end:
        got = pacer.grant(256)
        granted += got
        most = max(most, got)
        clock.now += rng.uniform(0.0, 1.0 / rate_hz)  # early, on time, or a period late
    # the first permit is there at once, and one may be taken early (owed): no drift
    assert rate_hz * seconds - 1 <= granted <= rate_hz * seconds + 2
    assert most <= max(2, rate_hz / 100) + 1  # never more than the bucket at once


def test_a_permit_due_within_the_slack_goes_early_and_is_owed(clock: FakeClock) -> None:
    pacer = Pacer(100.0)  # a permit every 10 ms
    assert pacer.grant(5) == 1
    early = PACE_SLACK_S / 2
    clock.now += 0.010 - early
    assert pacer.grant(5) == 1  # due within the slack: it goes with the others
    clock.now += 0.010
    assert pacer.grant(5) == 1  # still on the original schedule, early by the same
    clock.now += early / 2
    assert pacer.grant(5) == 0  # the next one is due in ~10 ms: nothing is ahead


def test_a_late_wake_up_and_a_wait_downstream_are_made_up_but_other_time_is_not(
    clock: FakeClock,
) -> None:
    async def scenario() -> tuple[int, int, int]:
        late, held_back, elsewhere = Pacer(100.0), Pacer(100.0), Pacer(100.0)
        for pacer in (late, held_back, elsewhere):
            assert pacer.grant(256) == 1
            assert pacer.grant(256) == 0
        late.sleep().cancel()  # the permit is due in 10 ms; the loop wakes it 50 ms late
        held_back.held_back(0.0505)  # it waited 50.5 ms for room downstream
        clock.now += 0.0605
        return late.grant(256), held_back.grant(256), elsewhere.grant(256)

    late, held_back, elsewhere = asyncio.run(asyncio.wait_for(scenario(), GUARD_S))
    assert late == 6  # the permit due at 10 ms, and the 5 of the 50.5 ms it was late
    assert held_back == 6
    assert elsewhere == 2  # paused, or a slow pull: only the bucket


def test_a_stalled_loop_is_made_up_for_at_most_catch_up_s(clock: FakeClock) -> None:
    async def scenario() -> int:
        pacer = Pacer(100.0)
        assert pacer.grant(1) == 1
        assert pacer.grant(1) == 0
        pacer.sleep().cancel()
        clock.now += 3600.0
        return pacer.grant(1_000_000)

    assert asyncio.run(asyncio.wait_for(scenario(), GUARD_S)) == 2 + CATCH_UP_S * 100


@pytest.mark.parametrize(("rate_hz", "every_s"), [(0.5, 1.5), (100.0, 0.0035)])
def test_throttles_to_the_same_rate_keep_the_permit_already_earned(
    clock: FakeClock, rate_hz: float, every_s: float
) -> None:
    async def scenario() -> int:
        pacer = Pacer(rate_hz)
        granted = 0
        end = clock.now + 60.0
        throttle_at = clock.now + every_s
        while clock.now < end:
            got = pacer.grant(256)
            granted += got
            if got:
                continue
            pacer.sleep().cancel()  # as a source does: it asks again when its permit is due
            due = pacer.due
            assert due is not None
            if due < throttle_at:
                clock.now = max(clock.now, due)
            else:  # an operator (or a script) sets the rate it has: the source re-plans
                clock.now = throttle_at
                pacer.set_rate(rate_hz)
                throttle_at += every_s
        return granted

    granted = asyncio.run(asyncio.wait_for(scenario(), GUARD_S))
    # a throttle re-plans from the part of a permit earned so far: before, it started from
    # nothing, and a 0.5 Hz source throttled every 1.5 s never made a packet after its first
    assert rate_hz * 60.0 - 1 <= granted <= rate_hz * 60.0 + 2


def test_sources_of_one_rate_started_apart_are_due_at_the_same_instants(
    clock: FakeClock,
) -> None:
    starts = [0.0, 0.0013, 0.0047, 0.0071, 0.0099]  # as sources come up, a few ms apart
    end = 1000.5

    async def scenario() -> tuple[list[list[float]], list[int]]:
        pacers = []
        for offset in starts:
            clock.now = 1000.0 + offset
            pacer = Pacer(100.0)
            assert pacer.grant(1) == 1  # the first permit is there at once
            pacers.append(pacer)
        woken: list[tuple[float, int]] = []
        for index, pacer in enumerate(pacers):
            pacer.sleep().cancel()
            assert pacer.due is not None
            woken.append((pacer.due, index))
        heapq.heapify(woken)
        dues: list[list[float]] = [[] for _ in pacers]
        granted = [1] * len(pacers)
        while woken[0][0] < end:  # each woken at its due time, in time order
            clock.now, index = heapq.heappop(woken)
            dues[index].append(clock.now)
            granted[index] += pacers[index].grant(1)
            pacers[index].sleep().cancel()
            due = pacers[index].due
            assert due is not None
            heapq.heappush(woken, (due, index))
        return dues, granted

    dues, granted = asyncio.run(asyncio.wait_for(scenario(), GUARD_S))
    later = [{due for due in mine if due > 1000.02} for mine in dues]
    assert all(instants == later[0] for instants in later)  # one wake-up for all of them
    assert len(later[0]) == 47  # every 10 ms from 1000.03 to 1000.49
    for count, offset in zip(granted, starts, strict=True):  # each keeps its own rate
        assert (end - 1000.0 - offset) * 100 - 1 <= count <= (end - 1000.0 - offset) * 100 + 1


# --- the shared clock (the real event loop) ------------------------------------------------


def test_the_clock_wakes_every_source_due_within_the_slack_in_one_pass() -> None:
    async def scenario() -> tuple[bool, bool]:
        clock = PaceClock.of(asyncio.get_running_loop())
        now = time.monotonic()  # one reading: a busy machine may pause between two
        first = clock.sleep_until(now + 0.010)
        soon_after = clock.sleep_until(now + 0.010 + PACE_SLACK_S / 2)
        much_later = clock.sleep_until(now + GUARD_S)
        await first
        together = soon_after.done()  # woken in the same pass as `first`, not by a timer
        alone = not much_later.done()
        much_later.cancel()
        return together, alone

    together, alone = asyncio.run(asyncio.wait_for(scenario(), GUARD_S))
    assert together
    assert alone


def test_a_cancelled_wait_is_passed_over_and_the_next_one_still_wakes() -> None:
    async def scenario() -> bool:
        clock = PaceClock.of(asyncio.get_running_loop())
        cancelled = clock.sleep(0.001)
        later = clock.sleep(0.020)
        cancelled.cancel()  # a stop cancelled the source waiting on it
        await later
        return cancelled.cancelled()

    assert asyncio.run(asyncio.wait_for(scenario(), GUARD_S))


def test_each_event_loop_has_its_own_clock() -> None:
    async def clock_of_this_loop() -> PaceClock:
        return PaceClock.of(asyncio.get_running_loop())

    pacer = Pacer(1000.0)

    async def take_twice() -> int:
        return await pacer.take(1) + await pacer.take(1)

    first = asyncio.run(clock_of_this_loop())
    assert asyncio.run(clock_of_this_loop()) is not first
    # a pacer outlives a loop (a Runtime built before `asyncio.run`): it finds the new one
    assert asyncio.run(asyncio.wait_for(take_twice(), GUARD_S)) == 2
    assert asyncio.run(asyncio.wait_for(take_twice(), GUARD_S)) == 2


# --- many paced sources through the runtime ------------------------------------------------


SOURCES = 20
RATE_HZ = 200.0


def _paced_sources(rate_hz: float = RATE_HZ, sources: int = SOURCES) -> str:
    lines = ["nodes:"]
    lines += [
        f"  - {{id: s{i}, kind: source, plugin: synthetic, config: {{rate_hz: {rate_hz}}}}}"
        for i in range(sources)
    ]
    lines += [
        "  - {id: mid, kind: transform, plugin: passthrough}",
        f'  - {{id: out, kind: sink, plugin: "{TEST_PLUGINS}:Recorder"}}',
        "edges:",
    ]
    lines += [f"  - {{from: s{i}, to: mid}}" for i in range(sources)]
    lines += ["  - {from: mid, to: out}"]
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_many_paced_sources_keep_their_rate_and_share_alike(tmp_path: Path) -> None:
    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        out = runtime.nodes["out"].metrics
        await _until(lambda: out.delivered >= SOURCES * RATE_HZ)  # ~1 s of every source

    steer(graph_from(tmp_path, _paced_sources()), tmp_path / "state", steps)
    stamps: dict[str, list[float]] = defaultdict(list)
    for packet in plugins.RECORDS["out"]:
        stamps[packet.source_id].append(packet.ts)
    assert len(stamps) == SOURCES
    # while every source ran (a busy loop may start one some 10-40 ms after another, and a
    # late start is not made up): woken alike, none falls behind. A late wake-up made up
    # and the window's ends move a count by a few packets on a busy machine (a spread of
    # up to 6 in ~200 seen at load 10, with and without the pace clock's steps)
    start = max(ts[0] for ts in stamps.values())
    end = min(ts[-1] for ts in stamps.values())
    counts = [sum(start <= t <= end for t in ts) for ts in stamps.values()]
    assert min(counts) >= max(counts) * 0.95, counts
    for source_id, ts in stamps.items():
        assert ts == sorted(ts), source_id
        rate = (len(ts) - 1) / (ts[-1] - ts[0])  # by the packets' own timestamps
        assert rate == pytest.approx(RATE_HZ, rel=0.05), (source_id, rate)


PACED_PULLS = f"""
nodes:
  - {{id: a, kind: source, plugin: "{TEST_PLUGINS}:PacedPulls", config: {{count: 20}}}}
  - {{id: b, kind: source, plugin: "{TEST_PLUGINS}:PacedPulls", config: {{count: 20}}}}
  - {{id: mid, kind: transform, plugin: passthrough}}
  - {{id: out, kind: sink, plugin: "{TEST_PLUGINS}:Recorder"}}
edges:
  - {{from: a, to: mid}}
  - {{from: b, to: mid}}
  - {{from: mid, to: out}}
"""


def test_a_paced_source_makes_its_packets_on_the_pace_clocks_timer_not_in_its_task(
    tmp_path: Path,
) -> None:
    report = run(graph_from(tmp_path, PACED_PULLS), tmp_path)
    assert report["totals"]["delivered"] == 40
    for source in ("a", "b"):
        # the first pull when its task parks (the bucket's permits: 1 or 2 packets); then
        # each packet on the clock's timer, no task woken
        made = plugins.PULLED_IN[source]
        in_task = made.count("task")
        assert 1 <= in_task <= 2
        assert made == ["task"] * in_task + ["timer"] * (20 - in_task)


def test_a_paced_source_under_a_packet_budget_makes_its_packets_in_its_task(
    tmp_path: Path,
) -> None:
    report = run(graph_from(tmp_path, PACED_PULLS), tmp_path, max_packets=30)
    assert report["totals"]["delivered"] == 30
    made = plugins.PULLED_IN["a"] + plugins.PULLED_IN["b"]
    assert made == ["task"] * len(made)  # a budget shared by sources may make it wait


def test_a_throttle_wakes_a_paced_source_waiting_for_its_next_permit(tmp_path: Path) -> None:
    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        out = runtime.nodes["out"].metrics
        await _until(lambda: out.delivered >= 1)  # the first permit; the next is 1000 s away
        control.throttle("s0", 10_000.0)
        await _until(lambda: out.delivered >= 100)

    report = steer(graph_from(tmp_path, _paced_sources(0.001, 1)), tmp_path / "state", steps)
    assert report["nodes"]["s0"]["rate_hz"] == 10_000.0


# --- ticks only for plugins that tick ------------------------------------------------------


TICKING = f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{rate_hz: 100.0}}}}
  - {{id: plain, kind: transform, plugin: passthrough}}
  - {{id: mid, kind: transform, plugin: "{TEST_PLUGINS}:Ticking"}}
  - {{id: out, kind: sink, plugin: "{TEST_PLUGINS}:Recorder"}}
edges:
  - {{from: src, to: plain}}
  - {{from: plain, to: mid}}
  - {{from: mid, to: out}}
"""


def test_only_a_node_whose_plugin_ticks_gets_a_tick_task(tmp_path: Path) -> None:
    seen: list[set[str]] = []

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await _until(lambda: plugins.TICKS["mid"] >= 3)
        seen.append(runtime.tickers.running)

    steer(graph_from(tmp_path, TICKING), tmp_path / "state", steps)
    assert seen == [{"mid"}]


def test_a_swap_starts_a_ticker_for_a_plugin_that_ticks_and_ends_it_when_swapped_away(
    tmp_path: Path,
) -> None:
    seen: list[set[str]] = []

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await _until(lambda: plugins.TICKS["mid"] >= 1)  # the run has started its tickers
        seen.append(runtime.tickers.running)
        await control.swap("plain", f"{TEST_PLUGINS}:Ticking")
        seen.append(runtime.tickers.running)
        await _until(lambda: plugins.TICKS["plain"] >= 3)
        await control.swap("plain", "passthrough")
        await _until(lambda: "plain" not in runtime.tickers.running)
        ticks, mid_ticks = plugins.TICKS["plain"], plugins.TICKS["mid"]
        await _until(lambda: plugins.TICKS["mid"] >= mid_ticks + 3)  # time for a few ticks
        seen.append(runtime.tickers.running)
        assert plugins.TICKS["plain"] == ticks  # the passthrough is never ticked

    steer(graph_from(tmp_path, TICKING), tmp_path / "state", steps)
    assert seen == [{"mid"}, {"mid", "plain"}, {"mid"}]


def test_a_paused_source_woken_from_its_pacer_wait_makes_nothing_until_resumed(
    tmp_path: Path,
) -> None:
    made: list[int] = []

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        source = runtime.nodes["s0"].metrics
        await _until(lambda: source.emitted >= 1)  # the first permit; the next is 1000 s away
        control.pause("s0")
        control.throttle("s0", 10_000.0)  # wakes the source from its wait for the pacer
        for _ in range(50):  # loop passes, not time: the woken source runs in the first few
            await asyncio.sleep(0)
        made.append(source.emitted)
        control.resume("s0")
        await _until(lambda: source.emitted >= 100)

    steer(graph_from(tmp_path, _paced_sources(0.001, 1)), tmp_path / "state", steps)
    assert made == [1]  # paused: the permit waits for the resume


def test_a_swap_to_a_plugin_that_ticks_sooner_does_not_wait_out_the_old_interval(
    tmp_path: Path,
) -> None:
    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await control.swap("plain", f"{TEST_PLUGINS}:SlowTicking")
        await _until(lambda: "plain" in runtime.tickers.running)  # asleep for an hour
        await control.swap("plain", f"{TEST_PLUGINS}:Ticking")
        await _until(lambda: plugins.TICKS["plain"] >= 3)  # every 10 ms, from now on

    steer(graph_from(tmp_path, TICKING), tmp_path / "state", steps)
    assert plugins.TICKS["plain"] >= 3


def test_swaps_to_and_from_a_ticking_plugin_in_quick_succession_leave_one_ticker(
    tmp_path: Path,
) -> None:
    seen: list[set[str]] = []

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await _until(lambda: plugins.TICKS["mid"] >= 1)
        for _ in range(10):  # no tick of either plugin between two swaps, nor a wait
            await control.swap("plain", f"{TEST_PLUGINS}:Ticking")
            await control.swap("plain", "passthrough")
        await _until(lambda: "plain" not in runtime.tickers.running)
        seen.append(runtime.tickers.running)
        for _ in range(10):
            await control.swap("plain", "passthrough")
            await control.swap("plain", f"{TEST_PLUGINS}:Ticking")
        ticks = plugins.TICKS["plain"]
        await _until(lambda: plugins.TICKS["plain"] >= ticks + 3)
        seen.append(runtime.tickers.running)

    steer(graph_from(tmp_path, TICKING), tmp_path / "state", steps)
    assert seen == [{"mid"}, {"mid", "plain"}]


def test_a_source_throttled_again_and_again_does_not_grow_the_clock() -> None:
    async def scenario() -> tuple[int, int]:
        clock = PaceClock.of(asyncio.get_running_loop())
        others = [clock.sleep(GUARD_S) for _ in range(10)]  # sources still waiting
        pacer = Pacer(0.01)  # a permit every 100 s
        most = 0
        for i in range(1_000):
            pacer.grant(1)
            waiter = pacer.sleep()
            pacer.set_rate(0.01 + i / 1_000)  # a throttle: woken at once, to re-plan
            assert waiter.done()
            most = max(most, clock.sleeping)
        still_waiting = sum(not other.done() for other in others)
        for other in others:
            other.cancel()
        return most, still_waiting

    most, still_waiting = asyncio.run(asyncio.wait_for(scenario(), GUARD_S))
    assert still_waiting == 10  # sweeping the abandoned waits kept the others
    assert most <= 2 * 32 + 10  # not one entry per throttle (1,000) until its old due time


def test_a_source_on_the_clocks_steps_throttled_again_and_again_does_not_grow_the_clock(
    tmp_path: Path,
) -> None:
    most: list[int] = []

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        source = runtime.nodes["s0"].metrics
        await _until(lambda: source.emitted >= 1)  # parked; its next step is 1000 s away
        clock = PaceClock.of(asyncio.get_running_loop())
        for i in range(300):
            control.throttle("s0", 0.001 + i / 1e6)  # each wakes its step to re-plan
            await asyncio.sleep(0)  # the re-planned step runs and files the next one
            most.append(clock.sleeping)
        control.throttle("s0", 10_000.0)
        await _until(lambda: source.emitted >= 100)  # still one chain of steps: it runs

    report = steer(graph_from(tmp_path, _paced_sources(0.001, 1)), tmp_path / "state", steps)
    assert report["nodes"]["s0"]["rate_hz"] == 10_000.0
    assert max(most) <= 2 * ABANDONED_MIN + 2  # not one entry per throttle (300)


def test_waits_a_stop_cancelled_do_not_put_off_sweeping_the_ones_throttles_ended() -> None:
    async def scenario() -> int:
        clock = PaceClock.of(asyncio.get_running_loop())
        stopped = [clock.sleep(0.001) for _ in range(40)]
        for waiter in stopped:  # a stop cancelled the sources waiting on these
            waiter.cancel()
        pacer = Pacer(0.01)  # a permit every 100 s
        for i in range(ABANDONED_MIN - 1):  # throttles: woken at once, entries left behind
            pacer.grant(1)
            pacer.sleep()
            pacer.set_rate(0.01 + i / 1_000)
        await clock.sleep(0.002)  # its wake-up passes over the cancelled waits
        pacer.grant(1)
        pacer.sleep()
        pacer.set_rate(1.0)  # one more: now half the heap, so they all go
        live = clock.sleep(GUARD_S)
        left = clock.sleeping
        live.cancel()
        return left

    left = asyncio.run(asyncio.wait_for(scenario(), GUARD_S))
    # only the wait still pending; before, passing over the 40 cancelled waits took them off
    # the count of abandoned ones, and the 32 abandoned entries stayed
    assert left == 1


FULL_AFTER_ONE = f"""
nodes:
  - {{id: s, kind: source, plugin: synthetic, config: {{rate_hz: 2.0}}}}
  - {{id: out, kind: sink, plugin: "{TEST_PLUGINS}:Gated", inbox: {{max: 1}}}}
edges:
  - {{from: s, to: out}}
"""


@pytest.mark.parametrize("force", [False, True])
def test_a_stop_in_the_pass_a_clock_step_hands_its_task_a_pull_loses_none_uncounted(
    tmp_path: Path, force: bool
) -> None:
    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        worker = runtime.workers["s"]
        inbox = runtime.nodes["out"].inbox
        assert inbox is not None
        clock = PaceClock.of(asyncio.get_running_loop())
        # the sink holds a packet in its (gated) hand and one is queued: the source's next
        # step on the clock finds the inbox full and hands its pull to its parked task
        await _until(lambda: len(inbox) == 1 and worker._next_step is not None)  # type: ignore[attr-defined]
        step = worker._next_step  # type: ignore[attr-defined]
        due = next(entry[0] for entry in clock._heap if entry[2] is step)

        def stop() -> None:  # in the same pass, right after that step (a signal, a timer)
            control.stop(force=force)
            plugins.GATES["out"].set()

        clock.file(due, ClockStep(stop, clock.loop))
        await _until(lambda: runtime.stopping)

    report = steer(graph_from(tmp_path, FULL_AFTER_ONE), tmp_path / "state", steps)
    source, out = report["nodes"]["s"], report["nodes"]["out"]
    # steer checked the counts add up: the sink received every packet the source emitted
    if not force:  # drained: every packet delivered
        assert out["out"] == source["out"], (source, out)
