"""A sink plugin for the runtime benchmark: records each packet's age on arrival.

Graphs name it `_latency_sink:LatencyRecorder` and allowlist the module in
`runtime.allow_modules`. It lives in its own module so that the module the runtime imports
through the allowlist is the very one the benchmark reads `RECORDED` from.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import ClassVar

from schnitzel.contract import StreamPacket
from schnitzel.registry import Sink

__all__ = ["RECORDED", "LatencyRecorder"]

RECORDED: defaultdict[str, list[float]] = defaultdict(list)
"""Per node id: `time.time() - packet.ts` of every packet delivered, in seconds."""


class LatencyRecorder(Sink):
    """Discards packets like `null`, keeping how old each one was when it arrived."""

    name: ClassVar[str] = "latency_recorder"

    def deliver(self, packet: StreamPacket) -> None:
        RECORDED[self.context.node_id].append(time.time() - packet.ts)
