"""Why a run ended: the run report's `stop_reason` (docs/contracts/run_report.md)."""

from __future__ import annotations

__all__ = ["StopReason"]


class StopReason:
    """Why a run ended (the run report's `stop_reason`)."""

    MAX_PACKETS = "max_packets"
    DURATION = "duration"
    SOURCES_EXHAUSTED = "sources_exhausted"
    SIGNAL = "signal"
    ERROR = "error"
