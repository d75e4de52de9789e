"""Errors of the http sink, part of schnitzel's one hierarchy.

    SchnitzelError
     └── HttpSinkError ........ the http sink cannot open or cannot deliver
          ├── HttpRejected .... the backend refused this packet while it accepts others (poison)
          └── HttpGaveUp ...... retries ran out (only when the inbox is not durable)

Messages never contain the bearer token: the sink blanks it out of response excerpts too.
"""

from __future__ import annotations

from schnitzel import SchnitzelError

__all__ = ["HttpGaveUp", "HttpRejected", "HttpSinkError"]


class HttpSinkError(SchnitzelError):
    """The http sink cannot open (token variable unset, CA file unreadable) or deliver."""


class HttpRejected(HttpSinkError):
    """A poison pill: the backend refused this packet (400, 409, 415, 422, ...) while it
    accepts others; the node's `on_error` policy decides what happens next. A backend that
    refuses every request is retried instead (verdict.py)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class HttpGaveUp(HttpSinkError):
    """Every attempt failed with a retried error and `max_retries` ran out."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts
