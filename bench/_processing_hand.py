"""The logic of bench_processing_expr.py's expressions, written by hand as plugins: the
baseline an expression is measured against. Graphs name `_processing_hand:HandFilter` and
`_processing_hand:HandMap` and allowlist the module in `runtime.allow_modules`."""

from __future__ import annotations

from typing import ClassVar

from schnitzel.contract import StreamPacket
from schnitzel.registry import Transform

__all__ = ["HandFilter", "HandMap"]


class HandFilter(Transform):
    """Passes readings above 20 from a sensor: `payload.value > 20 and kind == "sensor"`."""

    name: ClassVar[str] = "hand-filter"

    def process(self, packet: StreamPacket) -> StreamPacket | None:
        value = packet.payload["value"]
        return packet if value > 20 and packet.kind == "sensor" else None


class HandMap(Transform):
    """Adds `fahrenheit: payload.value * 1.8 + 32` and renames `value` to `celsius`."""

    name: ClassVar[str] = "hand-map"

    def process(self, packet: StreamPacket) -> StreamPacket:
        payload = dict(packet.payload)
        payload["fahrenheit"] = payload["value"] * 1.8 + 32
        payload["celsius"] = payload.pop("value")
        return packet.evolve(payload=payload)
