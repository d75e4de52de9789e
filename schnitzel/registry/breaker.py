"""A circuit breaker for one backend: stop sending while it keeps failing, then probe.
Part of the SDK (`from schnitzel import CircuitBreaker`): the http and nats sinks use it.

    closed ──(`failures` failures in a row)──▶ open ──(cooldown over)──▶ half-open
       ▲                                        ▲                          │
       └──────────── the probe succeeds ────────┼──────────────────────────┤
                                                └──── the probe fails ─────┘
                                                      (cooldown doubles, up to a cap)

Pure logic: no sleeping, no I/O, no logging. The clock is injected (`time.monotonic` by
default), so tests drive it by hand. Callers ask `admit()` before each request and report
the result with `record_success()` / `record_failure()`; the state changes those return are
for the caller to log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

__all__ = ["BreakerChange", "BreakerState", "CircuitBreaker"]


class BreakerState(Enum):
    """Where the breaker stands."""

    CLOSED = "closed"
    """Requests go out; consecutive failures are counted."""
    OPEN = "open"
    """No request goes out until the cooldown is over."""
    HALF_OPEN = "half-open"
    """The cooldown is over and one probe request is out; everyone else waits for its result."""


@dataclass(frozen=True)
class BreakerChange:
    """A state change, returned by `record_success` / `record_failure` for logging."""

    old: BreakerState
    new: BreakerState
    failures: int
    """Consecutive failures so far (0 after a success)."""
    cooldown_s: float
    """How long the circuit now stays open (meaningful when `new` is OPEN)."""


class CircuitBreaker:
    """Opens after `failures` consecutive failures; probes once per cooldown while open.

    The cooldown starts at `cooldown_s`, doubles after each failed probe up to
    `max_cooldown_s`, and goes back to `cooldown_s` once a request succeeds.
    """

    def __init__(
        self,
        failures: int,
        cooldown_s: float,
        max_cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1:
            raise ValueError(f"failures must be >= 1 (got {failures})")
        if cooldown_s <= 0 or max_cooldown_s < cooldown_s:
            raise ValueError(
                f"need 0 < cooldown_s <= max_cooldown_s (got {cooldown_s}, {max_cooldown_s})"
            )
        self.threshold = failures
        self.base_cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self._clock = clock
        self.state = BreakerState.CLOSED
        self.failures = 0
        """Consecutive failures; reset by a success."""
        self.cooldown_s = cooldown_s
        """The current cooldown: how long the circuit stays open each time it opens."""
        self._opened_at = 0.0

    def admit(self) -> float:
        """0.0 when a request may go out now, else the seconds to wait before asking again.

        Once the cooldown is over, the first caller is admitted as the probe (the breaker is
        then half-open); callers asking while the probe is out are told to wait a cooldown.
        """
        if self.state is BreakerState.CLOSED:
            return 0.0
        if self.state is BreakerState.OPEN:
            remaining = self._opened_at + self.cooldown_s - self._clock()
            if remaining > 0:
                return remaining
            self.state = BreakerState.HALF_OPEN
            return 0.0
        return self.cooldown_s

    def record_success(self) -> BreakerChange | None:
        """The backend answered: close the circuit (from any state) and reset the counts."""
        old = self.state
        self.failures = 0
        self.state = BreakerState.CLOSED
        self.cooldown_s = self.base_cooldown_s
        return None if old is BreakerState.CLOSED else self._change(old)

    def record_failure(self) -> BreakerChange | None:
        """A request failed in a way worth retrying: count it; open or reopen the circuit."""
        old = self.state
        self.failures += 1
        if old is BreakerState.HALF_OPEN:
            self.cooldown_s = min(self.cooldown_s * 2, self.max_cooldown_s)
            self._open()
        elif old is BreakerState.CLOSED and self.failures >= self.threshold:
            self._open()
        # OPEN: a request admitted before the circuit opened failed late; it changes nothing.
        return None if self.state is old else self._change(old)

    def release(self) -> None:
        """An admitted request ended with no verdict on the backend (cancelled, or refused
        before it was sent). If it was the probe, the next caller probes at once."""
        if self.state is BreakerState.HALF_OPEN:
            self.state = BreakerState.OPEN
            self._opened_at = self._clock() - self.cooldown_s

    def _open(self) -> None:
        self.state = BreakerState.OPEN
        self._opened_at = self._clock()

    def _change(self, old: BreakerState) -> BreakerChange:
        return BreakerChange(old, self.state, self.failures, self.cooldown_s)
