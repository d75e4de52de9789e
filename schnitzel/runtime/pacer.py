"""A token bucket that paces a source to a rate operators can change while it runs."""

from __future__ import annotations

import asyncio
import contextlib
import time

__all__ = ["Pacer"]


class Pacer:
    """Hands out permits at `rate_hz` per second (None: unlimited).

    The bucket holds 10 ms of permits (at least 2), so a source catches up on small
    scheduling delays without bursting after a pause.
    """

    __slots__ = ("_changed", "_last", "_tokens", "rate_hz")

    def __init__(self, rate_hz: float | None) -> None:
        self.rate_hz = rate_hz
        self._tokens = 1.0
        self._last = time.monotonic()
        self._changed = asyncio.Event()

    def set_rate(self, rate_hz: float | None) -> None:
        """Change the rate; a source waiting for a permit re-plans at once."""
        self.rate_hz = rate_hz
        self._tokens = min(self._tokens, 1.0)
        self._last = time.monotonic()
        self._changed.set()

    async def take(self, wanted: int) -> int:
        """Wait for at least one permit; return how many of `wanted` may go now (>= 1)."""
        while True:
            rate = self.rate_hz
            if rate is None:
                return wanted
            now = time.monotonic()
            burst = max(2.0, rate / 100)  # >= 2: a late wake-up is made up by the next permit
            self._tokens = min(burst, self._tokens + (now - self._last) * rate)
            self._last = now
            if self._tokens >= 1.0:
                granted = min(wanted, int(self._tokens))
                self._tokens -= granted
                return granted
            delay = (1.0 - self._tokens) / rate
            if delay < 0.05:  # short waits: a plain sleep is far cheaper than wait_for
                await asyncio.sleep(delay)
                continue
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), delay)
