"""`window`: a tumbling 1 s window over 1,000 keys at 50,000 packets/s (event time), against a
plain-Python dict-of-lists doing the same aggregation, in one run.

The input is 10 s of readings (500,000 packets, keys round-robin, in time order), made once.
Each approach sees every packet once and emits one result per key per second:

- `dict-of-lists`: the reference one writes first: per second, a dict from key to the list of
  its values; at each new second, count/mean/min/max of every list, then a fresh dict. It
  knows the input is in order, so it has no lateness, watermark, bounds or out-of-order
  handling, and emits plain dicts, not packets.
- `window`: the plugin's `process` per packet, and `process_batch` on micro-batches of 256
  (what the runtime calls), with count/mean/min/max, and with stddev and p95 as well (p95
  keeps every value, as the dict-of-lists does).

Then the same input through the runtime (`_keyed_source:KeyedReadings -> window -> null`)
against `-> passthrough -> null`, the runtime's own cost per packet, as fast as it goes.

Throughput is the best of 3 runs; memory is tracemalloc's peak over one separate run (so
timing runs are not slowed by tracing): the state held at its largest plus the results of
one second, which both hand on rather than keep (the input, made before, is not counted).
Run: .venv/bin/python bench/bench_processing_window.py
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_of, print_summary

from schnitzel import NodeContext, Runtime, StreamPacket
from schnitzel.validate.validator import validate_text
from schnitzel_plugins.processing.window import Window, WindowConfig

RATE = 50_000
SECONDS = 10
KEYS = 1000
BASE = 1_700_000_000.0


def make_input() -> list[StreamPacket]:
    new = StreamPacket.new
    return [
        new("sensor", "s", i, {"sensor": i % KEYS, "value": float(i % 97)}, ts=BASE + i / RATE)
        for i in range(RATE * SECONDS)
    ]


def dict_of_lists(packets: list[StreamPacket]) -> int:
    out: list[dict[str, Any]] = []
    current = -1
    lists: dict[Any, list[float]] = {}
    emitted = [0]

    def close(second: int) -> None:
        emitted[0] += len(out)
        out.clear()  # results are handed on, not kept: the peak is the state
        for key, values in lists.items():
            out.append(
                {
                    "key": key,
                    "start": float(second),
                    "count": len(values),
                    "mean": sum(values) / len(values),
                    "min": min(values),
                    "max": max(values),
                }
            )

    for packet in packets:
        second = math.floor(packet.ts)
        if second != current:
            if lists:
                close(current)
            current, lists = second, {}
        payload = packet.payload
        values = lists.get(payload["sensor"])
        if values is None:
            lists[payload["sensor"]] = values = []
        values.append(payload["value"])
    close(current)
    return emitted[0] + len(out)


def window_plugin(
    aggregates: list[str], batch: int | None = None
) -> Callable[[list[StreamPacket]], int]:
    """The plugin fed packet by packet through `process`, or through `process_batch` in
    micro-batches of `batch` (what the runtime does: up to 256 at a time)."""

    def run(packets: list[StreamPacket]) -> int:
        config = WindowConfig.model_validate(
            {"size_s": 1.0, "key": "payload.sensor", "field": "value", "aggregates": aggregates}
        )
        window = Window(config, NodeContext("win", Path("."), Path("."), logging.getLogger("b")))
        emitted = 0  # results are handed on, not kept: the peak is the state
        if batch is None:
            process = window.process
            for packet in packets:
                result = process(packet)
                if result:
                    emitted += len(result)
        else:
            process_batch = window.process_batch
            for start in range(0, len(packets), batch):
                emitted += len(process_batch(packets[start : start + batch]))
        return emitted + len(list(window.flush()))

    return run


def peak_bytes(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


WINDOW = (
    "{kind: transform, plugin: window, config: {size_s: 1.0, key: payload.sensor, field: value}}"
)
PASSTHROUGH = "{kind: transform, plugin: passthrough}"


def through_runtime(middle: str, root: Path) -> float:
    """Packets per second of `keyed -> middle -> null` run by the runtime, best of 3."""
    text = (
        "version: 2\nruntime: {allow_modules: [_keyed_source]}\nnodes:\n"
        f"  - {{id: keyed, kind: source, plugin: _keyed_source:KeyedReadings,"
        f" config: {{count: {RATE * SECONDS}, keys: {KEYS}, rate_hz: {float(RATE)}}}}}\n"
        f"  - {{id: mid, {middle[1:]}\n"
        '  - {id: out, kind: sink, plugin: "null"}\n'
        "edges:\n  - {from: keyed, to: mid}\n  - {from: mid, to: out}\n"
    )
    path = root / "graph.yaml"
    path.write_text(text)
    result = validate_text(text, source=str(path), path=path)
    assert result.graph is not None, [p.render() for p in result.report.problems]
    best = math.inf
    for _ in range(3):
        runtime = Runtime(result.graph, state_dir=root / "state")
        start = time.perf_counter()
        report = asyncio.run(runtime.run())
        best = min(best, time.perf_counter() - start)
        assert report["status"] == "ok" and report["totals"]["emitted"] == RATE * SECONDS
    return RATE * SECONDS / best


def main() -> None:
    packets = make_input()
    n = len(packets)
    basic = ["count", "mean", "min", "max"]
    more = [*basic, "stddev", "p95"]
    cases: list[tuple[str, Callable[[list[StreamPacket]], Any]]] = [
        ("dict-of-lists (count, mean, min, max)", dict_of_lists),
        ("window.process (count, mean, min, max)", window_plugin(basic)),
        ("window.process_batch (count, mean, min, max)", window_plugin(basic, 256)),
        ("window.process_batch (+ stddev, p95)", window_plugin(more, 256)),
    ]
    results = {}
    for name, fn in cases:
        emitted = fn(packets)
        seconds = best_of(partial(fn, packets), repeat=3)
        peak = peak_bytes(partial(fn, packets))
        results[name] = (n / seconds, peak, emitted)
        print(
            f"{name}: {n / seconds:,.0f} packets/s, peak {peak / 2**20:.1f} MiB, {emitted} windows"
        )
    base_rate, base_peak, _ = results[cases[0][0]]
    rows = [
        [
            name,
            f"{rate:,.0f}",
            f"{rate / base_rate:.2f}x",
            f"{rate / RATE:.1f}x",
            f"{peak / 2**20:.1f}",
            f"{peak / base_peak:.2f}x",
            str(emitted),
        ]
        for name, (rate, peak, emitted) in results.items()
    ]
    with tempfile.TemporaryDirectory() as root:
        plain = through_runtime(PASSTHROUGH, Path(root))
        windowed = through_runtime(WINDOW, Path(root))
    print(f"\n{n:,} packets, {KEYS} keys, 1 s tumbling windows, {RATE:,} packets/s of event time")
    print("through the runtime (source -> X -> null, as fast as it goes):")
    print(f"  passthrough: {plain:,.0f} packets/s")
    print(
        f"  window:      {windowed:,.0f} packets/s ({windowed / plain:.2f}x passthrough, "
        f"{windowed / RATE:.1f}x the 50k/s the stream needs)"
    )
    print_summary(
        ["approach", "packets/s", "vs dict", "vs 50k/s", "peak MiB", "vs dict", "windows"], rows
    )


if __name__ == "__main__":
    main()
