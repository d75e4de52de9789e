"""The runtime under load: throughput, latency, memory, fan-out/fan-in, snapshot cost.

Each figure is read against a baseline measured in the same run (the machine is shared and
noisy, so no absolute time is a verdict on its own):

1. Throughput of `synthetic (count N) -> passthrough x3 -> null` through `Runtime` (every
   metric on; there is no switch to turn them off) against a hand-written asyncio pipeline of
   the same shape (bench/_pipeline_baseline.py: a task per stage, `asyncio.Queue(1024)`
   between stages, one packet per put/get). Best of several interleaved runs.
   Goal: schnitzel >= 1.5x the baseline.
2. Source-to-sink latency at an offered 5,000 packets/s through the same shape: p99 from the
   run report's sink `latency_ms` (10% buckets) and from a recording sink
   (bench/_latency_sink.py, `time.time() - packet.ts` per packet), against the baseline
   pipeline paced to the same rate. Median of interleaved runs. Goal: p99 < 5 ms.
3. Memory of an endless `synthetic -> passthrough -> null` run for 1,000,000 packets
   (`max_packets`): RSS sampled every 100k packets in a fresh process (flat: last sample
   minus the one at 200k), that process's peak (VmHWM), and the peak RSS of `schnitzel run`
   on the same graph in a subprocess. Baseline: a bare interpreter that imports
   schnitzel.runtime and every plugin pack, as `schnitzel run` does. Goal: < 100 MB peak.
   Each child's peak is `getrusage(RUSAGE_CHILDREN).ru_maxrss` read by a small launcher
   whose only child it is (see LAUNCHER for why not in this process).
4. Fan-out to 8 null sinks and fan-in from 8 sources into `passthrough -> null`: packets/s
   against the linear pipeline of item 1 (interleaved with it); and fairness: 8 endless
   sources under one `max_packets` budget, min/max of the packets each source emitted.
   Goal: no source starves (min/max >= 0.9).
5. `runtime.snapshot()` on a running 50-node graph (10 x `synthetic -> passthrough x3 ->
   null`): µs per call, against reading the same nodes' raw counters into a dict, and the
   share of one core that 10 snapshots a second take.

Run: .venv/bin/python bench/bench_runtime.py [--quick] [--profile]
(`--quick`: smaller counts and shorter runs; `--profile`: also a cProfile top-10 of one
schnitzel run of item 1.)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import itertools
import json
import math
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _latency_sink import RECORDED
from _pipeline_baseline import linear_pipeline
from _timing import proc_status_kb

from schnitzel.runtime import Runtime
from schnitzel.runtime.runtime import StopReason
from schnitzel.validate import ValidatedGraph, validate_text

BENCH_DIR = Path(__file__).resolve().parent
SCHNITZEL_CLI = Path(sys.executable).parent / "schnitzel"
MB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    """How much each item does (`--quick` shrinks everything)."""

    packets: int
    rounds: int
    latency_s: float
    latency_rounds: int
    memory_packets: int
    fairness_packets: int
    snapshots: int


FULL = Sizes(200_000, 5, 3.0, 3, 1_000_000, 200_000, 300)
QUICK = Sizes(50_000, 3, 1.0, 3, 300_000, 50_000, 100)
RATE_HZ = 5000.0
SAMPLE_EVERY = 100_000


# -- graphs ------------------------------------------------------------------------------------


def synthetic(node_id: str, count: int | None = None, rate_hz: float | None = None) -> str:
    config = ["payload: {v: 1}"]
    if count is not None:
        config.append(f"count: {count}")
    if rate_hz is not None:
        config.append(f"rate_hz: {float(rate_hz)}")
    return f"{{id: {node_id}, kind: source, plugin: synthetic, config: {{{', '.join(config)}}}}}"


def passthrough(node_id: str) -> str:
    return f"{{id: {node_id}, kind: transform, plugin: passthrough}}"


def sink(node_id: str, plugin: str = '"null"') -> str:
    return f"{{id: {node_id}, kind: sink, plugin: {plugin}}}"


def graph_text(nodes: list[str], edges: list[tuple[str, str]], allow: str = "") -> str:
    lines = ["version: 2"]
    if allow:
        lines.append(f"runtime: {{allow_modules: [{allow}]}}")
    lines.append("nodes:")
    lines += [f"  - {node}" for node in nodes]
    lines.append("edges:")
    lines += [f"  - {{from: {a}, to: {b}}}" for a, b in edges]
    return "\n".join(lines) + "\n"


def chain(
    prefix: str,
    count: int | None,
    stages: int = 3,
    rate_hz: float | None = None,
    sink_plugin: str = '"null"',
) -> tuple[list[str], list[tuple[str, str]]]:
    """`synthetic -> passthrough x stages -> sink`, node ids prefixed."""
    ids = [f"{prefix}src", *(f"{prefix}p{i}" for i in range(1, stages + 1)), f"{prefix}out"]
    nodes = [synthetic(ids[0], count, rate_hz)]
    nodes += [passthrough(node_id) for node_id in ids[1:-1]]
    nodes.append(sink(ids[-1], sink_plugin))
    return nodes, list(itertools.pairwise(ids))


def linear_graph(count: int | None, stages: int = 3, **options: Any) -> str:
    return graph_text(*chain("", count, stages, **options))


def fan_out_graph(count: int, sinks: int = 8) -> str:
    nodes = [synthetic("src", count)] + [sink(f"out{i}") for i in range(sinks)]
    return graph_text(nodes, [("src", f"out{i}") for i in range(sinks)])


def fan_in_graph(count_each: int | None, sources: int = 8) -> str:
    nodes = [synthetic(f"src{i}", count_each) for i in range(sources)]
    nodes += [passthrough("merge"), sink("out")]
    edges = [(f"src{i}", "merge") for i in range(sources)] + [("merge", "out")]
    return graph_text(nodes, edges)


def wide_graph(chains: int = 10) -> str:
    nodes: list[str] = []
    edges: list[tuple[str, str]] = []
    for c in range(chains):
        more_nodes, more_edges = chain(f"c{c}", None)
        nodes += more_nodes
        edges += more_edges
    return graph_text(nodes, edges)


class Workspace:
    """A temporary directory for graph files and runtime state."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"

    def graph(self, text: str, name: str = "graph") -> ValidatedGraph:
        path = self.root / f"{name}.yaml"
        path.write_text(text)
        result = validate_text(text, source=str(path), path=path)
        assert result.graph is not None, [p.render() for p in result.report.problems]
        return result.graph

    def runtime(self, graph: ValidatedGraph) -> Runtime:
        return Runtime(graph, state_dir=self.state, drain_timeout_s=30.0)

    def run(self, graph: ValidatedGraph, **options: Any) -> tuple[float, dict[str, Any]]:
        """Wall seconds of `asyncio.run(runtime.run(...))` and the report."""
        runtime = self.runtime(graph)
        start = time.perf_counter()
        report = asyncio.run(runtime.run(**options))
        return time.perf_counter() - start, report


def check(report: dict[str, Any], emitted: int, delivered: int) -> None:
    totals = report["totals"]
    assert totals["emitted"] == emitted, totals
    assert totals["delivered"] == delivered, totals
    assert totals["dropped"] == 0 and totals["errors"] == 0, totals
    assert report["status"] == "ok", (report["status"], report["stop_detail"])


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# -- 1 and 4: throughput, fan-out, fan-in, fairness -------------------------------------------


@dataclass
class Throughput:
    linear: float
    baseline: float
    fan_out: float
    fan_in: float
    fair_rate: float
    fairness: float
    fair_counts: list[int]


def throughput(ws: Workspace, sizes: Sizes) -> Throughput:
    n = sizes.packets
    linear = ws.graph(linear_graph(n), "linear")
    fan_out = ws.graph(fan_out_graph(n), "fan_out")
    fan_in = ws.graph(fan_in_graph(n // 8), "fan_in")
    fair = ws.graph(fan_in_graph(None), "fairness")

    def run_linear() -> float:
        seconds, report = ws.run(linear)
        check(report, n, n)
        return n / seconds

    def run_baseline() -> float:
        start = time.perf_counter()
        arrived = asyncio.run(linear_pipeline(n))
        seconds = time.perf_counter() - start
        assert arrived == n
        return n / seconds

    def run_fan_out() -> float:
        seconds, report = ws.run(fan_out)
        check(report, n, 8 * n)
        return n / seconds

    def run_fan_in() -> float:
        seconds, report = ws.run(fan_in)
        check(report, n // 8 * 8, n // 8 * 8)
        return n // 8 * 8 / seconds

    fair_runs: list[tuple[float, list[int]]] = []

    def run_fair() -> float:
        m = sizes.fairness_packets
        seconds, report = ws.run(fair, max_packets=m)
        check(report, m, m)
        assert report["stop_reason"] == StopReason.MAX_PACKETS
        counts = [report["nodes"][f"src{i}"]["out"] for i in range(8)]
        fair_runs.append((min(counts) / max(counts), counts))
        return m / seconds

    runs: dict[str, Callable[[], float]] = {
        "linear": run_linear,
        "baseline": run_baseline,
        "fan_out": run_fan_out,
        "fan_in": run_fan_in,
        "fair": run_fair,
    }
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(sizes.rounds):  # interleaved: machine noise hits every variant alike
        for name, fn in runs.items():
            rates[name].append(fn())
    best = {name: max(values) for name, values in rates.items()}
    worst_fair = min(fair_runs)
    print(f"1+4. throughput, {n:,} packets, best of {sizes.rounds} interleaved rounds")
    print(
        f"  schnitzel linear (src->pass x3->null) {best['linear']:>11,.0f} packets/s  "
        f"(rounds: {', '.join(f'{r:,.0f}' for r in rates['linear'])})"
    )
    print(
        f"  asyncio baseline (Queue(1024) x4)     {best['baseline']:>11,.0f} packets/s  "
        f"(rounds: {', '.join(f'{r:,.0f}' for r in rates['baseline'])})"
    )
    print(f"  -> schnitzel is {best['linear'] / best['baseline']:.2f}x the baseline (goal >= 1.5x)")
    print(
        f"  fan-out 1 -> 8 null                   {best['fan_out']:>11,.0f} packets/s  "
        f"({8 * best['fan_out']:,.0f} deliveries/s; {best['fan_out'] / best['linear']:.2f}x linear)"
    )
    print(
        f"  fan-in 8 -> pass -> null              {best['fan_in']:>11,.0f} packets/s  "
        f"({best['fan_in'] / best['linear']:.2f}x linear)"
    )
    print(
        f"  fairness: 8 endless sources, max_packets {sizes.fairness_packets:,}: "
        f"{best['fair']:,.0f} packets/s; worst min/max {worst_fair[0]:.3f} "
        f"(per round: {', '.join(f'{r:.3f}' for r, _ in fair_runs)})"
    )
    print(f"    packets per source, worst round: {worst_fair[1]}")
    return Throughput(
        best["linear"],
        best["baseline"],
        best["fan_out"],
        best["fan_in"],
        best["fair"],
        worst_fair[0],
        worst_fair[1],
    )


# -- 2: latency --------------------------------------------------------------------------------


@dataclass
class Latency:
    report_p99_ms: float
    recorded_p99_ms: float
    recorded_p50_ms: float
    baseline_p99_ms: float
    baseline_p50_ms: float


def latency(ws: Workspace, sizes: Sizes) -> Latency:
    count = int(RATE_HZ * sizes.latency_s)
    text = graph_text(
        *chain("", count, rate_hz=RATE_HZ, sink_plugin="_latency_sink:LatencyRecorder"),
        allow="_latency_sink",
    )
    graph = ws.graph(text, "latency")
    rows: list[tuple[float, float, float, float, float, float]] = []
    for _ in range(sizes.latency_rounds):
        RECORDED.clear()
        seconds, report = ws.run(graph)
        check(report, count, count)
        recorded = RECORDED["out"]
        assert len(recorded) == count
        offered = count / seconds
        report_p99 = report["nodes"]["out"]["latency_ms"]["p99"]
        baseline: list[float] = []
        arrived = asyncio.run(linear_pipeline(count, rate_hz=RATE_HZ, latencies=baseline))
        assert arrived == count
        rows.append(
            (
                report_p99,
                quantile(recorded, 0.99) * 1e3,
                quantile(recorded, 0.5) * 1e3,
                quantile(baseline, 0.99) * 1e3,
                quantile(baseline, 0.5) * 1e3,
                offered,
            )
        )
    print(
        f"2. latency at {RATE_HZ:,.0f} packets/s offered, {count:,} packets per run, "
        f"median of {sizes.latency_rounds} interleaved runs"
    )
    for i, row in enumerate(rows):
        print(
            f"  run {i + 1}: schnitzel report p99 {row[0]:6.3f} ms, recorded p50 {row[2]:6.3f} "
            f"p99 {row[1]:6.3f} ms ({row[5]:,.0f}/s achieved) | baseline p50 {row[4]:6.3f} "
            f"p99 {row[3]:6.3f} ms"
        )
    med = [statistics.median(row[i] for row in rows) for i in range(5)]
    result = Latency(*med)
    print(
        f"  -> p99 schnitzel {result.recorded_p99_ms:.3f} ms recorded / "
        f"{result.report_p99_ms:.3f} ms report, baseline {result.baseline_p99_ms:.3f} ms "
        f"({result.recorded_p99_ms / result.baseline_p99_ms:.2f}x the baseline; goal < 5 ms)"
    )
    return result


# -- 3: memory ---------------------------------------------------------------------------------


def memory_child(count: int) -> None:
    """In a fresh process: run the endless graph for `count` packets, sampling VmRSS every
    100k packets from a task that reads `runtime.snapshot()` totals; print JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp))
        runtime = ws.runtime(ws.graph(linear_graph(None, stages=1), "memory"))
        samples: list[tuple[int, int, int]] = []  # threshold, emitted, VmRSS kB

        async def sampler() -> None:
            next_at = SAMPLE_EVERY
            while True:
                emitted = runtime.snapshot()["totals"]["emitted"]
                if emitted >= next_at:
                    samples.append((next_at, emitted, proc_status_kb("VmRSS")))
                    next_at = (emitted // SAMPLE_EVERY + 1) * SAMPLE_EVERY
                await asyncio.sleep(0.002)

        async def main() -> dict[str, Any]:
            task = asyncio.create_task(sampler())
            try:
                return await runtime.run(max_packets=count)
            finally:
                task.cancel()

        start = time.perf_counter()
        report = asyncio.run(main())
        seconds = time.perf_counter() - start
    check(report, count, count)
    result = {
        "samples": samples,
        "after_kb": proc_status_kb("VmRSS"),
        "hwm_kb": proc_status_kb("VmHWM"),
        "rate": count / seconds,
    }
    print(json.dumps(result))


LAUNCHER = """\
import os, resource, sys
pid = os.fork()
if pid == 0:
    try:
        os.execv(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status = os.waitpid(pid, 0)
print(f"peak_kb={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}", file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""Runs one command as its only child and reports `getrusage(RUSAGE_CHILDREN).ru_maxrss`.

Not read in this process: CPython spawns children with vfork, and Linux then starts a child's
ru_maxrss at the parent's own peak RSS (~40 MB here after item 1), which would hide the
child's. The launcher forks from a fresh ~10 MB interpreter, so only the command counts."""


def child_peak(cmd: list[str]) -> tuple[str, int]:
    """Run `cmd` under the launcher; return its stdout and its peak RSS in kB."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        launcher = [sys.executable, "-c", LAUNCHER, *cmd]
        code = subprocess.run(launcher, stdout=out, stderr=err, check=False).returncode
        out.seek(0)
        err.seek(0)
        errors = err.read().decode()
        if code != 0:
            raise RuntimeError(f"{cmd} exited {code}: {errors[-2000:]}")
        peak = errors.strip().splitlines()[-1]
        assert peak.startswith("peak_kb="), errors[-2000:]
        return out.read().decode(), int(peak.removeprefix("peak_kb="))


IMPORTS_ONLY = (
    "import schnitzel.runtime, schnitzel.validate\n"
    "from schnitzel.registry import PluginRegistry\n"
    "PluginRegistry.from_entry_points()\n"
)


@dataclass
class Memory:
    growth_mb: float
    child_hwm_mb: float
    cli_peak_mb: float
    imports_peak_mb: float
    python_peak_mb: float


def memory(ws: Workspace, sizes: Sizes) -> Memory:
    count = sizes.memory_packets
    python = [sys.executable]
    _, bare = child_peak([*python, "-c", "pass"])
    _, imports = child_peak([*python, "-c", IMPORTS_ONLY])
    out, child_rss = child_peak([*python, str(Path(__file__)), "--child-memory", str(count)])
    child = json.loads(out.strip().splitlines()[-1])
    graph_path = ws.root / "memory_cli.yaml"
    graph_path.write_text(linear_graph(None, stages=1))
    cli = [
        str(SCHNITZEL_CLI),
        "run",
        str(graph_path),
        "--max-packets",
        str(count),
        "--report-json",
        "-",
        "--state-dir",
        str(ws.state),
    ]
    start = time.perf_counter()
    out, cli_rss = child_peak(cli)
    cli_seconds = time.perf_counter() - start
    cli_report = json.loads(out)
    check(cli_report, count, count)
    polluted = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    samples = {threshold: rss for threshold, _, rss in child["samples"]}
    at_200k = samples.get(2 * SAMPLE_EVERY)
    last_threshold = max(samples)
    growth = (samples[last_threshold] - at_200k) / 1024 if at_200k is not None else math.nan
    print(f"3. memory: endless synthetic -> passthrough -> null, max_packets {count:,} (RSS in MB)")
    print(
        "  in-process run, VmRSS every 100k packets: "
        + ", ".join(f"{t // 1000}k {rss / 1024:.1f}" for t, _, rss in child["samples"])
        + f"; after the run {child['after_kb'] / 1024:.1f}"
    )
    print(
        f"  -> growth from 200k to {last_threshold // 1000}k: {growth:+.2f} MB; "
        f"peak (VmHWM) {child['hwm_kb'] / 1024:.1f} MB (ru_maxrss {child_rss / 1024:.1f}); "
        f"{child['rate']:,.0f} packets/s"
    )
    print(
        f"  schnitzel run (subprocess)      peak {cli_rss / 1024:6.1f} MB  "
        f"({count / cli_seconds:,.0f} packets/s incl. start-up; report {cli_report['status']})"
    )
    print(f"  baseline: python + imports     peak {imports / 1024:6.1f} MB  (runtime+plugins)")
    print(f"  baseline: python -c pass       peak {bare / 1024:6.1f} MB")
    print(
        f"  -> schnitzel run adds {(cli_rss - imports) / 1024:.1f} MB over its imports "
        f"({cli_rss / imports:.2f}x); goal < 100 MB peak"
    )
    own_peak = proc_status_kb("VmHWM") / 1024
    print(
        f"  (this process's own getrusage(RUSAGE_CHILDREN) says {polluted / 1024:.1f} MB: with "
        f"vfork a child's ru_maxrss starts at the parent's peak, {own_peak:.1f} MB here, "
        "hence the launcher)"
    )
    return Memory(growth, child["hwm_kb"] / 1024, cli_rss / 1024, imports / 1024, bare / 1024)


# -- 5: snapshot cost --------------------------------------------------------------------------


@dataclass
class SnapshotCost:
    nodes: int
    snapshot_us: float
    snapshot_p90_us: float
    counters_us: float
    json_us: float


def raw_counters(runtime: Runtime) -> dict[str, tuple[int, int, int, int]]:
    """The cheapest useful live view: four counters per node."""
    return {
        node_id: (
            node.metrics.processed,
            node.metrics.emitted,
            node.metrics.dropped_total,
            len(node.inbox) if node.inbox is not None else 0,
        )
        for node_id, node in runtime.nodes.items()
    }


def snapshot_cost(ws: Workspace, sizes: Sizes) -> SnapshotCost:
    graph = ws.graph(wide_graph(10), "wide")
    runtime = ws.runtime(graph)
    full: list[float] = []
    counters: list[float] = []
    encode: list[float] = []

    async def main() -> dict[str, Any]:
        run = asyncio.create_task(runtime.run())
        await asyncio.sleep(1.2)  # two metric ticks, so rates are computed as in steady state
        perf = time.perf_counter
        for _ in range(sizes.snapshots):
            start = perf()
            snap = runtime.snapshot()
            middle = perf()
            raw_counters(runtime)
            end = perf()
            json.dumps(snap)
            full.append(middle - start)
            counters.append(end - middle)
            encode.append(perf() - end)
            await asyncio.sleep(0.005)  # let the graph run between snapshots
        assert snap["status"] == "running" and snap["totals"]["delivered"] > 0
        runtime.request_stop(StopReason.SIGNAL, "benchmark done")
        return await run

    report = asyncio.run(main())
    assert report["totals"]["errors"] == 0 and report["totals"]["dropped"] == 0
    result = SnapshotCost(
        len(graph.nodes),
        statistics.median(full) * 1e6,
        quantile(full, 0.9) * 1e6,
        statistics.median(counters) * 1e6,
        statistics.median(encode) * 1e6,
    )
    print(
        f"5. snapshot on a running {result.nodes}-node graph "
        f"(10 x src->pass x3->null), median of {sizes.snapshots} calls"
    )
    print(
        f"  runtime.snapshot()       {result.snapshot_us:8.1f} µs  (p90 "
        f"{result.snapshot_p90_us:.1f} µs; {result.snapshot_us / result.nodes:.1f} µs per node)"
    )
    print(
        f"  raw counters (baseline)  {result.counters_us:8.1f} µs  "
        f"(snapshot is {result.snapshot_us / result.counters_us:.1f}x)"
    )
    print(f"  json.dumps(snapshot)     {result.json_us:8.1f} µs  (what a control socket adds)")
    print(
        f"  -> 10 snapshots/s take {10 * result.snapshot_us / 1e6:.3%} of one core "
        f"({10 * (result.snapshot_us + result.json_us) / 1e6:.3%} with JSON encoding)"
    )
    return result


# -- profile and summary -----------------------------------------------------------------------


def profile(ws: Workspace, sizes: Sizes) -> None:
    n = sizes.packets
    graph = ws.graph(linear_graph(n), "profiled")
    runtime = ws.runtime(graph)
    profiler = cProfile.Profile()
    profiler.enable()
    report = asyncio.run(runtime.run())
    profiler.disable()
    check(report, n, n)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(10)
    print(f"cProfile of one schnitzel run of item 1 ({n:,} packets), top 10 by own time")
    lines = text.getvalue().splitlines()
    total = next(line for line in lines if "function calls" in line)
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    for line in [total, *lines[start : start + 11]]:
        print("  " + line.strip())


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def summary(t: Throughput, lat: Latency, mem: Memory, snap: SnapshotCost) -> None:
    rows = [
        (
            "1 throughput src->pass x3->null",
            f"{t.linear:,.0f}/s",
            f"{t.baseline:,.0f}/s",
            f"{t.linear / t.baseline:.2f}x",
            ">= 1.5x",
            verdict(t.linear / t.baseline >= 1.5),
        ),
        (
            "2 p99 latency @5k/s (recorded)",
            f"{lat.recorded_p99_ms:.3f} ms",
            f"{lat.baseline_p99_ms:.3f} ms",
            f"{lat.recorded_p99_ms / lat.baseline_p99_ms:.2f}x",
            "< 5 ms",
            verdict(lat.recorded_p99_ms < 5),
        ),
        (
            "2 p99 latency @5k/s (report)",
            f"{lat.report_p99_ms:.3f} ms",
            f"{lat.baseline_p99_ms:.3f} ms",
            f"{lat.report_p99_ms / lat.baseline_p99_ms:.2f}x",
            "< 5 ms",
            verdict(lat.report_p99_ms < 5),
        ),
        (
            "3 RSS growth 200k -> last sample",
            f"{mem.growth_mb:+.2f} MB",
            "0 (flat)",
            "-",
            "< 1 MB",
            verdict(abs(mem.growth_mb) < 1),
        ),
        (
            "3 peak RSS, schnitzel run",
            f"{mem.cli_peak_mb:.1f} MB",
            f"{mem.imports_peak_mb:.1f} MB",
            f"{mem.cli_peak_mb / mem.imports_peak_mb:.2f}x",
            "< 100 MB",
            verdict(mem.cli_peak_mb < 100),
        ),
        (
            "3 peak RSS, in-process run",
            f"{mem.child_hwm_mb:.1f} MB",
            f"{mem.imports_peak_mb:.1f} MB",
            f"{mem.child_hwm_mb / mem.imports_peak_mb:.2f}x",
            "< 100 MB",
            verdict(mem.child_hwm_mb < 100),
        ),
        (
            "4 fan-out 1 -> 8 null",
            f"{t.fan_out:,.0f}/s",
            f"{t.linear:,.0f}/s",
            f"{t.fan_out / t.linear:.2f}x",
            "-",
            "-",
        ),
        (
            "4 fan-in 8 -> pass -> null",
            f"{t.fan_in:,.0f}/s",
            f"{t.linear:,.0f}/s",
            f"{t.fan_in / t.linear:.2f}x",
            "-",
            "-",
        ),
        (
            "4 fairness, 8 endless sources",
            f"{min(t.fair_counts):,}..{max(t.fair_counts):,}",
            "equal shares",
            f"{t.fairness:.3f}",
            "min/max >= 0.9",
            verdict(t.fairness >= 0.9),
        ),
        (
            f"5 snapshot, {snap.nodes} nodes",
            f"{snap.snapshot_us:.0f} µs",
            f"{snap.counters_us:.0f} µs",
            f"{snap.snapshot_us / snap.counters_us:.1f}x",
            "-",
            f"{10 * snap.snapshot_us / 1e6:.2%} core @10/s",
        ),
    ]
    header = ("item", "schnitzel", "baseline", "ratio", "goal", "verdict")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print("summary")
    for row in [header, *rows]:
        cells = (str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        print(("  " + "  ".join(cells)).rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller counts, shorter runs")
    parser.add_argument("--profile", action="store_true", help="cProfile one run of item 1")
    parser.add_argument("--child-memory", type=int, metavar="N", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        memory_child(args.child_memory)
        return
    sizes = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp))
        t = throughput(ws, sizes)
        lat = latency(ws, sizes)
        mem = memory(ws, sizes)
        snap = snapshot_cost(ws, sizes)
        summary(t, lat, mem, snap)
        if args.profile:
            profile(ws, sizes)


if __name__ == "__main__":
    main()
