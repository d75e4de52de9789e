"""Drop bursts for the event log, found by comparing one snapshot with the next.

The runtime counts every drop; an operator wants to hear when a node starts dropping, not a
line per packet. A burst is reported when drops start after a quiet poll, then at most once
every `repeat_s` while they go on, with the count and reasons since the last report.
"""

from __future__ import annotations

import time

from schnitzel_tui.model import ConsoleSnapshot, EventView

__all__ = ["DropBurstWatch"]


class DropBurstWatch:
    """Turns growing drop counters into a few event-log lines."""

    def __init__(self, repeat_s: float = 10.0) -> None:
        self.repeat_s = repeat_s
        self._reported: dict[str, dict[str, int]] = {}
        """Per node, the drop counts by reason as of the last report (or first sight)."""
        self._last_report: dict[str, float] = {}

    def check(self, snapshot: ConsoleSnapshot, now: float | None = None) -> list[EventView]:
        """Events for the nodes with drops not reported yet, unless reported too recently."""
        now = time.time() if now is None else now
        events = []
        for node_id, node in snapshot.nodes.items():
            by_reason = dict(node.dropped_by_reason)
            reported = self._reported.get(node_id)
            if reported is None:  # first sight: what happened before is not a burst
                self._reported[node_id] = by_reason
                continue
            last = self._last_report.get(node_id)
            if last is not None and now - last < self.repeat_s:
                continue  # counted in the next report
            grown = {r: n - reported.get(r, 0) for r, n in by_reason.items()}
            grown = {r: n for r, n in grown.items() if n > 0}
            if not grown:
                continue
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(grown.items()))
            message = f"dropped {sum(grown.values())} packets ({reasons})"
            events.append(EventView(0, now, "warning", message, node_id))
            self._reported[node_id] = by_reason
            self._last_report[node_id] = now
        return events
