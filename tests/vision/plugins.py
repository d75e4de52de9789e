"""Plugins the vision tests run through `module:Class` (allowlisted per graph)."""

from __future__ import annotations

from collections import defaultdict
from typing import ClassVar

from schnitzel import Sink, StreamPacket

KEYS: dict[str, list[str]] = defaultdict(list)
"""Per node id: the idempotency keys delivered, in order (frames are not kept: memory)."""


class KeySink(Sink):
    """Keeps the idempotency key of every packet, and nothing else."""

    name: ClassVar[str] = "key_sink"

    def deliver(self, packet: StreamPacket) -> None:
        KEYS[self.context.node_id].append(packet.idempotency_key)
