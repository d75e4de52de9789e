"""Which answers the http sink retries and how long it waits: backoff and Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from schnitzel import backoff_s
from schnitzel_plugins.http.retry import is_retried, retry_after_s


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599, 429, 408])
def test_server_errors_throttling_and_request_timeouts_are_retried(status: int) -> None:
    assert is_retried(status)


@pytest.mark.parametrize("status", [200, 301, 400, 401, 403, 404, 409, 413, 422])
def test_other_statuses_are_not_retried(status: int) -> None:
    assert not is_retried(status)


def test_backoff_has_full_jitter_under_a_doubling_ceiling() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (10, 5.0)]:
        waits = [backoff_s(attempt, 0.1, 5.0, rng) for _ in range(500)]
        assert all(0.0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.9 and min(waits) < ceiling * 0.1  # spread over all of it


def test_backoff_after_days_of_retrying_does_not_overflow() -> None:
    assert 0.0 <= backoff_s(100_000, 0.1, 30.0, random.Random(1)) <= 30.0


@pytest.mark.parametrize(
    ("value", "seconds"), [("3", 3.0), (" 120 ", 120.0), ("0", 0.0), ("1.5", 1.5)]
)
def test_retry_after_in_delta_seconds(value: str, seconds: float) -> None:
    assert retry_after_s(value, now=0.0) == seconds


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2026, 11, 24, 12, 0, 42, tzinfo=UTC), usegmt=True)
    assert later == "Tue, 24 Nov 2026 12:00:42 GMT"
    assert retry_after_s(later, now) == pytest.approx(42.0)
    assert retry_after_s("Tue, 24 Nov 2026 11:00:00 GMT", now) == 0.0  # in the past


@pytest.mark.parametrize("value", [None, "", "soon", "-1", "1e3", "nan", "²"])
def test_unreadable_retry_after_is_ignored(value: str | None) -> None:
    assert retry_after_s(value, now=0.0) is None
