"""Independent computations to check `window` against: numpy over the same input, written
as whole-array definitions rather than the plugin's incremental updates."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from schnitzel import NodeContext, Routed, StreamPacket
from schnitzel_plugins.processing.window import Window, WindowConfig

BASE = 1_700_000_000.0


@dataclass
class Readings:
    """Seeded sensor readings, in the order they arrive (out of order, some late)."""

    ts: np.ndarray
    keys: np.ndarray
    values: np.ndarray

    def packets(self) -> list[StreamPacket]:
        return [
            StreamPacket.new("sensor", "s", i, {"sensor": int(k), "value": float(v)}, ts=float(t))
            for i, (t, k, v) in enumerate(zip(self.ts, self.keys, self.values, strict=True))
        ]


def seeded_readings(
    seed: int, n: int = 4000, keys: int = 5, span_s: float = 40.0, late_share: float = 0.03
) -> Readings:
    """Readings over `span_s`, arriving up to 0.4 s out of order; `late_share` of them
    arrive 2 to 5 s behind (late for 1 s windows with less lateness than that)."""
    rng = np.random.default_rng(seed)
    ts = BASE + np.sort(rng.uniform(0.0, span_s, n))
    delay = rng.uniform(0.0, 0.4, n)
    late = rng.random(n) < late_share
    delay[late] = rng.uniform(2.0, 5.0, late.sum())
    order = np.argsort(ts + delay, kind="stable")
    return Readings(
        ts[order], rng.integers(0, keys, n)[order], rng.normal(20.0, 5.0, n).round(3)[order]
    )


def session_readings(seed: int, keys: int = 4, bursts: int = 15) -> Readings:
    """Bursts of readings per key (sessions), arriving up to 0.4 s out of order."""
    rng = np.random.default_rng(seed)
    ts_parts, key_parts = [], []
    for key in range(keys):
        start = BASE
        for _ in range(bursts):
            start += rng.exponential(3.0) + 1.5
            steps = rng.uniform(0.01, 0.3, rng.integers(3, 30))
            times = start + np.cumsum(steps)
            ts_parts.append(times)
            key_parts.append(np.full(len(times), key))
            start = times[-1]
    ts = np.concatenate(ts_parts)
    keys_all = np.concatenate(key_parts)
    order = np.argsort(ts + rng.uniform(0.0, 0.4, len(ts)), kind="stable")
    values = rng.normal(5.0, 2.0, len(ts)).round(3)
    return Readings(ts[order], keys_all[order], values[order])


def aggregates(ts: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """The window's aggregates by numpy (population stddev; linear percentiles)."""
    return {
        "count": len(values),
        "sum": float(np.sum(values)),
        "mean": float(np.mean(values)),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
        "stddev": float(np.std(values)),
        "first": float(values[np.argmin(ts)]),
        "last": float(values[np.argmax(ts)]),
        "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)),
    }


def numbered_windows(
    r: Readings, size: float, slide: float, lateness: float
) -> tuple[dict[tuple[int, float], dict[str, float]], int]:
    """Tumbling (slide = size) or sliding windows by definition: a packet is in window k
    when k*slide <= ts < k*slide + size, unless the newest ts seen before it already
    reached that window's end plus the lateness. Returns the windows by (key, start) and how
    many packets were in no window at all (late)."""
    seen_before = np.concatenate(([-np.inf], np.maximum.accumulate(r.ts)[:-1]))
    first = np.floor((r.ts - size) / slide).astype(np.int64) + 1
    last = np.floor(r.ts / slide).astype(np.int64)
    member_key, member_k, member_i = [], [], []
    in_any = np.zeros(len(r.ts), dtype=bool)
    for span in range(int((last - first).max()) + 1):
        k = first + span
        open_ = (k <= last) & (seen_before < k * slide + size + lateness)
        in_any |= open_
        member_key.append(r.keys[open_])
        member_k.append(k[open_])
        member_i.append(np.nonzero(open_)[0])
    keys = np.concatenate(member_key)
    ks = np.concatenate(member_k)
    index = np.concatenate(member_i)
    windows = {}
    for key, number in {(int(a), int(b)) for a, b in zip(keys, ks, strict=True)}:
        chosen = index[(keys == key) & (ks == number)]
        windows[(key, number * slide)] = aggregates(r.ts[chosen], r.values[chosen])
    return windows, int((~in_any).sum())


def session_windows(r: Readings, gap: float) -> dict[tuple[int, float], dict[str, float]]:
    """Session windows by definition: per key, sorted by time, split where two readings are
    `gap` or more apart."""
    windows = {}
    for key in np.unique(r.keys):
        mine = r.keys == key
        order = np.argsort(r.ts[mine])
        ts, values = r.ts[mine][order], r.values[mine][order]
        cuts = np.nonzero(np.diff(ts) >= gap)[0] + 1
        for part_ts, part_values in zip(np.split(ts, cuts), np.split(values, cuts), strict=True):
            windows[(int(key), float(part_ts[0]))] = aggregates(part_ts, part_values)
    return windows


def make_window(
    config: dict[str, Any], node_id: str = "win", events: list[tuple[str, str]] | None = None
) -> Window:
    """A window plugin as the runtime makes it; `events` collects what it tells the operator."""

    def event(level: str, message: str) -> None:
        if events is not None:
            events.append((level, message))

    context = NodeContext(node_id, Path("."), Path("state"), logging.getLogger("t"), event=event)
    return Window(WindowConfig.model_validate(config), context)


def run_window(window: Window, packets: list[StreamPacket]) -> tuple[list[Any], list[Any]]:
    """Feed the packets one by one, then flush: (window payloads, late packets routed)."""
    out: list[Any] = []
    for packet in packets:
        out += window.process(packet)
    out += list(window.flush())
    payloads = [p.payload for p in out if isinstance(p, StreamPacket)]
    late = [p.packet for p in out if isinstance(p, Routed)]
    return payloads, late
