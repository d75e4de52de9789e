"""How long the http sink waits before a retry: backoff, Retry-After (what is retried: verdict.py).

Pure functions (the random source and the wall clock are arguments), so they are tested
without a server or a sleep.
"""

from __future__ import annotations

import math
import random
import re
from datetime import UTC
from email.utils import parsedate_to_datetime

from schnitzel_plugins.http.verdict import TRANSIENT_STATUSES, Answer, classify

__all__ = ["RETRY_STATUSES", "backoff_s", "is_retried", "retry_after_s"]

RETRY_STATUSES = TRANSIENT_STATUSES
"""Client-error statuses that mean "try again later"; every 5xx is retried too."""

_DELTA_SECONDS = re.compile(r"\d+(\.\d+)?", re.ASCII)
# 2 ** 60 times any sensible initial delay is past every cap; a larger exponent would only
# risk an OverflowError after days of retrying.
_MAX_DOUBLINGS = 60


def is_retried(status: int) -> bool:
    """True for a transient status: 5xx, 429 Too Many Requests, 425 Too Early, 408 Request
    Timeout. (Refusals of the backend as a whole are retried too; see verdict.py.)"""
    return classify(status) is Answer.TRANSIENT


def backoff_s(attempt: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter before retry number `attempt` (1 = first retry):
    uniform in [0, min(max_s, initial_s * 2 ** (attempt - 1))]."""
    ceiling = min(max_s, initial_s * 2.0 ** min(attempt - 1, _MAX_DOUBLINGS))
    return rng.uniform(0.0, ceiling)


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
