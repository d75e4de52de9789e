"""`window` and `fuse` in real graphs run by the runtime: packets with chosen times from a
`jsonl` file, results against numpy; windows flushed at the end of the run, closed by the
clock while a source waits, and handed over by a live swap."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from schnitzel import RuntimeControl, StreamPacket, encode_packet
from schnitzel.control.actor import Actor
from schnitzel.runtime import Runtime
from tests.processing.reference import numbered_windows, seeded_readings
from tests.runtime import plugins
from tests.runtime.harness import TEST_PLUGINS, graph_from, run, steer

OPERATOR = Actor("ops", 1000, 42, None, "ctl")


def _write(path: Path, packets: list[StreamPacket]) -> None:
    path.write_text("".join(encode_packet(p) + "\n" for p in packets))


async def _until(predicate: Callable[[], bool], guard_s: float = 60.0) -> None:
    async with asyncio.timeout(guard_s):
        while not predicate():
            await asyncio.sleep(0.01)


def test_a_window_graph_gives_numpys_windows_and_routes_the_late(tmp_path: Path) -> None:
    readings = seeded_readings(11, n=3000)
    _write(tmp_path / "in.jsonl", readings.packets())
    graph = graph_from(
        tmp_path,
        f"""
nodes:
  - {{id: readings, kind: source, plugin: jsonl, config: {{path: in.jsonl, resume: false}}}}
  - id: win
    kind: transform
    plugin: window
    config: {{size_s: 1.0, key: payload.sensor, field: value, allowed_lateness_s: 0.5,
              aggregates: [count, mean, stddev, p95], on_late: route}}
  - {{id: out, kind: sink, plugin: "{TEST_PLUGINS}:Recorder"}}
  - {{id: late, kind: sink, plugin: "{TEST_PLUGINS}:Recorder"}}
edges:
  - {{from: readings, to: win}}
  - {{from: win.out, to: out}}
  - {{from: win.late, to: late}}
""",
    )
    report = run(graph, tmp_path)
    want, late_count = numbered_windows(readings, 1.0, 1.0, 0.5)
    got = {(p.payload["key"], p.payload["start"]): p.payload for p in plugins.RECORDS["out"]}
    assert len(got) == len(plugins.RECORDS["out"]) == len(want)
    for where, expected in want.items():
        for name in ("count", "mean", "stddev", "p95"):
            assert got[where][name] == pytest.approx(expected[name], rel=1e-9, abs=1e-9)
    assert len(plugins.RECORDS["late"]) == late_count
    closed_by = {p.payload["closed"] for p in plugins.RECORDS["out"]}
    assert closed_by == {"watermark", "flush"}  # the last windows came out at the end
    stats = report["nodes"]["win"]["plugin_stats"]
    assert stats["late"] == late_count
    assert stats["open_windows"] == 0


def test_a_fuse_graph_matches_numpys_interpolation_and_nearest(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    base = 1_700_000_000.0
    imu_t = base + np.cumsum(rng.uniform(0.005, 0.015, 2000))  # ~100 Hz
    temp_t = base + np.arange(0.0, 20.0, 0.25)  # 4 Hz
    cam_t = base + np.sort(rng.uniform(1.0, 18.0, 60))
    imu_ax = rng.normal(0.0, 1.0, len(imu_t)).round(4)
    temp_c = (20.0 + np.cumsum(rng.normal(0.0, 0.1, len(temp_t)))).round(3)
    packets = [
        *(
            StreamPacket.new("sensor", "imu", i, {"ax": float(a)}, ts=float(t))
            for i, (t, a) in enumerate(zip(imu_t, imu_ax, strict=True))
        ),
        *(
            StreamPacket.new("temperature", "thermo", i, {"c": float(c)}, ts=float(t))
            for i, (t, c) in enumerate(zip(temp_t, temp_c, strict=True))
        ),
        *(
            StreamPacket.new("event", "cam", i, {"label": "person"}, ts=float(t))
            for i, t in enumerate(cam_t)
        ),
    ]
    packets.sort(key=lambda p: p.ts)
    _write(tmp_path / "in.jsonl", packets)
    graph = graph_from(
        tmp_path,
        f"""
nodes:
  - {{id: streams, kind: source, plugin: jsonl, config: {{path: in.jsonl, resume: false}}}}
  - id: fused
    kind: transform
    plugin: fuse
    config:
      primary: {{source_id: cam}}
      partners:
        - {{name: imu, source_id: imu, fields: [ax]}}
        - {{name: temp, source_id: thermo, fields: [c], strategy: interpolate}}
      tolerance_s: 0.3
  - {{id: out, kind: sink, plugin: "{TEST_PLUGINS}:Recorder"}}
edges:
  - {{from: streams, to: fused}}
  - {{from: fused, to: out}}
""",
    )
    report = run(graph, tmp_path)
    out = sorted(plugins.RECORDS["out"], key=lambda p: p.seq)
    assert [p.seq for p in out] == list(range(60))
    want_c = np.interp(cam_t, temp_t, temp_c)
    nearest = np.abs(imu_t[None, :] - cam_t[:, None]).argmin(axis=1)
    for packet, c, i in zip(out, want_c, nearest, strict=True):
        assert packet.payload["temp"]["c"] == pytest.approx(c, abs=1e-5)
        assert packet.payload["imu"]["ax"] == imu_ax[i]
        assert packet.meta["fused_missing"] == []
    assert report["nodes"]["fused"]["plugin_stats"]["fused"] == 60


def test_an_arrival_window_closes_on_the_clock_while_the_source_waits(tmp_path: Path) -> None:
    _write(
        tmp_path / "in.jsonl",
        [StreamPacket.new("sensor", "s", i, {"value": float(i)}) for i in range(10)],
    )
    graph = graph_from(
        tmp_path,
        f"""
nodes:
  - id: readings
    kind: source
    plugin: jsonl
    config: {{path: in.jsonl, resume: false, follow: true, poll_interval_s: 0.05}}
  - id: win
    kind: transform
    plugin: window
    config: {{size_s: 0.2, time: arrival, field: value, aggregates: [count, sum]}}
  - {{id: out, kind: sink, plugin: "{TEST_PLUGINS}:Recorder"}}
edges:
  - {{from: readings, to: win}}
  - {{from: win, to: out}}
""",
    )

    def windowed() -> int:
        return sum(p.payload["count"] for p in plugins.RECORDS["out"])

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await _until(lambda: windowed() == 10)  # the source never ends: only ticks close

    steer(graph, tmp_path / "state", steps)
    assert sum(p.payload["sum"] for p in plugins.RECORDS["out"]) == 45.0
    assert {p.payload["closed"] for p in plugins.RECORDS["out"]} == {"watermark"}


def test_a_live_swap_hands_the_open_windows_over(tmp_path: Path) -> None:
    graph = graph_from(
        tmp_path,
        """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 40000, payload: {value: 1.0}}}
  - id: win
    kind: transform
    plugin: window
    config: {size_s: 1.0e+9, field: value, aggregates: [count, sum]}
    inbox: {max: 256}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:Recorder"}
edges:
  - {from: src, to: win}
  - {from: win, to: out}
""",
    )
    results: list[dict[str, Any]] = []

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await _until(lambda: runtime.nodes["win"].metrics.processed >= 5000)
        config = {"size_s": 1.0e9, "field": "value", "aggregates": ["count", "sum", "max"]}
        results.append(await control.swap("win", "window", config, actor=OPERATOR))

    steer(graph, tmp_path / "state", steps, stop=False)
    assert results[0]["state_handed_over"] is True
    windows = [p.payload for p in plugins.RECORDS["out"]]
    assert sum(w["count"] for w in windows) == 40000  # nothing the old node held was lost
    assert all("max" in w for w in windows)  # they came out of the new node, at the end


def test_a_window_feeding_a_window_is_flushed_upstream_first(tmp_path: Path) -> None:
    graph = graph_from(
        tmp_path,
        """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 1000}}
  - {id: minute, kind: transform, plugin: window, config: {size_s: 60.0}}
  - id: hour
    kind: transform
    plugin: window
    config: {size_s: 3600.0, field: count, aggregates: [sum]}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:Recorder"}
edges:
  - {from: src, to: minute}
  - {from: minute, to: hour}
  - {from: hour, to: out}
""",
    )
    run(graph, tmp_path)
    assert sum(p.payload["sum"] for p in plugins.RECORDS["out"]) == 1000


def test_a_stop_by_duration_flushes_the_open_windows(tmp_path: Path) -> None:
    graph = graph_from(
        tmp_path,
        """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 2000}}
  - {id: win, kind: transform, plugin: window, config: {size_s: 1.0e+9}}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:Recorder"}
edges:
  - {from: src, to: win}
  - {from: win, to: out}
""",
    )
    report = run(graph, tmp_path, duration_s=0.3)
    assert report["stop_reason"] == "duration"
    counted = sum(p.payload["count"] for p in plugins.RECORDS["out"])
    assert counted == report["nodes"]["src"]["out"] > 0
    assert {p.payload["closed"] for p in plugins.RECORDS["out"]} == {"flush"}
