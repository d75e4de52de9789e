"""The circuit breaker's state machine, driven by a hand-moved clock (no sleeping)."""

from __future__ import annotations

import pytest

from schnitzel import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def breaker(clock: FakeClock, failures: int = 3, cooldown: float = 5.0, cap: float = 30.0):
    return CircuitBreaker(failures, cooldown, cap, clock=clock)


def test_closed_breaker_admits_at_once(clock: FakeClock) -> None:
    assert breaker(clock).admit() == 0.0


def test_opens_only_after_consecutive_failures(clock: FakeClock) -> None:
    b = breaker(clock, failures=3)
    assert b.record_failure() is None and b.record_failure() is None
    b.record_success()  # breaks the run
    assert b.record_failure() is None and b.record_failure() is None
    assert b.state is BreakerState.CLOSED
    change = b.record_failure()
    assert change is not None
    assert (change.old, change.new, change.failures, change.cooldown_s) == (
        BreakerState.CLOSED,
        BreakerState.OPEN,
        3,
        5.0,
    )


def test_no_request_is_admitted_while_open(clock: FakeClock) -> None:
    b = breaker(clock, failures=1, cooldown=5.0)
    b.record_failure()
    assert b.admit() == pytest.approx(5.0)
    clock.advance(3.0)
    assert b.admit() == pytest.approx(2.0)
    clock.advance(1.999)
    assert b.admit() > 0
    assert b.state is BreakerState.OPEN


def test_exactly_one_probe_goes_out_after_the_cooldown(clock: FakeClock) -> None:
    b = breaker(clock, failures=1, cooldown=5.0)
    b.record_failure()
    clock.advance(5.0)
    assert b.admit() == 0.0  # the probe
    assert b.state is BreakerState.HALF_OPEN
    assert b.admit() > 0 and b.admit() > 0  # everyone else waits for the probe's verdict
    clock.advance(100.0)
    assert b.admit() > 0  # still: only the probe's result moves the breaker


def test_a_successful_probe_closes_the_circuit_and_resets_the_cooldown(clock: FakeClock) -> None:
    b = breaker(clock, failures=1, cooldown=5.0)
    b.record_failure()
    clock.advance(5.0)
    b.admit()
    b.record_failure()  # failed probe: cooldown 10
    clock.advance(10.0)
    assert b.admit() == 0.0
    change = b.record_success()
    assert change is not None and (change.old, change.new) == (
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    )
    assert (b.failures, b.cooldown_s, b.admit()) == (0, 5.0, 0.0)
    assert b.record_success() is None  # closed stays closed: nothing to log


def test_a_failed_probe_reopens_for_twice_as_long_up_to_the_cap(clock: FakeClock) -> None:
    b = breaker(clock, failures=1, cooldown=5.0, cap=30.0)
    b.record_failure()
    cooldowns = []
    for _ in range(5):
        clock.advance(b.admit())
        assert b.admit() == 0.0
        change = b.record_failure()
        assert change is not None and change.old is BreakerState.HALF_OPEN
        assert change.new is BreakerState.OPEN
        cooldowns.append(b.cooldown_s)
        assert b.admit() == pytest.approx(b.cooldown_s)
    assert cooldowns == [10.0, 20.0, 30.0, 30.0, 30.0]


def test_a_released_probe_lets_the_next_caller_probe_at_once(clock: FakeClock) -> None:
    b = breaker(clock, failures=1, cooldown=5.0)
    b.record_failure()
    clock.advance(5.0)
    assert b.admit() == 0.0
    b.release()  # the probe was cancelled: no verdict
    assert b.state is BreakerState.OPEN
    assert b.admit() == 0.0 and b.state is BreakerState.HALF_OPEN
    assert b.cooldown_s == 5.0


def test_release_while_closed_changes_nothing(clock: FakeClock) -> None:
    b = breaker(clock)
    b.release()
    assert (b.state, b.admit()) == (BreakerState.CLOSED, 0.0)


def test_a_late_failure_while_open_changes_nothing(clock: FakeClock) -> None:
    b = breaker(clock, failures=1, cooldown=5.0)
    b.record_failure()
    clock.advance(2.0)
    assert b.record_failure() is None
    assert b.admit() == pytest.approx(3.0)  # the cooldown did not restart


def test_a_late_success_while_open_closes_the_circuit(clock: FakeClock) -> None:
    b = breaker(clock, failures=1)
    b.record_failure()
    change = b.record_success()
    assert change is not None and change.new is BreakerState.CLOSED
    assert b.admit() == 0.0


@pytest.mark.parametrize(("failures", "cooldown", "cap"), [(0, 1.0, 2.0), (1, 0.0, 2.0), (1, 3, 2)])
def test_nonsense_settings_are_refused(failures: int, cooldown: float, cap: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failures, cooldown, cap)
