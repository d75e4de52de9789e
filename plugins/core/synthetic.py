"""`synthetic`: a deterministic source of generated packets, for demos, tests and load."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, StrictFloat, StrictInt

from schnitzel.contract.kinds import PayloadProfile
from schnitzel.registry.config_types import JsonObject, PacketKind
from schnitzel.registry.plugin import PluginConfig, Source, StreamShape

__all__ = ["Synthetic", "SyntheticConfig"]


class SyntheticConfig(PluginConfig):
    """Options of the synthetic source."""

    count: StrictInt | None = Field(
        default=None, ge=0, description="Packets to emit; null emits without end."
    )
    rate_hz: StrictFloat | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        description="Packets per second; null = as fast as possible.",
    )
    kind: PacketKind = Field(default="sensor", description="Kind of every packet.")
    source_id: str | None = Field(
        default=None, min_length=1, description="Stream name; defaults to the node id."
    )
    payload: JsonObject = Field(default={}, description="Template of every payload (JSON).")


class Synthetic(Source):
    """Generated packets; seq n has idempotency key `<source_id>:<n>`."""

    name: ClassVar[str] = "synthetic"
    Config: ClassVar[type[PluginConfig]] = SyntheticConfig
    emits_profile = PayloadProfile.JSON_PORTABLE

    @classmethod
    def output_shape(cls, config: Any, incoming: StreamShape | None) -> StreamShape:
        return StreamShape(frozenset({config.kind}), cls.emits_profile)
