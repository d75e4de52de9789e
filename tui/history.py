"""Recent figures per node, for the detail screen's sparklines.

Recorded on every poll, frozen view or not, so a node opened later already has a past.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from schnitzel_tui.model import ConsoleSnapshot

__all__ = ["HISTORY_POINTS", "NodeHistory", "SnapshotHistory"]

HISTORY_POINTS = 120
"""Points kept per series: two minutes at the default refresh."""


@dataclass(slots=True)
class NodeHistory:
    """One node's series, oldest first."""

    rate: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_POINTS))
    depth: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_POINTS))
    p99_ms: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_POINTS))


class SnapshotHistory:
    """Series for every node, fed one snapshot at a time."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeHistory] = {}

    def record(self, snapshot: ConsoleSnapshot) -> None:
        """Append each node's rate, inbox depth and p99 latency."""
        for node_id, node in snapshot.nodes.items():
            series = self._nodes.setdefault(node_id, NodeHistory())
            series.rate.append(node.rate)
            series.depth.append(float(node.depth))
            series.p99_ms.append(node.p99_ms)

    def of(self, node_id: str) -> NodeHistory:
        """The series of one node (empty until it has been recorded)."""
        return self._nodes.setdefault(node_id, NodeHistory())
