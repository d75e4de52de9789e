"""What a pack that delivers to a backend shares: the retry and circuit-breaker options of
its config (`RetryOptions`) and the backoff between attempts (`backoff_s`). The http and nats
sinks use them, so their options have the same names, bounds, defaults and checks, and a
third-party sink can offer the same ones (`from schnitzel import RetryOptions`). The breaker
itself is `schnitzel.registry.breaker`."""

from __future__ import annotations

import random
from typing import Self

from pydantic import Field, StrictFloat, StrictInt, model_validator

from schnitzel.registry.plugin import PluginConfig

__all__ = ["RetryOptions", "backoff_s"]

# 2 ** 60 times any sensible initial delay is past every cap; a larger exponent would only
# risk an OverflowError after days of retrying.
_MAX_DOUBLINGS = 60


class RetryOptions(PluginConfig):
    """A plugin config with the six retry and breaker options; subclass it for a sink's
    config. `retry_initial_s <= retry_max_s` and `breaker_cooldown_s <=
    breaker_max_cooldown_s` are checked (a config's own `model_validator` must have another
    name than `_retry_options_agree`)."""

    retry_initial_s: StrictFloat = Field(
        default=0.1, gt=0, le=3600, description="Backoff ceiling before the first retry."
    )
    retry_max_s: StrictFloat = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Longest wait between two attempts (backoff, a wait the backend asks "
        "for, breaker cooldown).",
    )
    max_retries: StrictInt = Field(
        default=5,
        ge=0,
        le=1000,
        description="Retries of one packet before it fails; ignored with a durable inbox, "
        "which retries until delivered.",
    )
    breaker_failures: StrictInt = Field(
        default=5,
        ge=1,
        le=1000,
        description="Retried failures in a row (a request, a round of publishes) that open "
        "the circuit.",
    )
    breaker_cooldown_s: StrictFloat = Field(
        default=0.5,
        gt=0,
        le=3600,
        description="How long an open circuit sends nothing before one probe; doubles per "
        "failed probe up to breaker_max_cooldown_s.",
    )
    breaker_max_cooldown_s: StrictFloat = Field(
        default=1.5,
        gt=0,
        le=3600,
        description="Longest wait between two probes of a dead backend: bounds how long "
        "delivery takes to resume once it is back.",
    )

    @model_validator(mode="after")
    def _retry_options_agree(self) -> Self:
        if self.retry_initial_s > self.retry_max_s:
            raise ValueError(
                f"retry_initial_s ({self.retry_initial_s}) is above retry_max_s "
                f"({self.retry_max_s}); lower retry_initial_s or raise retry_max_s"
            )
        if self.breaker_cooldown_s > self.breaker_max_cooldown_s:
            raise ValueError(
                f"breaker_cooldown_s ({self.breaker_cooldown_s}) is above "
                f"breaker_max_cooldown_s ({self.breaker_max_cooldown_s}); lower the first or "
                "raise the second"
            )
        return self


def backoff_s(attempt: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter before retry number `attempt` (1 = first retry):
    uniform in [0, min(max_s, initial_s * 2 ** (attempt - 1))]."""
    ceiling = min(max_s, initial_s * 2.0 ** min(attempt - 1, _MAX_DOUBLINGS))
    return rng.uniform(0.0, ceiling)
