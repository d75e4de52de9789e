"""`sample`: keeps one of every N packets."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, StrictInt

from schnitzel import NodeContext, PluginConfig, StreamPacket, Transform

__all__ = ["Sample", "SampleConfig"]


class SampleConfig(PluginConfig):
    """Options of the sample transform."""

    every: StrictInt = Field(ge=1, description="Keep 1 of every N packets (N >= 1).")


class Sample(Transform):
    """Keeps one of every N packets; the others count as filtered, not dropped."""

    name: ClassVar[str] = "sample"
    Config: ClassVar[type[PluginConfig]] = SampleConfig

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self._seen = 0

    def process(self, packet: StreamPacket) -> StreamPacket | None:
        keep = self._seen % self.config.every == 0  # the first packet is always kept
        self._seen += 1
        return packet if keep else None

    def process_batch(self, packets: list[StreamPacket]) -> list[StreamPacket]:
        every, seen = self.config.every, self._seen
        first = (-seen) % every  # index in this batch of the next packet to keep
        self._seen = seen + len(packets)
        return packets[first::every]

    def export_state(self) -> Any:
        """How many packets it has seen, so a swapped sampler keeps its rhythm."""
        return {"seen": self._seen}

    def import_state(self, state: Any) -> None:
        self._seen = int(state["seen"])
