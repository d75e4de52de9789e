"""The watermark of a `window` node: how far event time has certainly moved.

Pure logic, no runtime imports. The watermark is the node's, not a key's: the newest event
time seen on any packet. A key that goes quiet therefore does not hold its windows open;
they close as soon as any other key moves event time past them. When the whole input goes
quiet for `idle_timeout_s` (wall clock), the watermark advances with the wall clock from the
newest event time seen, so the last windows close without waiting for the next packet. It
never moves back.
"""

from __future__ import annotations

import math

__all__ = ["Watermark"]


class Watermark:
    """Event-time progress, with an optional processing-time advance when the input is idle."""

    __slots__ = ("idle_timeout_s", "last_arrival", "newest", "value")

    def __init__(self, idle_timeout_s: float | None) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.newest = -math.inf
        """The newest event time seen."""
        self.last_arrival = -math.inf
        """Wall-clock time the last packet arrived."""
        self.value = -math.inf
        """The watermark: windows ending at or before it (plus the lateness) are closed."""

    def observe(self, ts: float, now: float) -> float:
        """A packet with event time `ts` arrived at wall-clock `now`; the new watermark."""
        self.newest = max(self.newest, ts)
        self.last_arrival = now
        self.value = max(self.value, self.newest)
        return self.value

    def advance_idle(self, now: float) -> float:
        """The watermark at wall-clock `now`: moved on with the clock once the input has been
        quiet for `idle_timeout_s` (unchanged without an idle timeout or any packet yet)."""
        timeout = self.idle_timeout_s
        if timeout is None or math.isinf(self.newest):
            return self.value
        quiet = now - self.last_arrival
        if quiet >= timeout:
            moved = self.newest + quiet
            self.value = max(self.value, moved)
        return self.value
