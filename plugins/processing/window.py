"""`window`: tumbling, sliding and session windows per key, with aggregates, by event time
(the packet's `ts`) or arrival time; one packet per closed window per key.

The window logic is `windowing.py`, the aggregates `aggregates.py`, the watermark
`watermark.py`; this module reads the config and packets and makes the output packets.
docs/processing-windows.md describes the options and the semantics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any, ClassVar, Literal

from pydantic import Field, StrictFloat, StrictInt, field_validator, model_validator

from schnitzel import (
    NodeContext,
    PacketKind,
    PayloadProfile,
    PluginConfig,
    Routed,
    SchnitzelError,
    StreamPacket,
    StreamShape,
    Transform,
    weakest_profile,
)
from schnitzel_plugins.processing.aggregates import check_aggregate, percentile_of
from schnitzel_plugins.processing.fields import (
    FIELD_PATTERN,
    KEY_PATTERN,
    key_reader,
    number_reader,
)
from schnitzel_plugins.processing.handover import own_state, tagged
from schnitzel_plugins.processing.watermark import Watermark
from schnitzel_plugins.processing.windowing import ClosedWindow, WindowShape, WindowState

__all__ = ["Window", "WindowConfig"]


class _OnePacketAtATime(SchnitzelError):
    """Raised by `process_batch` before it changes anything: use `process` instead."""


MAX_WINDOWS_PER_PACKET = 1000
"""Most sliding windows one packet may fall in (`size_s / slide_s`)."""
TICK_S = 0.1
"""How often an arrival-time window, or one with `idle_timeout_s`, looks at the clock."""


class WindowConfig(PluginConfig):
    """Options of the window node."""

    type: Literal["tumbling", "sliding", "session"] = Field(
        default="tumbling", description="tumbling, sliding or session windows."
    )
    size_s: StrictFloat | None = Field(
        default=None, gt=0, description="Length of a window (tumbling, sliding), seconds."
    )
    slide_s: StrictFloat | None = Field(
        default=None, gt=0, description="Sliding only: a new window starts every slide_s."
    )
    gap_s: StrictFloat | None = Field(
        default=None, gt=0, description="Session only: a quiet gap that ends a session."
    )
    time: Literal["event", "arrival"] = Field(
        default="event",
        description="event: by the packet's ts (out of order allowed); arrival: by the clock "
        "when the packet reaches the node.",
    )
    key: str | None = Field(
        default=None,
        pattern=KEY_PATTERN,
        description="Windows per key: source_id, kind, payload.<field> or meta.<field> "
        "(null: one set of windows).",
    )
    field: str | None = Field(
        default=None,
        pattern=FIELD_PATTERN,
        description="Payload field (dotted path) holding the number to aggregate; null "
        "counts packets only.",
    )
    aggregates: list[str] | None = Field(
        default=None,
        min_length=1,
        description="count, sum, mean, min, max, stddev, first, last, pNN (percentile); "
        "default: count, with a field also mean, min and max.",
    )
    allowed_lateness_s: StrictFloat = Field(
        default=0.0,
        ge=0,
        description="A window stays open this long (event time) after its end, for packets "
        "out of order.",
    )
    on_late: Literal["drop", "route"] = Field(
        default="drop",
        description="A packet whose windows are closed: drop (counted as late) or route to "
        "the `late` port.",
    )
    idle_timeout_s: StrictFloat | None = Field(
        default=None,
        gt=0,
        description="When no packet came for this long (wall clock), event time moves on "
        "with the clock and due windows close (null: only packets move it).",
    )
    max_keys: StrictInt = Field(default=10_000, ge=1, description="Most keys with open windows.")
    max_bytes: StrictInt = Field(
        default=64 * 1024 * 1024, ge=4096, description="Most bytes of window state (estimate)."
    )
    when_full: Literal["emit_oldest", "drop_new"] = Field(
        default="emit_oldest",
        description="Over a bound: emit_oldest closes the windows due first early (counted "
        "as evicted); drop_new drops the packet (counted as dropped_full).",
    )
    kind: PacketKind = Field(default="window", description="Kind of the window packets.")

    @field_validator("aggregates")
    @classmethod
    def _known_aggregates(cls, names: list[str] | None) -> list[str] | None:
        if names is None:
            return None
        for name in names:
            check_aggregate(name)
        if len(set(names)) != len(names):
            raise ValueError("an aggregate is listed twice")
        return names

    @model_validator(mode="after")
    def _shape_is_complete(self) -> WindowConfig:
        if self.type == "session":
            if self.gap_s is None:
                raise ValueError("a session window needs gap_s")
            if self.size_s is not None or self.slide_s is not None:
                raise ValueError("a session window takes gap_s, not size_s or slide_s")
        else:
            if self.size_s is None:
                raise ValueError(f"a {self.type} window needs size_s")
            if self.gap_s is not None:
                raise ValueError("gap_s is for session windows")
        if self.type == "sliding":
            if self.slide_s is None:
                raise ValueError("a sliding window needs slide_s")
            if self.slide_s > self.size_s:  # type: ignore[operator]
                raise ValueError("slide_s must not exceed size_s (gaps would lose packets)")
            if self.size_s / self.slide_s > MAX_WINDOWS_PER_PACKET:  # type: ignore[operator]
                raise ValueError(
                    f"size_s / slide_s must be at most {MAX_WINDOWS_PER_PACKET} "
                    "(each packet goes into that many windows)"
                )
        elif self.type == "tumbling" and self.slide_s is not None:
            raise ValueError("slide_s is for sliding windows; a tumbling window slides by size_s")
        needs_field = [a for a in self.aggregate_names() if a != "count"]
        if needs_field and self.field is None:
            raise ValueError(f"set `field` (the payload number) to compute {needs_field[0]}")
        return self

    def aggregate_names(self) -> tuple[str, ...]:
        """The aggregates each window packet carries."""
        if self.aggregates is not None:
            return tuple(self.aggregates)
        return ("count",) if self.field is None else ("count", "mean", "min", "max")

    def shape(self) -> WindowShape:
        """The shape of the windows (what must match for a swap to hand the state over)."""
        size = self.size_s or 0.0
        return WindowShape(self.type, size, self.slide_s or size, self.gap_s or 0.0)


class Window(Transform):
    """Aggregates packets per key over tumbling, sliding or session windows."""

    name: ClassVar[str] = "window"
    Config: ClassVar[type[PluginConfig]] = WindowConfig
    outputs: ClassVar[tuple[str, ...]] = ("out", "late")
    emits_profile = PayloadProfile.JSON_PORTABLE

    @classmethod
    def output_shape(cls, config: Any, incoming: StreamShape | None) -> StreamShape:
        """Window packets of `kind`, plus what came in when late packets are routed on."""
        own = StreamShape(frozenset({config.kind}), PayloadProfile.JSON_PORTABLE)
        if config.on_late != "route" or incoming is None:
            return own
        kinds = None if incoming.kinds is None else incoming.kinds | {config.kind}
        return StreamShape(kinds, weakest_profile([incoming.profile, own.profile]))

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self._arrival = config.time == "arrival"
        self._key = key_reader(config.key) if config.key is not None else None
        self._value = number_reader(config.field) if config.field is not None else None
        self._names: tuple[str, ...] = config.aggregate_names()
        self._route_late = config.on_late == "route"
        keep_values = any(percentile_of(name) is not None for name in self._names)
        self._state = WindowState(
            config.shape(),
            keep_values,
            0.0 if self._arrival else config.allowed_lateness_s,
            config.max_keys,
            config.max_bytes,
            config.when_full,
        )
        self._state.owner = self
        self._watermark = Watermark(0.0 if self._arrival else config.idle_timeout_s)
        self._idle_timeout = config.idle_timeout_s is not None
        self._seq = 0
        self._carried: list[ClosedWindow] = []
        """Windows a swap's tighter bounds closed early, emitted with the next output."""
        if self._arrival or config.idle_timeout_s is not None:
            self.tick_interval_s = TICK_S

    def process(self, packet: StreamPacket) -> list[Any]:
        key = self._key(packet) if self._key is not None else None
        value = self._value(packet) if self._value is not None else None
        return self._apply(packet, key, value)

    def process_batch(self, packets: list[StreamPacket]) -> list[StreamPacket]:
        """The same as `process` per packet, with every field read before any window
        changes (all or nothing: a packet that fails leaves the state as it was)."""
        if self._route_late:
            raise _OnePacketAtATime  # Routed outputs: the runtime then calls process()
        keys = [self._key(p) for p in packets] if self._key is not None else None
        values = [self._value(p) for p in packets] if self._value is not None else None
        apply = self._apply
        out: list[StreamPacket] = []
        for index, packet in enumerate(packets):
            closed = apply(
                packet,
                keys[index] if keys is not None else None,
                values[index] if values is not None else None,
            )
            if closed:
                out += closed
        return out

    def _apply(self, packet: StreamPacket, key: Any, value: float | None) -> list[Any]:
        watermark = self._watermark
        if self._arrival:
            ts = now = time.time()
        else:
            ts = packet.ts
            now = time.time() if self._idle_timeout else 0.0
        state = self._state
        result, evicted = state.add(key, ts, value, watermark.value)
        if ts > watermark.newest:  # Watermark.observe, inline: this runs per packet
            watermark.newest = ts
            if ts > watermark.value:  # noqa: PLR1730 (per packet)
                watermark.value = ts
        watermark.last_arrival = now
        if state.next_close > watermark.value and not evicted and not self._carried:
            if result == "late" and self._route_late:
                return [Routed("late", packet)]
            return []
        outputs: list[Any] = self._packets([*evicted, *state.close_until(watermark.value)])
        if result == "late" and self._route_late:
            outputs.append(Routed("late", packet))
        return outputs

    def tick(self, now: float) -> Iterable[Any]:
        """Close what the clock alone made due (arrival time, or an idle input)."""
        return self._packets(self._state.close_until(self._watermark.advance_idle(now)))

    def flush(self) -> Iterable[Any]:
        """Every open window at the end of the run (marked `closed: flush`)."""
        return self._packets(self._state.close_all())

    def _packets(self, closed: list[ClosedWindow]) -> list[Any]:
        if self._carried:
            closed, self._carried = self._carried + closed, []
        packets = []
        node_id = self.context.node_id
        kind = self.config.kind
        for window in closed:
            if window.acc.count == 0:
                continue  # opened for a packet the bound then dropped
            payload: dict[str, Any] = {
                "key": window.key,
                "start": window.start,
                "end": window.end,
                "count": window.acc.count,
                **window.acc.result(self._names),
                "closed": window.closed,
            }
            meta = {"idempotency_key": f"{node_id}:{window.key!r}:{window.start!r}"}
            ts = window.end if math.isfinite(window.end) else time.time()
            packets.append(StreamPacket.new(kind, node_id, self._seq, payload, meta, ts=ts))
            self._seq += 1
        return packets

    def stats(self) -> dict[str, Any]:
        state = self._state
        watermark = self._watermark.value
        return {
            "open_windows": state.open,
            "keys": state.keys,
            "state_bytes": state.bytes,
            "closed": state.closed,
            "late": state.late,
            "dropped_full": state.dropped_full,
            "evicted": state.evicted,
            "watermark": watermark if math.isfinite(watermark) else None,
        }

    async def close(self) -> None:
        """Say so when open windows go with this instance (a swap that could not hand them
        over, a forced stop): they were never emitted."""
        if self._state.open and self._state.owner is self:
            self.context.event(
                "warning",
                f"{self._state.open} open windows were not emitted (the node closed before "
                "they did, and nothing took them over)",
            )

    def export_state(self) -> Any:
        """The open windows, the watermark and the output count, handed over as they are."""
        return tagged(
            self.name,
            {
                "version": 1,
                "state": self._state,
                "watermark": self._watermark,
                "seq": self._seq,
                "time": self.config.time,
                "key": self.config.key,
                "field": self.config.field,
            },
        )

    def import_state(self, state: Any) -> None:
        """Take over the windows of a window node of the same shape, key, field and time;
        refuse (the swap is then refused) another window's it cannot use. Another plugin's
        state (a fuse's) is not taken: the window starts empty and says so."""
        mine = own_state(self.name, state, self.context)
        if mine is None:
            return
        state = mine
        config = self.config
        old: WindowState = state["state"]
        same = (
            old.shape == config.shape()
            and state["time"] == config.time
            and state["key"] == config.key
            and state["field"] == config.field
        )
        if not same:
            raise ValueError(
                "the open windows cannot be handed over: the new config changes the windows' "
                "type, size, slide, gap, key, field or time; swap with the same ones (or stop "
                "and restart the graph to start over)"
            )
        if self._state.keep_values and not old.keep_values:
            raise ValueError(
                "the open windows kept no values, so they cannot give percentiles; add "
                "percentiles when no window is open (restart), or swap without them"
            )
        old.keep_values = self._state.keep_values
        lateness = 0.0 if self._arrival else config.allowed_lateness_s
        self._carried = old.rebound(lateness, config.max_keys, config.max_bytes, config.when_full)
        self._state = old
        watermark: Watermark = state["watermark"]
        watermark.idle_timeout_s = self._watermark.idle_timeout_s
        self._watermark = watermark
        self._seq = state["seq"]
        old.owner = self  # the old instance now closes without them
