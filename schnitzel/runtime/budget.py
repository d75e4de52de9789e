"""`--max-packets`: one budget of packets shared by every source of the graph."""

from __future__ import annotations

import asyncio

__all__ = ["Budget"]


class Budget:
    """Packets sources may still produce; None: no limit.

    A source reserves packets before it pulls (`take`) and settles the reservation after
    (`settle`). A source that finds nothing left while others still hold reservations waits
    (`changed`) instead of ending the run early: a reservation may come back unused.
    """

    __slots__ = ("changed", "remaining", "reserved")

    def __init__(self, limit: int | None) -> None:
        self.remaining = limit
        self.reserved = 0
        self.changed = asyncio.Event()

    @property
    def spent(self) -> bool:
        """True once every packet of the budget was produced."""
        return self.remaining == 0 and self.reserved == 0

    def take(self, wanted: int) -> int:
        """Reserve up to `wanted` packets; 0 when none are free now."""
        remaining = self.remaining
        if remaining is None:
            return wanted
        granted = min(wanted, remaining)
        self.remaining = remaining - granted
        self.reserved += granted
        return granted

    def settle(self, granted: int, used: int) -> None:
        """End a reservation of `granted` packets of which `used` were produced."""
        if self.remaining is None:
            return
        self.reserved -= granted
        self.remaining += granted - used
        self.changed.set()
        self.changed = asyncio.Event()  # waiters hold the old one, which stays set
