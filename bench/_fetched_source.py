"""An async source for bench/bench_async_source.py: packets that arrive in fetches, as a
network client's (nats, MQTT) do: each fetch waits once (`asyncio.sleep(0)`, a round trip to
the event loop), then its messages are yielded without waiting.

Graphs name it `_fetched_source:Fetched` and allowlist the module in `runtime.allow_modules`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from pydantic import Field, StrictInt

from schnitzel import PayloadProfile, PluginConfig, Source, StreamPacket

__all__ = ["Fetched", "FetchedConfig", "fetched_packets"]


class FetchedConfig(PluginConfig):
    """Options of the fetched source."""

    count: StrictInt = Field(ge=1, description="Packets made.")
    fetch: StrictInt = Field(default=64, ge=1, description="Packets per fetch.")


async def fetched_packets(count: int, fetch: int, source_id: str) -> AsyncIterator[StreamPacket]:
    """`count` packets, `fetch` at a time after one wait each: the source and its baseline."""
    new = StreamPacket.new
    payload: dict[str, Any] = {"v": 1}
    for start in range(0, count, fetch):
        await asyncio.sleep(0)  # the fetch's round trip
        for seq in range(start, min(start + fetch, count)):
            yield new("sensor", source_id, seq, dict(payload))


class Fetched(Source):
    """Packets in fetches of `fetch`, as a network client receives them."""

    name: ClassVar[str] = "fetched"
    Config: ClassVar[type[PluginConfig]] = FetchedConfig
    emits = frozenset({"sensor"})
    emits_profile = PayloadProfile.JSON_PORTABLE

    def packets(self) -> AsyncIterator[StreamPacket]:
        return fetched_packets(self.config.count, self.config.fetch, self.context.node_id)
