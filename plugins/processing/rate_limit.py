"""`rate_limit`: a token bucket per key; what exceeds it is filtered and counted, or sent to
the port `excess`. Never dropped unseen."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, ClassVar, Literal

from pydantic import Field, StrictFloat, StrictInt

from schnitzel import NodeContext, PluginConfig, Policy, Routed, StreamPacket
from schnitzel_plugins.processing.fields import KEY_PATTERN, key_reader
from schnitzel_plugins.processing.handover import own_state, tagged

__all__ = ["EXCESS_PORT", "RateLimit", "RateLimitConfig"]

EXCESS_PORT = "excess"


class RateLimitConfig(PluginConfig):
    """Options of `rate_limit`."""

    rate_hz: StrictFloat = Field(gt=0, description="Packets per second each key may pass.")
    burst: StrictInt = Field(
        default=1, ge=1, description="Packets a key may pass at once after a quiet spell."
    )
    by: str | None = Field(
        default="source_id",
        pattern=KEY_PATTERN,
        description="One bucket per value of: source_id, kind, payload.<f>, meta.<f>; "
        "null: one for all.",
    )
    excess: Literal["filter", "port"] = Field(
        default="filter",
        description="What becomes of a packet over the rate: `filter` (counted as filtered "
        "and in the node's stats) or `port` (sent to the port `excess`; connect it).",
    )
    clock: Literal["arrival", "event"] = Field(
        default="arrival",
        description="Time the buckets refill by: `arrival` (this machine's clock) or `event` "
        "(the packets' ts: replays and tests behave the same at any speed).",
    )
    max_keys: StrictInt = Field(
        default=100_000, ge=1, description="Buckets kept (the least recently used forgotten)."
    )


class RateLimit(Policy):
    """Token bucket per key: `rate_hz` packets/s, bursts of `burst`; the excess filtered or routed.

    What exceeds the rate is counted (`limited` in the node's stats) and filtered, or sent
    to the port `excess`."""

    name: ClassVar[str] = "rate_limit"
    Config: ClassVar[type[PluginConfig]] = RateLimitConfig

    @classmethod
    def output_ports(cls, config: Any) -> tuple[str, ...]:
        """`out`, and `excess` when the excess is routed."""
        return ("out", EXCESS_PORT) if config.excess == "port" else ("out",)

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self.outputs = self.output_ports(config)  # type: ignore[misc]
        self._key = key_reader(config.by)
        self._event_clock = config.clock == "event"
        self._to_port = config.excess == "port"
        # key -> [tokens, last refill time]
        self._buckets: OrderedDict[Any, list[float]] = OrderedDict()
        self.passed = 0
        self.limited = 0
        self.clock_resets = 0
        """Buckets restarted because event time jumped back more than a full refill."""

    # Processor.process's annotation omits Routed, which the runtime takes (plugins.md, Ports)
    def process(self, packet: StreamPacket) -> StreamPacket | Routed | None:  # type: ignore[override]
        now = packet.ts if self._event_clock else time.monotonic()
        key = self._key(packet)
        config = self.config
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [float(config.burst), now]
            if len(self._buckets) > config.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            if now < bucket[1] - config.burst / config.rate_hz:
                # Event time went back further than a full refill: the packet before was far
                # ahead (a device clock off by a year) or this one is very late. Restart the
                # bucket from here, or one stray timestamp would starve its key until then.
                bucket[0], bucket[1] = float(config.burst), now
                self.clock_resets += 1
            elapsed = max(now - bucket[1], 0.0)
            bucket[0] = min(float(config.burst), bucket[0] + elapsed * config.rate_hz)
            bucket[1] = max(now, bucket[1])
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            self.passed += 1
            return packet
        self.limited += 1
        return Routed(EXCESS_PORT, packet) if self._to_port else None

    def stats(self) -> dict[str, Any]:
        """Packets passed and over the rate, buckets kept, and buckets restarted by a jump
        back in event time."""
        return {
            "passed": self.passed,
            "limited": self.limited,
            "keys": len(self._buckets),
            "clock_resets": self.clock_resets,
        }

    def export_state(self) -> Any:
        """The buckets, and which clock filled them."""
        return tagged(self.name, {"clock": self.config.clock, "buckets": self._buckets})

    def import_state(self, state: Any) -> None:
        """Take a rate_limit's buckets on the same clock (another clock's times mean nothing
        here: start full); a lower `burst` caps them."""
        mine = own_state(self.name, state, self.context)
        if mine is None or mine["clock"] != self.config.clock:
            return
        # copies: a swap refused after this must leave the running node's buckets as they were
        burst = float(self.config.burst)
        buckets: OrderedDict[Any, list[float]] = OrderedDict(
            (key, [min(tokens, burst), last]) for key, (tokens, last) in mine["buckets"].items()
        )
        while len(buckets) > self.config.max_keys:
            buckets.popitem(last=False)
        self._buckets = buckets
