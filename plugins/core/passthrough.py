"""`passthrough`: forwards every packet unchanged."""

from __future__ import annotations

from typing import ClassVar

from schnitzel.contract.packet import StreamPacket
from schnitzel.registry.plugin import Transform

__all__ = ["Passthrough"]


class Passthrough(Transform):
    """Forwards every packet unchanged (a placeholder, or a join point for fan-in)."""

    name: ClassVar[str] = "passthrough"

    def process(self, packet: StreamPacket) -> StreamPacket:
        return packet

    def process_batch(self, packets: list[StreamPacket]) -> list[StreamPacket]:
        return packets
