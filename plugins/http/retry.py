"""How long the http sink waits before a retry: backoff, Retry-After (what is retried: verdict.py).

Pure functions (the random source and the wall clock are arguments), so they are tested
without a server or a sleep.
"""

from __future__ import annotations

import math
import re
from datetime import UTC
from email.utils import parsedate_to_datetime

from schnitzel import backoff_s
from schnitzel_plugins.http.verdict import TRANSIENT_STATUSES, Answer, classify

__all__ = ["RETRY_STATUSES", "backoff_s", "is_retried", "retry_after_s"]

RETRY_STATUSES = TRANSIENT_STATUSES
"""Client-error statuses that mean "try again later"; every 5xx is retried too."""

_DELTA_SECONDS = re.compile(r"\d+(\.\d+)?", re.ASCII)


def is_retried(status: int) -> bool:
    """True for a transient status: 5xx, 429 Too Many Requests, 425 Too Early, 408 Request
    Timeout. (Refusals of the backend as a whole are retried too; see verdict.py.)"""
    return classify(status) is Answer.TRANSIENT


def retry_after_s(value: str | None, now: float) -> float | None:
    """Seconds a `Retry-After` header asks to wait, or None when absent or unreadable.

    Accepts delta-seconds (`120`; a decimal such as `1.5` too, as some servers send) and an
    HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`), read against `now` (seconds since the
    epoch). A date in the past means 0. The caller caps the result.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)
