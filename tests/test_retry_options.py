"""The retry and breaker options are one definition in the SDK: the http and nats sinks
offer the same names, bounds, defaults and checks, and so does a third-party sink's config."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from schnitzel import RetryOptions, backoff_s
from schnitzel_plugins.http.config import HttpSinkConfig
from schnitzel_plugins.transports.config import NatsSinkConfig

SIX = {
    "retry_initial_s",
    "retry_max_s",
    "max_retries",
    "breaker_failures",
    "breaker_cooldown_s",
    "breaker_max_cooldown_s",
}


class ThirdPartySinkConfig(RetryOptions):
    """What a pack outside this repository writes."""

    endpoint: str


@pytest.mark.parametrize("config", [HttpSinkConfig, NatsSinkConfig, ThirdPartySinkConfig])
def test_every_sink_config_has_the_six_options_from_one_place(config: type) -> None:
    assert issubclass(config, RetryOptions)
    for name in SIX:
        assert repr(config.model_fields[name]) == repr(RetryOptions.model_fields[name]), name


def test_the_options_are_checked_together_in_a_third_party_config() -> None:
    with pytest.raises(ValidationError, match=r"retry_initial_s \(5.0\) is above retry_max_s"):
        ThirdPartySinkConfig(endpoint="x", retry_initial_s=5.0, retry_max_s=1.0)
    with pytest.raises(ValidationError, match=r"breaker_cooldown_s \(2.0\) is above"):
        ThirdPartySinkConfig(endpoint="x", breaker_cooldown_s=2.0)
    assert ThirdPartySinkConfig(endpoint="x").breaker_failures == 5


def test_a_sink_config_keeps_its_own_checks_beside_the_shared_ones() -> None:
    with pytest.raises(ValidationError, match="give exactly one of subject"):
        NatsSinkConfig(url="nats://127.0.0.1:4222")
    with pytest.raises(ValidationError, match="retry_initial_s"):
        NatsSinkConfig(
            url="nats://127.0.0.1:4222", subject="a", retry_initial_s=9.0, retry_max_s=1.0
        )


def test_backoff_stays_under_its_ceiling() -> None:
    rng = random.Random(7)
    assert all(
        0.0 <= backoff_s(n, 0.1, 2.0, rng) <= min(2.0, 0.1 * 2 ** (n - 1)) for n in range(1, 50)
    )
