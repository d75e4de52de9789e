"""`delay`: closes a feedback cycle, emitting an initial value before what it receives."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from pydantic import Field, field_validator

from schnitzel import (
    Delay,
    JsonValue,
    PacketKind,
    PayloadProfile,
    PluginConfig,
    StreamPacket,
    StreamShape,
    weakest_profile,
)

__all__ = ["DelayConfig", "DelayPlugin"]


class DelayConfig(PluginConfig):
    """Options of the delay node."""

    initial: JsonValue = Field(
        description="Payload of the first packet (JSON), sent before any input."
    )
    kind: PacketKind = Field(default="sensor", description="Kind of the initial packet.")

    @field_validator("initial")
    @classmethod
    def _initial_is_a_value(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("a delay node needs an initial value to start its loop, not null")
        return value


class DelayPlugin(Delay):
    """Emits `initial` first, then each packet it receives, one step later."""

    name: ClassVar[str] = "delay"
    Config: ClassVar[type[PluginConfig]] = DelayConfig
    emits_profile = PayloadProfile.JSON_PORTABLE  # the initial packet; inputs may weaken it

    @classmethod
    def output_shape(cls, config: Any, incoming: StreamShape | None) -> StreamShape:
        own_kinds = frozenset({config.kind})
        own = StreamShape(own_kinds, cls.emits_profile)
        if incoming is None:
            return own
        kinds = None if incoming.kinds is None else incoming.kinds | own_kinds
        return StreamShape(kinds, weakest_profile([incoming.profile, own.profile]))

    def initial_packets(self) -> Iterable[StreamPacket]:
        return [StreamPacket.new(self.config.kind, self.context.node_id, 0, self.config.initial)]
