"""`passthrough`: forwards every packet unchanged."""

from __future__ import annotations

from typing import ClassVar

from schnitzel import StreamPacket, Transform

__all__ = ["Passthrough"]


class Passthrough(Transform):
    """Forwards every packet unchanged (a placeholder, or a join point for fan-in)."""

    name: ClassVar[str] = "passthrough"

    def process(self, packet: StreamPacket) -> StreamPacket:
        return packet

    def process_batch(self, packets: list[StreamPacket]) -> list[StreamPacket]:
        return packets
