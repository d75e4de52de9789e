"""A source for the window benchmark: readings of many keys at a fixed event-time rate.

Graphs name it `_keyed_source:KeyedReadings` and allowlist the module in
`runtime.allow_modules`. Packet n has key `n % keys` and `ts = start + n / rate_hz` (event
time, made as fast as the graph takes them: the runtime does not pace it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from pydantic import Field, StrictFloat, StrictInt

from schnitzel import PayloadProfile, PluginConfig, Source, StreamPacket

__all__ = ["KeyedReadings", "KeyedReadingsConfig"]


class KeyedReadingsConfig(PluginConfig):
    """Options of the keyed readings source."""

    count: StrictInt = Field(ge=1, description="Packets made.")
    keys: StrictInt = Field(default=1000, ge=1, description="Distinct keys, round-robin.")
    rate_hz: StrictFloat = Field(default=50_000.0, gt=0, description="Packets per second of ts.")
    start: StrictFloat = Field(default=1_700_000_000.0, description="ts of the first packet.")


class KeyedReadings(Source):
    """Readings of `keys` sensors, `rate_hz` per second of event time."""

    name: ClassVar[str] = "keyed_readings"
    Config: ClassVar[type[PluginConfig]] = KeyedReadingsConfig
    emits = frozenset({"sensor"})
    emits_profile = PayloadProfile.JSON_PORTABLE

    def packets(self) -> Iterator[StreamPacket]:
        config = self.config
        new, keys, rate, start = StreamPacket.new, config.keys, config.rate_hz, config.start
        node_id = self.context.node_id
        for n in range(config.count):
            payload = {"sensor": n % keys, "value": float(n % 97)}
            yield new("sensor", node_id, n, payload, ts=start + n / rate)
