"""Pacing sources: a token bucket per source, and one shared timer that wakes them.

Each paced source has a `Pacer` (its rate, which operators can change while it runs). A
source with no permit left waits on its event loop's `PaceClock`: one timer for every paced
source, which wakes together all the sources due within `PACE_SLACK_S` of the earliest. So
100 sources at 100 Hz cost about 100 timer wake-ups a second instead of 10,000, and the
packets they make reach the next node as one batch instead of one wake-up each.

Permits fall on a grid shared by every source of a rate (`PACE_GRID_MAX_S`): sources that
started a few milliseconds apart still wake together. A source whose step cannot block runs
it on the clock's timer itself (`Pacer.call_when_due`, a `ClockStep`), with no task
wake-up per packet.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
import weakref
from collections.abc import Callable
from typing import ClassVar

__all__ = ["CATCH_UP_S", "PACE_GRID_MAX_S", "PACE_SLACK_S", "ClockStep", "PaceClock", "Pacer"]

PACE_SLACK_S = 0.001
"""How much earlier than its permit is due a source may be woken, to share a wake-up with
another source due first. It moves when a packet is made, never how many: a permit taken
early is owed (the bucket goes below zero), so no rate drifts, and a source is never more
than one permit ahead of its schedule."""

PACE_GRID_MAX_S = 1.0
"""A source whose period (1 / rate) is longer than `PACE_SLACK_S` and at most this takes its
permits on a grid: the multiples of its period on `time.monotonic()`'s clock. Sources of one
rate (or of rates that are multiples of each other) are then due at the same instants and
share a wake-up, however far apart they started. It moves a source's phase, never its rate:
the first permit after a start, a throttle or a pause waits for the next grid point (less
than one period), and the bucket carries the fraction of a permit that wait earned. A
slower source keeps the phase it started with."""

ABANDONED_MIN = 32
"""Waits ended early (throttles) the clock lets pile up before it sweeps them out."""

CATCH_UP_S = 1.0
"""The most a source makes up at once of the delays that were not its own (a late wake-up,
a wait for room downstream): a loop that stalled for longer loses the rest, so a stall is
not turned into an ever larger burst."""


class ClockStep:
    """A paced source's wait that, when due, runs the source's step on the clock's timer
    instead of waking its task (`Pacer.call_when_due`). Looks like a future to the clock."""

    __slots__ = ("_loop", "_state", "run")

    def __init__(self, run: Callable[[], None], loop: asyncio.AbstractEventLoop) -> None:
        self.run = run
        self._loop = loop
        self._state = 0  # 0 pending, 1 done (ran, or woken by a throttle), 2 cancelled

    def done(self) -> bool:
        return self._state != 0

    def cancelled(self) -> bool:
        return self._state == 2

    def cancel(self) -> bool:
        """Never run it (the source stops): the clock passes over it."""
        if self._state:
            return False
        self._state = 2
        return True

    def set_result(self, _result: None) -> None:
        """Due: run the step now (the clock's timer)."""
        self._state = 1
        self.run()

    def wake_soon(self) -> None:
        """Run the step in the loop's next pass, before it is due (a throttle re-plans)."""
        self._state = 1
        self._loop.call_soon(self.run)


class PaceClock:
    """The one timer of the paced sources on an event loop (`PaceClock.of(loop)`).

    Sleeping sources wait in a heap of deadlines; the loop holds one timer, for the
    earliest. When it fires, every source due within `PACE_SLACK_S` is woken in that
    same pass of the loop (its `ClockStep` run, or its future's task woken).
    """

    __slots__ = ("__weakref__", "_abandoned", "_armed_at", "_heap", "_order", "_timer", "loop")

    _clocks: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PaceClock]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._heap: list[tuple[float, int, asyncio.Future[None] | ClockStep]] = []
        self._order = itertools.count()  # ties: first come, first woken
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at = 0.0
        self._abandoned = 0
        """Waits a throttle ended before they were due (`abandon`) still in the heap; not
        those a stop cancelled, which nobody reports."""

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> PaceClock:
        """The clock of `loop` (made on first use; it goes with the loop)."""
        clock = cls._clocks.get(loop)
        if clock is None:
            clock = cls._clocks[loop] = cls(loop)
        return clock

    def sleep(self, delay: float) -> asyncio.Future[None]:
        """A future done after at most `delay` seconds, maybe up to `PACE_SLACK_S` sooner
        (cancel it, or set its result, to stop waiting)."""
        # Due times are read from `time.monotonic()`, the pacers' own clock, not from
        # `loop.time()`: uvloop's counts whole milliseconds (up to 1 ms behind), so sources
        # due together were filed up to 1 ms early, each by its own error, and the slack
        # that wakes them in one pass shrank to 0-1 ms: groups split over several wake-ups.
        return self.sleep_until(time.monotonic() + delay)

    def sleep_until(self, due: float) -> asyncio.Future[None]:
        """`sleep`, until `due` on `time.monotonic()`'s clock."""
        waiter: asyncio.Future[None] = self.loop.create_future()
        self.file(due, waiter)
        return waiter

    def file(self, due: float, waiter: asyncio.Future[None] | ClockStep) -> None:
        """Wake `waiter` at `due` (`time.monotonic()`'s clock): set its result, which runs a
        `ClockStep`."""
        heapq.heappush(self._heap, (due, next(self._order), waiter))
        if self._timer is None or due < self._armed_at:
            self._arm(due)

    def abandon(self, waiter: asyncio.Future[None] | ClockStep) -> None:
        """`waiter` ended before it was due (a throttle woke its source to re-plan). Its
        entry stays in the heap until its due time, unless such entries make up half of it:
        then they all go, so a source throttled again and again (a controller, a script)
        does not grow the heap by one entry per throttle until their old due times."""
        self._abandoned += 1
        heap = self._heap
        if self._abandoned >= ABANDONED_MIN and 2 * self._abandoned >= len(heap):
            heap[:] = [entry for entry in heap if not entry[2].done()]
            heapq.heapify(heap)
            self._abandoned = 0

    @property
    def sleeping(self) -> int:
        """How many waits are in the heap: pending ones, and some that ended before they
        were due (cancelled, or woken by a throttle) until they are passed over."""
        return len(self._heap)

    def _arm(self, due: float) -> None:
        timer = self._timer
        if timer is not None:
            timer.cancel()
        self._armed_at = due
        # `call_at` takes the loop's clock: CLOCK_MONOTONIC for asyncio and uvloop alike, as
        # `time.monotonic()`. A timer that fires early (uvloop's milliseconds) wakes only
        # what is due within the slack by the precise clock, and is armed again.
        self._timer = self.loop.call_at(due, self._fire)

    def _fire(self) -> None:
        heap = self._heap
        until = time.monotonic() + PACE_SLACK_S
        due: list[asyncio.Future[None] | ClockStep] = []
        while heap and heap[0][0] <= until:
            due.append(heapq.heappop(heap)[2])
        # Steps run below file their next waits: taken out first, a source faster than the
        # slack is not run twice in one pass, and the still-set `_timer` with `_armed_at` at
        # -inf keeps each of them from arming the timer again.
        self._armed_at = -math.inf
        try:
            for waiter in due:
                if not waiter.done():
                    try:
                        waiter.set_result(None)
                    except Exception as exc:  # a step hands its errors to its task: a bug
                        self.loop.call_exception_handler(
                            {"message": "a paced source's step failed", "exception": exc}
                        )
                elif not waiter.cancelled():  # woken by a throttle (`abandon` counted it)
                    self._abandoned -= 1
        finally:
            self._timer = None
            if heap:
                self._arm(heap[0][0])


class Pacer:
    """Hands out permits at `rate_hz` per second (None: unlimited).

    The bucket holds 10 ms of permits (at least 2), so a source catches up on small
    scheduling delays without bursting after a pause or a slow pull. Two delays that are
    not the source's own are made up too, up to `CATCH_UP_S`, so the offered rate holds on
    a busy machine: how late its event loop woke it (a busy machine, a long batch elsewhere
    on the loop), and how long it waited for room downstream (`held_back`: a burst that
    filled an inbox for a moment).

    A source asks `grant`; when it gets 0 it awaits `sleep()` and asks again (`take` does
    both), or has the clock run its next step when due (`call_when_due`).
    """

    __slots__ = ("_burst", "_clock", "_due", "_last", "_owed_s", "_tokens", "_waiter", "rate_hz")

    def __init__(self, rate_hz: float | None) -> None:
        self.rate_hz = rate_hz
        self._burst = _burst(rate_hz)
        self._tokens = 1.0
        self._last = time.monotonic()
        self._clock: PaceClock | None = None
        self._waiter: asyncio.Future[None] | ClockStep | None = None
        self._due: float | None = None
        """When the permit the source sleeps for is due (None: not sleeping)."""
        self._owed_s = 0.0
        """Delays not of the source's making, to be made up (up to CATCH_UP_S)."""

    def set_rate(self, rate_hz: float | None) -> None:
        """Change the rate; a source waiting for a permit re-plans at once, from the part of
        a permit it earned so far (not from nothing: throttles more often than its period
        would starve it)."""
        now = time.monotonic()
        tokens = self._tokens
        if self.rate_hz is not None:  # earned at the old rate since the last `grant`
            tokens += (now - self._last) * self.rate_hz
        self.rate_hz = rate_hz
        self._burst = _burst(rate_hz)
        self._tokens = min(tokens, 1.0)
        self._last = now
        self._due = None
        self._owed_s = 0.0
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if waiter.__class__ is ClockStep:
                waiter.wake_soon()
            else:
                waiter.set_result(None)
            if self._clock is not None:
                self._clock.abandon(waiter)

    def grant(self, wanted: int) -> int:
        """How many of `wanted` packets may go now: 0 when none is due yet (await `sleep()`,
        then ask again)."""
        rate = self.rate_hz
        if rate is None:
            return wanted
        now = time.monotonic()
        burst = self._burst
        due = self._due
        if due is not None:  # woken from a sleep: how late the loop woke us is made up
            self._due = None
            if now > due:
                self._owed_s += now - due
        owed = self._owed_s
        cap = burst + min(owed, CATCH_UP_S) * rate if owed else burst
        tokens = min(cap, self._tokens + (now - self._last) * rate)
        self._last = now
        if tokens >= 1.0:
            granted = min(wanted, int(tokens))
            self._tokens = tokens = tokens - granted
            if owed and tokens <= burst:  # made up
                self._owed_s = 0.0
            return granted
        if tokens + PACE_SLACK_S * rate >= 1.0:  # due within the slack: go now, owe it
            self._tokens = tokens - 1.0
            return 1
        self._tokens = tokens
        return 0

    @property
    def due(self) -> float | None:
        """When the permit the source sleeps for is due (`time.monotonic()`'s clock; None:
        not sleeping)."""
        return self._due

    def resumed(self) -> None:
        """The source was paused: the time it was is not a late wake-up to make up."""
        self._due = None

    def held_back(self, seconds: float) -> None:
        """The source waited `seconds` for room downstream: make that time up (up to
        `CATCH_UP_S`) instead of losing it. A graph that stays full keeps the source waiting
        anyway; one full for a moment (a burst after a stall) does not cost the rate."""
        self._owed_s += seconds

    def sleep(self) -> asyncio.Future[None]:
        """A future done when the next permit is due (maybe up to `PACE_SLACK_S` sooner, and
        at once when the rate changes), on the running loop's shared `PaceClock`."""
        due, clock = self._next_due()
        self._waiter = waiter = clock.sleep_until(due)
        return waiter

    def call_when_due(self, run: Callable[[], None]) -> ClockStep:
        """`sleep`, but `run` is called on the clock's timer when the permit is due (in the
        loop's next pass when the rate changes) instead of a future being set: a source
        whose step cannot block makes its packet without a task wake-up. Cancel the
        returned step to stop waiting."""
        due, clock = self._next_due()
        self._waiter = step = ClockStep(run, clock.loop)
        clock.file(due, step)
        return step

    def _next_due(self) -> tuple[float, PaceClock]:
        """When the next permit is due, on the grid (`PACE_GRID_MAX_S`), and the running
        loop's clock."""
        rate = self.rate_hz
        if rate is None:  # unlimited: nothing to wait for
            due = time.monotonic()
        else:  # the bucket held `_tokens` at `_last` (the last `grant`) and fills at `rate`
            due = self._last + (1.0 - self._tokens) / rate
            period = 1.0 / rate
            if PACE_SLACK_S < period <= PACE_GRID_MAX_S:
                # the next grid point, or the last one if it is within the slack: a
                # permit may go that early anyway (it is owed)
                due = math.ceil((due - PACE_SLACK_S) / period) * period
            self._due = due
        loop = asyncio.get_running_loop()
        clock = self._clock
        if clock is None or clock.loop is not loop:
            clock = self._clock = PaceClock.of(loop)
        return due, clock

    async def take(self, wanted: int) -> int:
        """Wait for at least one permit; return how many of `wanted` may go now (>= 1)."""
        while not (granted := self.grant(wanted)):
            await self.sleep()
        return granted


def _burst(rate_hz: float | None) -> float:
    """The permits the bucket holds: 10 ms worth, at least 2 (a wake-up late by less than a
    period is made up by the next permit)."""
    return 0.0 if rate_hz is None else max(2.0, rate_hz / 100)
