"""Things operators should see happen: health changes, errors, stops. Kept for the console
and written to the log."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

__all__ = ["Event", "EventLog"]


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, for an operator."""

    seq: int
    """Numbers events in the order they happened, from 1: a client asks for what is newer."""
    ts: float
    level: str
    message: str
    node: str | None = None


class EventLog:
    """The most recent events (bounded) and a logger they also go to."""

    def __init__(self, logger: logging.Logger, keep: int = 500) -> None:
        self.logger = logger
        self.recent: deque[Event] = deque(maxlen=keep)
        self.last_seq = 0
        self._lock = threading.Lock()  # plugins add events from their nodes' threads

    def add(self, level: str, message: str, node: str | None = None) -> None:
        """Record an event and log it at `level` (info, warning, error); any thread."""
        with self._lock:
            self.last_seq += 1
            self.recent.append(Event(self.last_seq, time.time(), level, message, node))
        extra = {"node": node} if node else {}
        self.logger.log(logging.getLevelName(level.upper()), message, extra=extra)
