"""`synthetic`: a deterministic source of generated packets, for demos, tests and load."""

from __future__ import annotations

from itertools import repeat
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

__all__ = ["Generated", "Synthetic", "SyntheticConfig"]


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

    def packets(self) -> Generated:
        config = self.config
        source_id = config.source_id or self.context.node_id
        return Generated(config.kind, source_id, config.payload, config.count)

    def rate_hz(self) -> float | None:
        return self.config.rate_hz


class Generated:
    """The synthetic packets, seq 0 on, each payload a copy of the template: made as many
    at a time as the runtime asks for (`next_batch`), or one at a time when iterated."""

    __slots__ = ("end", "kind", "next_seq", "source_id", "template")

    def __init__(self, kind: str, source_id: str, template: dict[str, Any], count: int | None):
        self.kind = kind
        self.source_id = source_id
        self.template = template
        self.next_seq = 0
        self.end = count
        """The seq after the last packet; None: without end."""

    def __iter__(self) -> Generated:
        return self

    def __next__(self) -> StreamPacket:
        seq = self.next_seq
        if self.end is not None and seq >= self.end:
            raise StopIteration
        self.next_seq = seq + 1
        return StreamPacket.new(self.kind, self.source_id, seq, dict(self.template))

    def next_batch(self, limit: int) -> list[StreamPacket]:
        """The next `limit` packets (fewer at the end; none once all were made)."""
        start = self.next_seq
        if limit == 1 and (self.end is None or start < self.end):
            # paced: one packet a wake-up, where setting up a batch would cost more than it
            self.next_seq = start + 1
            return [StreamPacket.new(self.kind, self.source_id, start, self.template.copy())]
        stop = start + limit if self.end is None else min(start + limit, self.end)
        if stop <= start:
            return []
        self.next_seq = stop
        payloads = list(map(dict.copy, repeat(self.template, stop - start)))
        return StreamPacket.new_many(self.kind, self.source_id, range(start, stop), payloads)
