"""The counters of one durable inbox (runtime/durable_inbox.py), for the report and the console."""

from __future__ import annotations

from collections import deque

from schnitzel.durable.store import Loss

__all__ = ["RATE_WINDOW_S", "DurableStats"]

RATE_WINDOW_S = 10.0
"""How far back the fill and drain rates look."""


class DurableStats:
    """Counters of one durable inbox, for the report and the console."""

    __slots__ = (
        "accepted",
        "disk_errors",
        "last_error",
        "lost",
        "parked",
        "parked_at_open",
        "parked_dropped",
        "quarantined",
        "replayed",
        "requeued",
        "requeued_from_quarantine",
        "rows_quarantined",
        "samples",
        "settled",
    )

    def __init__(self) -> None:
        self.replayed = 0
        """Packets found in the store at start (from earlier runs)."""
        self.accepted = 0
        """Packets committed during this run."""
        self.settled = 0
        """Packets deleted after their node was done with them."""
        self.disk_errors = 0
        self.last_error = ""
        self.parked_at_open = 0
        """Parked packets found in the store at start."""
        self.parked = 0
        """Packets this run parked (`on_error: park`)."""
        self.requeued = 0
        """Parked packets this run moved back to the backlog."""
        self.parked_dropped = 0
        """Parked packets this run deleted (by an operator, or over the parking bound)."""
        self.quarantined: str | None = None
        self.lost: Loss | None = None
        """Packets the store owed at open that its file no longer held."""
        self.rows_quarantined = 0
        """Rows moved to the store's quarantine table (changed on disk, or undecodable)."""
        self.requeued_from_quarantine = 0
        """Packets of quarantine entries this run moved back to the backlog (an operator's
        `schnitzel ctl quarantine requeue`)."""
        self.samples: deque[tuple[float, int, int]] = deque()

    def sample(self, now: float) -> None:
        self.samples.append((now, self.accepted, self.settled))
        while len(self.samples) > 2 and now - self.samples[1][0] >= RATE_WINDOW_S:
            self.samples.popleft()

    def rates(self) -> tuple[float, float]:
        """(fill, drain) in packets per second over the last samples."""
        if len(self.samples) < 2:
            return 0.0, 0.0
        (t0, a0, s0), (t1, a1, s1) = self.samples[0], self.samples[-1]
        if t1 <= t0:
            return 0.0, 0.0
        return (a1 - a0) / (t1 - t0), (s1 - s0) / (t1 - t0)
