"""Errors of the sensors pack, part of schnitzel's one hierarchy.

SchnitzelError
 └── SensorError ........... a sensors node cannot open (a missing library, a port taken)
      └── BodyRefused ....... an http_ingest body cannot become records (its HTTP status)
"""

from __future__ import annotations

from schnitzel import SchnitzelError

__all__ = ["BodyRefused", "SensorError"]


class SensorError(SchnitzelError):
    """A sensors node cannot open: the message names the node and the fix."""


class BodyRefused(SensorError):
    """An http_ingest body cannot become records; `status` is the HTTP answer (400/413/415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
