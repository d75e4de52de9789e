"""The open windows of a `window` node: which windows a packet falls in, when they close,
and the bound on what they hold.

Pure logic, no runtime imports, so it is tested on its own and handed over whole on a swap.

- tumbling: `[k*size, (k+1)*size)` in event time;
- sliding: `[k*slide, k*slide + size)`, so a packet falls in `size/slide` windows;
- session: per key, packets less than `gap` apart (in event time, in any order) share a
  window `[first, last + gap)`; a packet that bridges two sessions merges them.

A window closes once the watermark reaches its end plus `allowed_lateness_s`. A packet all of
whose windows are closed is late: counted, and handed back to the caller (to route it).

Bounds: at most `max_keys` keys with open windows and `max_bytes` of state (an estimate:
each window, plus 8 bytes per value kept for percentiles). When a packet needs more,
`when_full` decides: `drop_new` drops that packet (counted as `dropped_full`), `emit_oldest`
closes the windows due first, early (emitted with `closed: "full"`, counted as `evicted`).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal

from schnitzel_plugins.processing.aggregates import VALUE_BYTES, WINDOW_BYTES, Accumulator

__all__ = ["Added", "ClosedWindow", "OpenWindow", "WindowShape", "WindowState"]

WindowType = Literal["tumbling", "sliding", "session"]
WhenFull = Literal["drop_new", "emit_oldest"]
Added = Literal["added", "late", "full"]
"""What became of a packet: in its windows, late (every window closed), dropped (full)."""
_ADDED: tuple[Added, list[ClosedWindow]] = ("added", [])
"""What `add` returns most of the time (never changed: callers copy before adding)."""


@dataclass(frozen=True)
class WindowShape:
    """What windows a node makes; two nodes of one shape can hand their state over."""

    type: WindowType
    size_s: float
    slide_s: float
    gap_s: float


class OpenWindow:
    """One window of one key, still collecting."""

    __slots__ = ("acc", "close_at", "end", "key", "number", "queued_at", "start")

    def __init__(self, key: Hashable, start: float, end: float, acc: Accumulator) -> None:
        self.key = key
        self.start = start
        self.end = end
        self.acc = acc
        self.close_at = math.inf
        self.queued_at = math.inf
        """The earliest time this window has in the close queue."""
        self.number = 0
        """Which window of its key (tumbling and sliding: k of `k*slide`)."""


@dataclass(frozen=True)
class ClosedWindow:
    """A window the node emits: its key, bounds, aggregates and why it closed."""

    key: Hashable
    start: float
    end: float
    acc: Accumulator
    closed: str
    """`watermark` (complete), `flush` (end of the run) or `full` (evicted by the bound)."""


class WindowState:
    """Every open window of a node, the close order, the bound, and the counters."""

    def __init__(
        self,
        shape: WindowShape,
        keep_values: bool,
        allowed_lateness_s: float,
        max_keys: int,
        max_bytes: int,
        when_full: WhenFull,
    ) -> None:
        self.shape = shape
        self._tumbling = shape.type == "tumbling"
        self._size = shape.size_s
        self.keep_values = keep_values
        self.allowed_lateness_s = allowed_lateness_s
        self.max_keys = max_keys
        self.max_bytes = max_bytes
        self.when_full = when_full
        self._by_number: dict[tuple[Hashable, int], OpenWindow] = {}
        self._sessions: dict[Hashable, list[OpenWindow]] = {}
        self._per_key: dict[Hashable, int] = {}
        self._due: list[tuple[float, int, OpenWindow]] = []
        self._serial = 0
        self.open = 0
        self.bytes = 0
        self.late = 0
        self.dropped_full = 0
        self.evicted = 0
        self.closed = 0
        self.owner: object = None
        """The plugin instance holding this state (a swap hands it to the new one)."""

    # -- taking packets ----------------------------------------------------------------------

    def add(
        self, key: Hashable, ts: float, value: float | None, watermark: float
    ) -> tuple[Added, list[ClosedWindow]]:
        """Put one packet in its windows (before the watermark moves for it). Returns what
        became of it and the windows the bound closed early to make room."""
        if self._tumbling:  # the common case first: the packet's window is open already
            window = self._by_number.get((key, math.floor(ts / self._size)))
            if window is not None:
                acc = window.acc
                if value is None:
                    acc.add_count(ts)
                    return _ADDED
                if acc.values is None:
                    acc.add(value, ts)
                    return _ADDED
                if self.bytes + VALUE_BYTES <= self.max_bytes:
                    acc.add(value, ts)
                    self.bytes += VALUE_BYTES
                    return _ADDED
        evicted: list[ClosedWindow] = []
        if self.shape.type == "session":
            result = self._add_session(key, ts, value, watermark, evicted)
        else:
            result = self._add_numbered(key, ts, value, watermark, evicted)
        if result == "late":
            self.late += 1
        elif result == "full":
            self.dropped_full += 1
        return result, evicted

    def _add_numbered(
        self,
        key: Hashable,
        ts: float,
        value: float | None,
        watermark: float,
        evicted: list[ClosedWindow],
    ) -> Added:
        shape = self.shape
        size, slide = shape.size_s, shape.slide_s
        last = math.floor(ts / slide)
        first = math.floor((ts - size) / slide) + 1
        lateness = self.allowed_lateness_s
        windows: list[OpenWindow] = []
        by_number = self._by_number
        for number in range(first, last + 1):
            window = by_number.get((key, number))
            if window is None:
                start = number * slide
                if start + size + lateness <= watermark:
                    continue  # closed already: this packet is late for it
                if not self._room_for(key, evicted):
                    return "full"
                window = OpenWindow(key, start, start + size, Accumulator(self.keep_values))
                window.number = number
                by_number[(key, number)] = window
                self._opened(window)
            windows.append(window)
        if not windows:
            return "late"
        for window in windows:
            if not self._take(window, ts, value, evicted):
                return "full"
        return "added"

    def _add_session(
        self,
        key: Hashable,
        ts: float,
        value: float | None,
        watermark: float,
        evicted: list[ClosedWindow],
    ) -> Added:
        gap = self.shape.gap_s
        sessions = self._sessions.get(key, [])
        touching = [s for s in sessions if ts < s.end and s.start < ts + gap]
        if not touching:
            if ts + gap + self.allowed_lateness_s <= watermark:
                return "late"
            if not self._room_for(key, evicted):
                return "full"
            window = OpenWindow(key, ts, ts + gap, Accumulator(self.keep_values))
            self._sessions.setdefault(key, []).append(window)
            self._opened(window)
        else:
            window = touching[0]
            for other in touching[1:]:  # the packet bridges them: one session now
                window.acc.merge(other.acc)
                window.start = min(window.start, other.start)
                window.end = max(window.end, other.end)
                self._forget(other)
            window.start = min(window.start, ts)
            window.end = max(window.end, ts + gap)
            self._schedule(window)
        return "added" if self._take(window, ts, value, evicted) else "full"

    def _take(
        self, window: OpenWindow, ts: float, value: float | None, evicted: list[ClosedWindow]
    ) -> bool:
        acc = window.acc
        if value is None:
            acc.add_count(ts)
            return True
        if acc.values is None:
            acc.add(value, ts)
            return True
        room = (
            True
            if self.bytes + VALUE_BYTES <= self.max_bytes
            else self._make_room(VALUE_BYTES, evicted, window)
        )
        if room is False:
            return False
        acc.add(value, ts)
        self.bytes += VALUE_BYTES
        if room == "self":  # this window is due first: it goes out early, with this packet
            self.evicted += 1
            evicted.append(self._close(window, "full"))
        return True

    def _room_for(self, key: Hashable, evicted: list[ClosedWindow]) -> bool:
        """Room for one more window of `key` under both bounds (evicting if allowed)."""
        if key not in self._per_key and len(self._per_key) >= self.max_keys:
            if self.when_full == "drop_new":
                return False
            while key not in self._per_key and len(self._per_key) >= self.max_keys:
                evicted.append(self._evict_first())
        return (
            self.bytes + WINDOW_BYTES <= self.max_bytes
            or self._make_room(WINDOW_BYTES, evicted, None) is True
        )

    def _make_room(
        self, needed: int, evicted: list[ClosedWindow], keep: OpenWindow | None
    ) -> bool | Literal["self"]:
        """Evict the windows due first until `needed` more bytes fit; "self" when `keep`
        (the window being filled) is itself due first."""
        if self.when_full == "drop_new":
            return False
        while self.bytes + needed > self.max_bytes and self.open:
            if keep is not None and self._peek_first() is keep:
                return "self"
            evicted.append(self._evict_first())
        return self.bytes + needed <= self.max_bytes

    # -- closing ---------------------------------------------------------------------------

    @property
    def next_close(self) -> float:
        """When the next window closes (its end plus the lateness); inf when none is open."""
        window = self._peek_first()
        return window.close_at if window is not None else math.inf

    def close_until(self, watermark: float) -> list[ClosedWindow]:
        """The windows whose end plus the lateness the watermark reached, in close order."""
        due = self._due
        closed: list[ClosedWindow] = []
        while due and due[0][0] <= watermark:
            window = self._peek_first()
            if window is None or window.close_at > watermark:
                break
            heapq.heappop(due)
            closed.append(self._close(window, "watermark"))
        return closed

    def close_all(self, why: str = "flush") -> list[ClosedWindow]:
        """Every open window, in close order (end of the run)."""
        closed: list[ClosedWindow] = []
        while self.open:
            closed.append(self._close(self._pop_first(), why))
        return closed

    def _evict_first(self) -> ClosedWindow:
        self.evicted += 1
        return self._close(self._pop_first(), "full")

    def _peek_first(self) -> OpenWindow | None:
        """The window due first, with the queue's stale entries at its head put right: gone
        (merged, evicted), or queued before its session grew (queued again, when it is due)."""
        due = self._due
        while due:
            queued, _, window = due[0]
            if window.close_at == queued:
                return window
            heapq.heappop(due)
            if window.close_at > queued and window.queued_at == queued:  # a session grew
                self._queue(window)
        return None

    def _pop_first(self) -> OpenWindow:
        window = self._peek_first()
        assert window is not None, "an open window is always scheduled"
        heapq.heappop(self._due)
        return window

    def _close(self, window: OpenWindow, why: str) -> ClosedWindow:
        self._forget(window)
        self.closed += 1
        return ClosedWindow(window.key, window.start, window.end, window.acc, why)

    # -- bookkeeping -----------------------------------------------------------------------

    def _opened(self, window: OpenWindow) -> None:
        self.open += 1
        self.bytes += WINDOW_BYTES
        self._per_key[window.key] = self._per_key.get(window.key, 0) + 1
        self._schedule(window)

    def _schedule(self, window: OpenWindow) -> None:
        window.close_at = window.end + self.allowed_lateness_s
        # A session that grows stays queued at its old time and is queued again only when that
        # time comes: one entry per window, not one per packet (3600 s sessions at 1000
        # packets/s kept 3.6 million entries, outside max_bytes).
        if window.close_at < window.queued_at:
            self._queue(window)

    def _queue(self, window: OpenWindow) -> None:
        window.queued_at = window.close_at
        self._serial += 1
        heapq.heappush(self._due, (window.close_at, self._serial, window))

    def _forget(self, window: OpenWindow) -> None:
        window.close_at = math.nan  # its heap entries are stale from now on
        self.open -= 1
        self.bytes -= window.acc.nbytes
        key = window.key
        left = self._per_key[key] - 1
        if left:
            self._per_key[key] = left
        else:
            del self._per_key[key]
        if self.shape.type == "session":
            sessions = self._sessions[key]
            sessions.remove(window)
            if not sessions:
                del self._sessions[key]
        else:
            del self._by_number[(key, window.number)]

    @property
    def keys(self) -> int:
        """Keys with at least one open window."""
        return len(self._per_key)

    def rebound(
        self, allowed_lateness_s: float, max_keys: int, max_bytes: int, when_full: WhenFull
    ) -> list[ClosedWindow]:
        """Take new bounds (a swap to another config); what no longer fits closes early."""
        self.max_keys, self.max_bytes, self.when_full = max_keys, max_bytes, when_full
        if allowed_lateness_s != self.allowed_lateness_s:
            self.allowed_lateness_s = allowed_lateness_s
            windows = {id(e[2]): e[2] for e in self._due if not math.isnan(e[2].close_at)}
            for window in windows.values():
                self._schedule(window)
        evicted: list[ClosedWindow] = []
        while self.open and (len(self._per_key) > max_keys or self.bytes > max_bytes):
            evicted.append(self._evict_first())
        return evicted
