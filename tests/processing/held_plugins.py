"""Test plugins for the runtime's tick and flush (schnitzel/runtime/held.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from schnitzel import NodeContext, Routed, StreamPacket, Transform


class HoldsAll(Transform):
    """Keeps every packet; flush sends the even ones on `out` and the odd ones on `odd`."""

    name: ClassVar[str] = "holds_all"
    outputs: ClassVar[tuple[str, ...]] = ("out", "odd")

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self.kept: list[StreamPacket] = []

    def process(self, packet: StreamPacket) -> None:
        self.kept.append(packet)

    def flush(self) -> Iterable[Any]:
        return [p if p.seq % 2 == 0 else Routed("odd", p) for p in self.kept]


class FlushFails(HoldsAll):
    """Its flush raises."""

    name: ClassVar[str] = "flush_fails"

    def flush(self) -> Iterable[Any]:
        raise RuntimeError("lost the windows")


class FlushReturnsText(HoldsAll):
    """Its flush returns something that is not packets."""

    name: ClassVar[str] = "flush_returns_text"

    def flush(self) -> Iterable[Any]:
        return [f"packet {p.seq}" for p in self.kept]
