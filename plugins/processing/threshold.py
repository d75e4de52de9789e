"""`threshold`: raises an alert when a reading stays above (or below) a limit, and clears it
once the reading is back past the limit by the hysteresis, with a minimum duration both ways,
so a noisy reading near the limit does not flap."""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import Field, StrictFloat, StrictInt, model_validator

from schnitzel import (
    NodeContext,
    PacketKind,
    PayloadProfile,
    PluginConfig,
    Policy,
    StreamPacket,
    StreamShape,
)
from schnitzel_plugins.processing.fields import (
    FIELD_PATTERN,
    KEY_PATTERN,
    key_reader,
    number_reader,
)
from schnitzel_plugins.processing.handover import own_state, tagged

__all__ = ["Limit", "Threshold", "ThresholdConfig", "Watch"]


class ThresholdConfig(PluginConfig):
    """Options of `threshold`."""

    field: str = Field(
        default="value", pattern=FIELD_PATTERN, description="Payload field with the reading."
    )
    above: StrictFloat | None = Field(default=None, description="Alert when above this.")
    below: StrictFloat | None = Field(default=None, description="Alert when below this.")
    hysteresis: StrictFloat = Field(
        default=0.0,
        ge=0,
        description="How far back past the limit a reading must be to clear the alert.",
    )
    min_duration_s: StrictFloat = Field(
        default=0.0,
        ge=0,
        description="How long (by the packets' ts) a reading must stay past the limit to raise "
        "the alert, and back to clear it.",
    )
    by: str | None = Field(
        default="source_id",
        pattern=KEY_PATTERN,
        description="One alert state per value of: source_id, kind, payload.<f>, meta.<f>; "
        "null: one for all.",
    )
    alert_kind: PacketKind = Field(default="alert", description="Kind of the alert packets.")
    max_keys: StrictInt = Field(
        default=100_000, ge=1, description="Keys tracked (the least recently seen forgotten)."
    )

    @model_validator(mode="after")
    def _needs_a_limit(self) -> ThresholdConfig:
        if self.above is None and self.below is None:
            raise ValueError("set `above`, `below` or both")
        if self.above is not None and self.below is not None and self.below >= self.above:
            raise ValueError("`below` must be lower than `above`")
        return self


@dataclass(slots=True)
class Watch:
    """One limit of one key: whether its alert is raised, and since when the reading has been
    on the other side (None: it is not)."""

    raised: bool = False
    crossing_since: float | None = None
    crossing_value: float = 0.0


@dataclass(frozen=True, slots=True)
class Limit:
    """One side of the band: `above` or `below`."""

    side: str
    limit: float
    hysteresis: float

    def past(self, value: float) -> bool:
        """The reading is past the limit (the alert should be raised)."""
        return value > self.limit if self.side == "above" else value < self.limit

    def back(self, value: float) -> bool:
        """The reading is back past the limit by the hysteresis (the alert may clear)."""
        if self.side == "above":
            return value < self.limit - self.hysteresis
        return value > self.limit + self.hysteresis


class Threshold(Policy):
    """Alerts when a reading stays past above/below, with hysteresis and a minimum duration.

    An alert packet (`alert_kind`) says what crossed, when and the value, once when the
    reading stayed past the limit for `min_duration_s` and once when it stayed back by
    `hysteresis` as long; the readings themselves are filtered."""

    name: ClassVar[str] = "threshold"
    Config: ClassVar[type[PluginConfig]] = ThresholdConfig

    @classmethod
    def output_shape(cls, config: Any, incoming: StreamShape | None) -> StreamShape:
        """Alert packets of `alert_kind`, plain JSON."""
        return StreamShape(frozenset({config.alert_kind}), PayloadProfile.JSON_PORTABLE)

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self._limits = [
            Limit(side, limit, config.hysteresis)
            for side, limit in (("above", config.above), ("below", config.below))
            if limit is not None
        ]
        self._read = number_reader(config.field)
        self._key = key_reader(config.by)
        self._watches: OrderedDict[Any, list[Watch]] = OrderedDict()
        self._raised = 0
        self._cleared = 0
        self._forgotten = 0

    def process(self, packet: StreamPacket) -> list[StreamPacket] | None:
        value = self._read(packet)
        key = self._key(packet)
        watches = self._watches.get(key)
        if watches is None:
            watches = self._watches[key] = [Watch() for _ in self._limits]
            if len(self._watches) > self.config.max_keys:
                self._forget_oldest()
        else:
            self._watches.move_to_end(key)
        alerts = []
        for limit, watch in zip(self._limits, watches, strict=True):
            alert = self._step(limit, watch, value, packet, key)
            if alert is not None:
                alerts.append(alert)
        return alerts or None

    def _step(
        self, limit: Limit, watch: Watch, value: float, packet: StreamPacket, key: Any
    ) -> StreamPacket | None:
        crossing = limit.back(value) if watch.raised else limit.past(value)
        if not crossing:
            watch.crossing_since = None
            return None
        if watch.crossing_since is None:
            watch.crossing_since, watch.crossing_value = packet.ts, value
        if packet.ts - watch.crossing_since < self.config.min_duration_s:
            return None
        watch.raised = not watch.raised
        since, first = watch.crossing_since, watch.crossing_value
        watch.crossing_since = None
        if watch.raised:
            self._raised += 1
        else:
            self._cleared += 1
        return self._alert(limit, watch.raised, value, first, since, packet, key)

    def _alert(
        self,
        limit: Limit,
        raised: bool,
        value: float,
        first: float,
        since: float,
        packet: StreamPacket,
        key: Any,
    ) -> StreamPacket:
        payload = {
            "state": "raised" if raised else "cleared",
            "side": limit.side,
            "field": self.config.field,
            "value": value,
            "first_value": first,
            "limit": limit.limit,
            "hysteresis": limit.hysteresis,
            "since": _iso(since),
            "at": _iso(packet.ts),
            "source_id": packet.source_id,
            "key": key if isinstance(key, str | int | float | bool) or key is None else repr(key),
            "reading_id": packet.packet_id,
        }
        return StreamPacket.new(
            self.config.alert_kind,
            packet.source_id,
            packet.seq,
            payload,
            ts=packet.ts,
            meta={"idempotency_key": f"{packet.idempotency_key}:{limit.side}:{payload['state']}"},
        )

    def _forget_oldest(self) -> None:
        """Drop the least recently seen key (over `max_keys`); a raised alert of it will never
        be cleared, so it is counted (raised = cleared + active + forgotten)."""
        _, watches = self._watches.popitem(last=False)
        self._forgotten += sum(watch.raised for watch in watches)

    def stats(self) -> dict[str, Any]:
        """Alerts raised and cleared, keys tracked, how many are raised now, and how many
        raised alerts were forgotten with their key (over `max_keys`), never to be cleared."""
        active = sum(w.raised for ws in self._watches.values() for w in ws)
        return {
            "raised": self._raised,
            "cleared": self._cleared,
            "active": active,
            "forgotten": self._forgotten,
            "keys": len(self._watches),
        }

    def export_state(self) -> Any:
        """Each key's alert state: a swapped threshold does not raise again what is raised."""
        return tagged(
            self.name, {"limits": [limit.side for limit in self._limits], "watches": self._watches}
        )

    def import_state(self, state: Any) -> None:
        """Take a threshold's alert states for the sides both configs watch."""
        mine = own_state(self.name, state, self.context)
        if mine is None:
            return
        sides = [limit.side for limit in self._limits]
        old_sides: list[str] = mine["limits"]
        for key, old in mine["watches"].items():
            by_side = dict(zip(old_sides, old, strict=True))
            # copies: a swap refused after this must leave the running node's alerts as they were
            self._watches[key] = [copy.copy(by_side.get(side) or Watch()) for side in sides]
        while len(self._watches) > self.config.max_keys:
            self._forget_oldest()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
