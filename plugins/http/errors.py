"""Errors of the http sink, part of schnitzel's one hierarchy.

    SchnitzelError
     └── HttpSinkError ........ the http sink cannot open or cannot deliver
          ├── HttpRejected .... the backend answered with a status that is not retried
          └── HttpGaveUp ...... retries ran out (only when the inbox is not durable)

Messages never contain the bearer token: the sink blanks it out of response excerpts too.
"""

from __future__ import annotations

from schnitzel.errors import SchnitzelError

__all__ = ["HttpGaveUp", "HttpRejected", "HttpSinkError"]


class HttpSinkError(SchnitzelError):
    """The http sink cannot open (token variable unset, CA file unreadable) or deliver."""


class HttpRejected(HttpSinkError):
    """The backend refused a request with a status that is not retried (4xx other than 408
    and 429, or a redirect); the node's `on_error` policy decides what happens next."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class HttpGaveUp(HttpSinkError):
    """Every attempt failed with a retried error and `max_retries` ran out."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts
