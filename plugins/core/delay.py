"""`delay`: closes a feedback cycle, emitting an initial value before what it receives."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field, field_validator

from schnitzel.contract.kinds import PayloadProfile, weakest_profile
from schnitzel.registry.plugin import Delay, PluginConfig, StreamShape

__all__ = ["DelayConfig", "DelayPlugin"]


class DelayConfig(PluginConfig):
    """Options of the delay node."""

    initial: Any = Field(description="Payload of the first packet (JSON), sent before any input.")
    kind: str = Field(
        default="sensor", pattern=r"^[a-z][a-z0-9_]*$", description="Kind of the initial packet."
    )

    @field_validator("initial")
    @classmethod
    def _initial_is_a_json_value(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("a delay node needs an initial value to start its loop, not null")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"initial must be plain JSON (numbers, strings, lists, maps): {exc}"
            ) from exc
        return value


class DelayPlugin(Delay):
    """Emits `initial` first, then each packet it receives, one step later."""

    name: ClassVar[str] = "delay"
    Config: ClassVar[type[PluginConfig]] = DelayConfig

    @classmethod
    def output_shape(cls, config: Any, incoming: StreamShape | None) -> StreamShape:
        own = StreamShape(frozenset({config.kind}), PayloadProfile.JSON_PORTABLE)
        if incoming is None:
            return own
        kinds = None if incoming.kinds is None else incoming.kinds | own.kinds
        return StreamShape(kinds, weakest_profile([incoming.profile, own.profile]))
