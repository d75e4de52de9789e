"""`synthetic`: a deterministic source of generated packets, for demos, tests and load."""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import count as count_from
from typing import Any, ClassVar

from pydantic import Field, StrictFloat, StrictInt

from schnitzel import (
    JsonObject,
    PacketKind,
    PayloadProfile,
    PluginConfig,
    Source,
    StreamPacket,
    StreamShape,
)

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

    def packets(self) -> Iterator[StreamPacket]:
        config = self.config
        kind = config.kind
        source_id = config.source_id or self.context.node_id
        template = config.payload
        new, now = StreamPacket.new, time.time
        seqs = count_from() if config.count is None else range(config.count)
        for seq in seqs:
            yield new(kind, source_id, seq, dict(template), None, None, now())

    def rate_hz(self) -> float | None:
        return self.config.rate_hz
