"""A sink plugin for the paced benchmark: records each packet's timestamp and age on arrival.

Graphs name it `_paced_sink:ArrivalRecorder` and allowlist the module in
`runtime.allow_modules`; it lives in its own module so that the module the runtime imports
through the allowlist is the very one the benchmark reads `STAMPS` and `AGES` from.
"""

from __future__ import annotations

import time
from typing import ClassVar

from schnitzel.contract import StreamPacket
from schnitzel.registry import Sink

__all__ = ["AGES", "STAMPS", "ArrivalRecorder"]

STAMPS: list[float] = []
"""`packet.ts` of every packet delivered (when its source made it)."""
AGES: list[float] = []
"""`time.time() - packet.ts` of every packet delivered, in seconds."""


class ArrivalRecorder(Sink):
    """Discards packets like `null`, keeping when each was made and how old it arrived."""

    name: ClassVar[str] = "arrival_recorder"

    def deliver(self, packet: StreamPacket) -> None:
        ts = packet.ts
        STAMPS.append(ts)
        AGES.append(time.time() - ts)
