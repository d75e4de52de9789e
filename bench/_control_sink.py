"""A sink plugin for the control benchmark: records when each packet arrived, and its seq.

Graphs name it `_control_sink:DeliveryRecorder` and allowlist the module in
`runtime.allow_modules`. It lives in its own module so that the module the runtime imports
through the allowlist is the very one the benchmark reads `RECORDED` from.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import ClassVar

from schnitzel.contract import StreamPacket
from schnitzel.registry import Sink

__all__ = ["RECORDED", "Deliveries", "DeliveryRecorder"]


@dataclass
class Deliveries:
    """What one sink node received, in arrival order."""

    times: list[float] = field(default_factory=list)
    """`time.monotonic()` when each packet was delivered."""
    seqs: list[int] = field(default_factory=list)


RECORDED: defaultdict[str, Deliveries] = defaultdict(Deliveries)
"""Per node id."""


class DeliveryRecorder(Sink):
    """Discards packets like `null`, keeping when each one arrived and its seq."""

    name: ClassVar[str] = "delivery_recorder"

    def deliver(self, packet: StreamPacket) -> None:
        record = RECORDED[self.context.node_id]
        record.times.append(time.monotonic())
        record.seqs.append(packet.seq)
