"""`null`: a sink that counts packets and discards them."""

from __future__ import annotations

from typing import ClassVar

from schnitzel import Sink, StreamPacket

__all__ = ["NullSink"]


class NullSink(Sink):
    """Counts packets and discards them: the explicit way to throw data away."""

    name: ClassVar[str] = "null"

    def deliver(self, packet: StreamPacket) -> None:
        pass

    def deliver_batch(self, packets: list[StreamPacket]) -> None:
        pass
