"""`--max-packets`: one budget of packets shared by every source of the graph."""

from __future__ import annotations

__all__ = ["Budget"]


class Budget:
    """Packets sources may still produce; None: no limit."""

    __slots__ = ("exhausted", "remaining")

    def __init__(self, limit: int | None) -> None:
        self.remaining = limit
        self.exhausted = False

    def take(self, wanted: int) -> int:
        """Claim up to `wanted` packets; 0 once the budget is spent."""
        remaining = self.remaining
        if remaining is None:
            return wanted
        granted = min(wanted, remaining)
        self.remaining = remaining - granted
        if not granted:
            self.exhausted = True
        return granted

    def give_back(self, unused: int) -> None:
        """Return packets claimed but not produced (the source ended first)."""
        if self.remaining is not None:
            self.remaining += unused
            self.exhausted = self.exhausted and self.remaining == 0
