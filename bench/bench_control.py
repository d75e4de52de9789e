"""The control plane's cost: data-plane throughput with a client polling the socket, the
round trip of `status`, hot swaps under load, and how fast a throttle takes effect.

Each figure is read against a baseline measured in the same run (the machine is shared and
noisy, so no absolute time is a verdict on its own):

1. Data-plane cost of the control socket: packets/s of an endless `synthetic -> passthrough
   x3 -> null` run for a fixed `--duration` in a `schnitzel run` subprocess serving its
   control socket, with a client process polling `status` + `events` (after the last seq
   seen) over the socket at 10 Hz (an attached console at a fast refresh) and at 1 Hz,
   against the same run without any client (baseline). Also `--no-control-socket`, to show
   what an idle socket costs. packets/s = the report's `totals.delivered / duration_s`,
   best of several interleaved rounds. Goal: 1 Hz / no client >= 0.95 (10 Hz: reported).
2. Round trip of `status` on a running 50-node graph (10 x `synthetic (rate_hz 1000) ->
   passthrough x3 -> null`) in a `schnitzel run` subprocess: median/p95 of
   `ControlClient.request("status")` from this process (a client process of its own),
   against two baselines: `suggestions` over the same connection with the controller off
   (the whole request path with an empty answer: what any request costs) and, in-process
   on the same graph, `runtime.snapshot()` + `json.dumps` (the work a status reply cannot
   avoid). `hello` is shown too (a few fields, no snapshot). Requests are
   interleaved, 5 ms apart.
3. Hot swap under load: an in-process Runtime running `synthetic (rate_hz 20000, endless) ->
   dedup (policy) -> recording sink` (bench/_control_sink.py: `time.monotonic()` and seq
   of every packet delivered). Swaps every 100 ms via `RuntimeControl.swap`, alternating
   the dedup window so the seen keys are handed over. Swap duration (call to return),
   median/p95, and `RuntimeControl.plan` alone (the validation part). The longest gap
   between two deliveries at the sink that overlaps a swap window ([call, return + 5 ms])
   against the longest gap in as many windows of the same widths on the same 100 ms
   schedule just before the swaps began (baseline). After the run drains, emitted -
   delivered - filtered - dropped - queued must be 0 and the seqs delivered exactly 0..N-1
   in order ("0 lost, 0 reordered" is printed only when both hold). The same for a blocking
   compute node (threads; bench/_control_compute.py) whose hash rounds are swapped.
4. Throttle effect: an in-process `synthetic -> null` whose source is throttled back and
   forth between two rates; emitted and `snapshot()` are read every 10 ms. The effect
   latency is the time from `throttle(...)` to the first sample from which on the source's
   average rate stays within 10% of the new rate (over every span of 50..300 ms after that
   sample). Against the metrics tick (1 s), which bounds what an operator can see: the time
   until `snapshot()`'s `rate_out_per_s` first moves toward the new rate and (full run
   only: holds of 12 s) until it is within 10% of it (it is a 10 s average).

Run: .venv/bin/python bench/bench_control.py [--quick]
(`--quick`: shorter runs, fewer swaps and rounds; finishes in under a minute.)
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import itertools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _control_sink import RECORDED
from _timing import print_summary, timed

from schnitzel.control.actor import Actor
from schnitzel.control.client import ControlClient, ControlConnectionError
from schnitzel.control.runtime_control import RuntimeControl
from schnitzel.runtime import Runtime
from schnitzel.runtime.runtime import StopReason
from schnitzel.validate import ValidatedGraph, validate_text

SCHNITZEL = Path(sys.executable).parent / "schnitzel"
BENCH = Actor.local("api")


@dataclass(frozen=True)
class Sizes:
    """How much each item does (`--quick` shrinks everything)."""

    duration_s: float
    rounds: int
    round_trips: int
    swaps: int
    compute_swaps: int
    throttle_changes: int
    throttle_settles: int


FULL = Sizes(5.0, 3, 400, swaps=50, compute_swaps=20, throttle_changes=6, throttle_settles=2)
QUICK = Sizes(1.5, 3, 100, swaps=20, compute_swaps=10, throttle_changes=4, throttle_settles=0)
SWAP_PERIOD_S = 0.1
SWAP_RATE_HZ = 20_000.0
DEDUP_WINDOWS = (10_000, 20_000)
COMPUTE_ROUNDS = (1, 2)
WARM_UP_S = 1.2
"""Two metric ticks: rates and health as in steady state."""
THROTTLE_RATES = (1_000.0, 5_000.0)
SHORT_HOLD_S = 1.5
LONG_HOLD_S = 12.0
"""Longer than the snapshot's rate window: long enough for its rate to reach the new one."""
RATE_WINDOW_S = 10.0
"""The window of the report's `rate_*_per_s` (schnitzel.runtime.metrics.RateWindow)."""
TICK_S = 1.0
SAMPLE_S = 0.01
SPAN_S = (0.05, 0.3)
"""Item 4: the spans after a sample over which the rate must stay within 10%."""


# -- graphs ------------------------------------------------------------------------------------


def source(node_id: str, rate_hz: float | None = None) -> str:
    rate = f", rate_hz: {float(rate_hz)}" if rate_hz is not None else ""
    return (
        f"{{id: {node_id}, kind: source, plugin: synthetic, config: {{payload: {{v: 1}}{rate}}}}}"
    )


def node(node_id: str, kind: str, plugin: str, config: str = "{}") -> str:
    return f"{{id: {node_id}, kind: {kind}, plugin: {plugin}, config: {config}}}"


def graph_text(nodes: list[str], edges: list[tuple[str, str]], allow: str = "") -> str:
    lines = ["version: 2"]
    if allow:
        lines.append(f"runtime: {{allow_modules: [{allow}]}}")
    lines += ["nodes:", *(f"  - {n}" for n in nodes), "edges:"]
    lines += [f"  - {{from: {a}, to: {b}}}" for a, b in edges]
    return "\n".join(lines) + "\n"


def chain(prefix: str, rate_hz: float | None) -> tuple[list[str], list[tuple[str, str]]]:
    """`synthetic -> passthrough x3 -> null`, node ids prefixed."""
    ids = [f"{prefix}src", f"{prefix}p1", f"{prefix}p2", f"{prefix}p3", f"{prefix}out"]
    nodes = [source(ids[0], rate_hz)]
    nodes += [node(i, "transform", "passthrough") for i in ids[1:-1]]
    nodes.append(node(ids[-1], "sink", '"null"'))
    return nodes, list(itertools.pairwise(ids))


def wide_graph(chains: int = 10, rate_hz: float = 1000.0) -> str:
    nodes: list[str] = []
    edges: list[tuple[str, str]] = []
    for c in range(chains):
        more_nodes, more_edges = chain(f"c{c}", rate_hz)
        nodes += more_nodes
        edges += more_edges
    return graph_text(nodes, edges)


def swap_graph(middle: str) -> str:
    """`synthetic (20k/s) -> middle -> recording sink`."""
    nodes = [
        source("src", SWAP_RATE_HZ),
        middle,
        node("out", "sink", "_control_sink:DeliveryRecorder"),
    ]
    return graph_text(
        nodes, [("src", "mid"), ("mid", "out")], allow="_control_sink, _control_compute"
    )


class Workspace:
    """A short temporary directory (unix socket paths are limited to 107 bytes)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"
        self._names = itertools.count()

    def path(self, stem: str, suffix: str) -> Path:
        return self.root / f"{stem}{next(self._names)}{suffix}"

    def graph_file(self, name: str, text: str) -> Path:
        path = self.root / f"{name}.yaml"
        path.write_text(text)
        return path

    def graph(self, name: str, text: str) -> ValidatedGraph:
        path = self.graph_file(name, text)
        result = validate_text(text, source=str(path), path=path)
        assert result.graph is not None, [p.render() for p in result.report.problems]
        return result.graph

    def runtime(self, graph: ValidatedGraph) -> Runtime:
        return Runtime(graph, state_dir=self.state, drain_timeout_s=30.0)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def wait_for_socket(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no control socket at {path} after {timeout_s:g} s")
        time.sleep(0.005)


@contextlib.contextmanager
def schnitzel_run(
    ws: Workspace, graph: Path, options: list[str]
) -> Iterator[subprocess.Popen[bytes]]:
    """`schnitzel run GRAPH OPTIONS` with its stderr kept; killed if still running at the end."""
    err = ws.path("stderr", ".log")
    with err.open("wb") as stderr:
        command = [str(SCHNITZEL), "run", str(graph), "--state-dir", str(ws.state), *options]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"schnitzel run exited {process.returncode}: {err.read_text()[-2000:]}")


# -- 1: data-plane cost of the control socket --------------------------------------------------


@dataclass
class PollStats:
    """What a polling client process did."""

    polls: int
    rtt_ms: float


def poll_child(socket_path: str, hz: float) -> None:
    """In a client process: poll `status` + `events` at `hz` until the runtime goes away;
    print how many polls were answered and their median round trip (JSON)."""
    path = Path(socket_path)
    wait_for_socket(path, 30)
    rtts: list[float] = []
    after = 0
    period = 1.0 / hz
    with ControlClient(path, via="attach", timeout_s=10) as client:
        start = time.monotonic()
        for k in itertools.count():
            delay = start + k * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            begun = time.perf_counter()
            try:
                client.request("status")
                events = client.request("events", {"after": after})
            except ControlConnectionError:
                break  # the run ended and closed its socket
            rtts.append(time.perf_counter() - begun)
            if events:
                after = events[-1]["seq"]
    median = statistics.median(rtts) * 1e3 if rtts else math.nan
    print(json.dumps({"polls": len(rtts), "rtt_ms": median}))


@dataclass
class Variant:
    name: str
    hz: float | None
    """Polls per second of the client process (None: no client)."""
    socket: bool = True
    rates: list[float] = field(default_factory=list)
    polls: list[PollStats] = field(default_factory=list)

    @property
    def best(self) -> float:
        return max(self.rates)


def run_variant(ws: Workspace, graph: Path, variant: Variant, sizes: Sizes) -> None:
    report_path = ws.path("report", ".json")
    socket_path = ws.root / "c.sock"
    options = ["--duration", str(sizes.duration_s), "--report-json", str(report_path)]
    options += ["--control-socket", str(socket_path)] if variant.socket else ["--no-control-socket"]
    client: subprocess.Popen[bytes] | None = None
    with schnitzel_run(ws, graph, options) as runtime:
        if variant.hz is not None:
            poller = [sys.executable, str(Path(__file__)), "--child-poll", str(socket_path)]
            client = subprocess.Popen([*poller, str(variant.hz)], stdout=subprocess.PIPE)
        runtime.wait(sizes.duration_s + 60)
    if client is not None:
        out, _ = client.communicate(timeout=30)
        assert client.returncode == 0, f"the polling client exited {client.returncode}"
        variant.polls.append(PollStats(**json.loads(out)))
    report = json.loads(report_path.read_text())
    assert report["stop_reason"] == "duration", report["stop_reason"]
    totals = report["totals"]
    assert totals["dropped"] == 0 and totals["errors"] == 0, totals
    variant.rates.append(totals["delivered"] / report["duration_s"])


def socket_cost(ws: Workspace, sizes: Sizes) -> list[Variant]:
    graph = ws.graph_file("busy", graph_text(*chain("", None)))
    variants = [
        Variant("socket, no client (baseline)", None),
        Variant("client polling at 1 Hz", 1.0),
        Variant("client polling at 10 Hz", 10.0),
        Variant("--no-control-socket", None, socket=False),
    ]
    for _ in range(sizes.rounds):  # interleaved: machine noise hits every variant alike
        for variant in variants:
            run_variant(ws, graph, variant, sizes)
    base = variants[0].best
    print(
        f"1. data-plane cost of the control socket: endless src -> pass x3 -> null in "
        f"`schnitzel run`, --duration {sizes.duration_s:g} s, best of {sizes.rounds} "
        "interleaved rounds"
    )
    for v in variants:
        polls = ""
        if v.polls:
            polls = (
                f"; {statistics.median(p.polls for p in v.polls):.0f} polls per run, "
                f"status+events {statistics.median(p.rtt_ms for p in v.polls):.2f} ms"
            )
        rounds = ", ".join(f"{r:,.0f}" for r in v.rates)
        print(
            f"  {v.name:<30}{v.best:>11,.0f} packets/s  {v.best / base:.3f}x  "
            f"(rounds: {rounds}{polls})"
        )
    spread = max(1 - min(v.rates) / max(v.rates) for v in variants)
    if spread > 0.05:
        print(
            f"  (rounds of one variant differ by up to {spread:.0%}: the machine was busy; "
            "best-of keeps the least disturbed round, but a ratio off 1 by less than the "
            "spread says little)"
        )
    print(
        f"  -> 1 Hz / no client {variants[1].best / base:.3f} (goal >= 0.95); "
        f"10 Hz / no client {variants[2].best / base:.3f}"
    )
    return variants


# -- 2: status round trip ----------------------------------------------------------------------


@dataclass
class RoundTrip:
    nodes: int
    status_us: list[float]
    empty_us: list[float]
    """`suggestions` with the controller off: the whole request path, an empty answer."""
    hello_us: list[float]
    snapshot_us: list[float]
    dumps_us: list[float]
    status_bytes: int

    @staticmethod
    def median(values: list[float]) -> float:
        return statistics.median(values)

    @staticmethod
    def p95(values: list[float]) -> float:
        return quantile(values, 0.95)

    @property
    def in_process_us(self) -> list[float]:
        return [a + b for a, b in zip(self.snapshot_us, self.dumps_us, strict=True)]


@dataclass
class SocketTimes:
    status_us: list[float] = field(default_factory=list)
    empty_us: list[float] = field(default_factory=list)
    hello_us: list[float] = field(default_factory=list)
    status_bytes: int = 0


def socket_round_trips(ws: Workspace, sizes: Sizes) -> SocketTimes:
    graph = ws.graph_file("wide", wide_graph())
    socket_path = ws.root / "w.sock"
    times = SocketTimes()
    perf = time.perf_counter
    with schnitzel_run(ws, graph, ["--control-socket", str(socket_path)]) as runtime:
        wait_for_socket(socket_path, 30)
        with ControlClient(socket_path, via="ctl", timeout_s=10) as client:
            client.request("hello")
            time.sleep(WARM_UP_S)
            for _ in range(sizes.round_trips):
                for cmd, into in (
                    ("suggestions", times.empty_us),
                    ("hello", times.hello_us),
                    ("status", times.status_us),
                ):
                    start = perf()
                    result = client.request(cmd)
                    into.append((perf() - start) * 1e6)
                    time.sleep(0.005)  # let the graph run between requests
            assert result["status"] == "running" and result["totals"]["delivered"] > 0
            times.status_bytes = len(json.dumps(result))
            client.request("stop")
        runtime.wait(60)
    return times


def in_process_snapshots(ws: Workspace, sizes: Sizes) -> tuple[list[float], list[float], int]:
    graph = ws.graph("wide_in_process", wide_graph())
    runtime = ws.runtime(graph)
    snapshot_us: list[float] = []
    dumps_us: list[float] = []

    async def main() -> dict[str, Any]:
        run = asyncio.create_task(runtime.run())
        await asyncio.sleep(WARM_UP_S)
        perf = time.perf_counter
        for _ in range(sizes.round_trips):
            start = perf()
            snap = runtime.snapshot()
            middle = perf()
            json.dumps(snap)
            snapshot_us.append((middle - start) * 1e6)
            dumps_us.append((perf() - middle) * 1e6)
            await asyncio.sleep(0.005)
        runtime.request_stop(StopReason.SIGNAL, "benchmark done")
        return await run

    report = asyncio.run(main())
    assert report["totals"]["errors"] == 0 and report["totals"]["dropped"] == 0
    return snapshot_us, dumps_us, len(graph.nodes)


def status_round_trip(ws: Workspace, sizes: Sizes) -> RoundTrip:
    times = socket_round_trips(ws, sizes)
    snapshot_us, dumps_us, nodes = in_process_snapshots(ws, sizes)
    rt = RoundTrip(
        nodes,
        times.status_us,
        times.empty_us,
        times.hello_us,
        snapshot_us,
        dumps_us,
        times.status_bytes,
    )
    print(
        f"2. status round trip on a running {nodes}-node graph (10 x src(1000/s) -> pass x3 -> "
        f"null), {sizes.round_trips} requests each, interleaved (µs)"
    )
    rows = (
        ("status over the socket", rt.status_us),
        ("suggestions, empty (transport baseline)", rt.empty_us),
        ("hello (run id, pid, graph: no snapshot)", rt.hello_us),
        ("in-process snapshot() + json.dumps", rt.in_process_us),
        ("  of which snapshot()", rt.snapshot_us),
        ("  of which json.dumps", rt.dumps_us),
    )
    for label, values in rows:
        print(f"  {label:<44} median {rt.median(values):8.1f}  p95 {rt.p95(values):8.1f}")
    print(
        f"  -> status is {rt.median(rt.status_us) / rt.median(rt.empty_us):.2f}x an empty "
        "request and "
        f"{rt.median(rt.status_us) / rt.median(rt.in_process_us):.2f}x the in-process work; "
        f"reply {rt.status_bytes / 1024:.1f} KiB"
    )
    return rt


# -- 3: hot swap -------------------------------------------------------------------------------


@dataclass
class SwapRun:
    label: str
    durations_ms: list[float]
    plan_ms: list[float]
    """`RuntimeControl.plan` (validation of the graph with the new node), after the swaps."""
    swap_gaps_ms: list[float]
    quiet_gaps_ms: list[float]
    emitted: int
    delivered: int
    filtered: int
    dropped: int
    queued: int
    errors: int
    in_order: bool
    handed_over: int
    rate: float

    @property
    def lost(self) -> int:
        return self.emitted - self.delivered - self.filtered - self.dropped - self.queued

    @property
    def verified(self) -> bool:
        return self.lost == 0 and self.in_order and self.errors == 0


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest time between two consecutive deliveries that overlaps [start, end]."""
    first = max(bisect.bisect_left(times, start) - 1, 0)
    last = min(bisect.bisect_right(times, end) + 1, len(times))
    inside = times[first:last]
    return max((b - a for a, b in itertools.pairwise(inside)), default=math.inf)


def hot_swaps(
    ws: Workspace, label: str, middle: str, plugin: str, configs: list[dict[str, Any]]
) -> SwapRun:
    RECORDED.clear()
    graph = ws.graph("swap", swap_graph(middle))
    runtime = ws.runtime(graph)
    control = RuntimeControl(runtime)
    windows: list[tuple[float, float]] = []
    quiet_starts: list[float] = []
    plan_ms: list[float] = []
    handed_over = 0

    async def on_schedule(count: int) -> AsyncIterator[int]:
        start = time.monotonic()
        for i in range(count):
            await asyncio.sleep(max(0.0, start + i * SWAP_PERIOD_S - time.monotonic()))
            yield i

    async def main() -> dict[str, Any]:
        nonlocal handed_over
        run = asyncio.create_task(runtime.run())
        await asyncio.sleep(WARM_UP_S)
        async for _ in on_schedule(len(configs)):  # the baseline: as many slots, no swap
            quiet_starts.append(time.monotonic())
        async for i in on_schedule(len(configs)):
            called = time.monotonic()
            result = await control.swap("mid", plugin, configs[i], actor=BENCH, why="benchmark")
            windows.append((called, time.monotonic()))
            handed_over += result["state_handed_over"]
        async for i in on_schedule(min(10, len(configs))):
            called = time.perf_counter()
            control.plan("mid", plugin, configs[i])
            plan_ms.append((time.perf_counter() - called) * 1e3)
        runtime.request_stop(StopReason.SIGNAL, "benchmark done")
        return await run

    report = asyncio.run(main())
    deliveries = RECORDED["out"]
    times = deliveries.times
    margin = 0.005  # the new plugin's first batch follows the return
    swap_windows = [(a, b + margin) for a, b in windows]
    quiet_windows = [(q, q + b - a) for q, (a, b) in zip(quiet_starts, swap_windows, strict=True)]
    nodes = report["nodes"]
    emitted = nodes["src"]["out"]
    return SwapRun(
        label,
        [(b - a) * 1e3 for a, b in windows],
        plan_ms,
        [longest_gap(times, a, b) * 1e3 for a, b in swap_windows],
        [longest_gap(times, a, b) * 1e3 for a, b in quiet_windows],
        emitted,
        nodes["out"]["delivered"],
        sum(n["filtered"] for n in nodes.values()),
        report["totals"]["dropped"],
        sum(n["queue_depth"] for n in nodes.values()),
        report["totals"]["errors"],
        deliveries.seqs == list(range(emitted)),
        handed_over,
        emitted / report["duration_s"],
    )


def swaps(ws: Workspace, sizes: Sizes) -> list[SwapRun]:
    dedup = node("mid", "policy", "dedup", f"{{window: {DEDUP_WINDOWS[0]}}}")
    dedup_configs = [{"window": DEDUP_WINDOWS[(i + 1) % 2]} for i in range(sizes.swaps)]
    compute = node("mid", "compute", "_control_compute:Digest", f"{{rounds: {COMPUTE_ROUNDS[0]}}}")
    compute_configs = [{"rounds": COMPUTE_ROUNDS[(i + 1) % 2]} for i in range(sizes.compute_swaps)]
    runs = [
        hot_swaps(ws, "dedup (policy)", dedup, "dedup", dedup_configs),
        hot_swaps(
            ws, "digest (compute, threads)", compute, "_control_compute:Digest", compute_configs
        ),
    ]
    print(
        f"3. hot swap under load: src ({SWAP_RATE_HZ:,.0f}/s, endless) -> mid -> recording "
        f"sink, a swap every {SWAP_PERIOD_S * 1e3:.0f} ms (ms)"
    )
    for r in runs:
        n = len(r.durations_ms)
        print(
            f"  {r.label}: {n} swaps ({r.handed_over} with state handed over), "
            f"{r.rate:,.0f} packets/s emitted"
        )
        print(
            f"    swap call to return      median {statistics.median(r.durations_ms):6.2f}  "
            f"p95 {quantile(r.durations_ms, 0.95):6.2f}  max {max(r.durations_ms):6.2f}  "
            f"(of which validation, plan() alone: median {statistics.median(r.plan_ms):.2f})"
        )
        print(
            f"    longest delivery gap     in swap windows {max(r.swap_gaps_ms):6.2f} "
            f"(median {statistics.median(r.swap_gaps_ms):5.2f}) | in {n} windows before the "
            f"swaps {max(r.quiet_gaps_ms):6.2f} "
            f"(median {statistics.median(r.quiet_gaps_ms):5.2f}) "
            f"-> {max(r.swap_gaps_ms) / max(r.quiet_gaps_ms):.2f}x"
        )
        verdict = "0 lost, 0 reordered (verified)" if r.verified else "NOT VERIFIED"
        print(
            f"    accounting: emitted {r.emitted:,} = delivered {r.delivered:,} + filtered "
            f"{r.filtered:,} + dropped {r.dropped:,} + queued {r.queued:,} "
            f"{'+' if r.lost >= 0 else '-'} {abs(r.lost):,} unaccounted; errors {r.errors}; "
            f"seqs 0..N-1 in order: {r.in_order} -> {verdict}"
        )
    return runs


# -- 4: throttle effect ------------------------------------------------------------------------


@dataclass
class ThrottleChange:
    rate_from: float
    rate_to: float
    hold_s: float
    effect_s: float
    """Call to the first sample from which on the source runs within 10% of the new rate."""
    first_seen_s: float
    """Call to the first snapshot whose rate moved toward the new rate (by 1% of the step)."""
    seen_within_s: float
    """Call to the first snapshot whose rate is within 10% of the new rate (inf: not within
    the hold)."""


def within(rate: float, target: float) -> bool:
    return abs(rate - target) <= 0.1 * target


def settled_at(
    samples: list[tuple[float, int]], since: float, until: float, target: float
) -> float:
    """The first sample time in [since, until) from which on the average rate over every
    span of SPAN_S stays within 10% of `target`."""
    times = [t for t, _ in samples]
    for i in range(bisect.bisect_left(times, since), len(samples)):
        t0, e0 = samples[i]
        if t0 + SPAN_S[1] > until:
            break
        last = bisect.bisect_right(times, t0 + SPAN_S[1])
        rates = [(e - e0) / (t - t0) for t, e in samples[i + 1 : last] if t - t0 >= SPAN_S[0]]
        if rates and all(within(rate, target) for rate in rates):
            return t0
    return math.inf


def throttle_changes(sizes: Sizes) -> list[tuple[float, float]]:
    """(new rate, hold seconds): short holds (the effect, the first sign in a snapshot),
    then long ones (the snapshot's 10 s rate window within 10%)."""
    low, high = THROTTLE_RATES
    holds = [SHORT_HOLD_S] * sizes.throttle_changes + [LONG_HOLD_S] * sizes.throttle_settles
    return [(high if i % 2 == 0 else low, hold) for i, hold in enumerate(holds)]


def throttle_effect(ws: Workspace, sizes: Sizes) -> list[ThrottleChange]:
    low, high = THROTTLE_RATES
    text = graph_text([source("src", low), node("out", "sink", '"null"')], [("src", "out")])
    runtime = ws.runtime(ws.graph("throttle", text))
    control = RuntimeControl(runtime)
    samples: list[tuple[float, int]] = []  # time, emitted
    seen: list[tuple[float, float]] = []  # time, rate_out_per_s in the snapshot
    calls: list[tuple[float, float, float, float]] = []  # time, from, to, hold

    async def sampler() -> None:
        src = runtime.nodes["src"]
        while True:
            now = time.monotonic()
            samples.append((now, src.metrics.emitted))
            seen.append((now, runtime.snapshot()["nodes"]["src"]["rate_out_per_s"]))
            await asyncio.sleep(SAMPLE_S)

    async def main() -> dict[str, Any]:
        run = asyncio.create_task(runtime.run())
        sampling = asyncio.create_task(sampler())
        await asyncio.sleep(WARM_UP_S)
        rate = low
        for target, hold in throttle_changes(sizes):
            calls.append((time.monotonic(), rate, target, hold))
            control.throttle("src", rate_hz=target, actor=BENCH, why="benchmark")
            rate = target
            await asyncio.sleep(hold)
        sampling.cancel()
        runtime.request_stop(StopReason.SIGNAL, "benchmark done")
        return await run

    report = asyncio.run(main())
    assert report["totals"]["errors"] == 0, report["totals"]
    results = []
    for at, rate_from, rate_to, hold in calls:
        end = at + hold
        shown = [(t, r) for t, r in seen if at <= t < end]
        before = next(r for t, r in reversed(seen) if t < at)
        step = rate_to - rate_from
        first = next((t for t, r in shown if (r - before) / step >= 0.01), math.inf)
        close = next((t for t, r in shown if within(r, rate_to)), math.inf)
        effect = settled_at(samples, at, end, rate_to)
        results.append(
            ThrottleChange(rate_from, rate_to, hold, effect - at, first - at, close - at)
        )
    print(
        f"4. throttle effect: src -> null, rate_hz {low:,.0f} <-> {high:,.0f}, "
        f"{len(results)} changes, emitted and snapshot() read every {SAMPLE_S * 1e3:.0f} ms"
    )
    for direction in ("up", "down"):
        picked = [r for r in results if (r.rate_to > r.rate_from) == (direction == "up")]
        effects = [r.effect_s * 1e3 for r in picked]
        firsts = [r.first_seen_s * 1e3 for r in picked]
        print(
            f"  {direction:<4} ({len(picked)}) effect median {statistics.median(effects):5.1f} ms "
            f"max {max(effects):5.1f} ms | first seen in snapshot() median "
            f"{statistics.median(firsts):6.0f} ms max {max(firsts):6.0f} ms"
        )
    settles = [r for r in results if r.hold_s == LONG_HOLD_S]
    for r in settles:
        print(
            f"  {r.rate_from:,.0f} -> {r.rate_to:,.0f} held {r.hold_s:g} s: snapshot() within 10% "
            f"after {r.seen_within_s:.1f} s (its rate is a {RATE_WINDOW_S:g} s average)"
        )
    effect = statistics.median(r.effect_s for r in results)
    print(
        f"  -> the new rate holds from {effect * 1e3:.0f} ms after the call (median; samples "
        f"{SAMPLE_S * 1e3:.0f} ms apart), {effect / TICK_S:.1%} of the {TICK_S:g} s metrics tick"
    )
    return results


# -- summary -----------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def summary(
    variants: list[Variant],
    rt: RoundTrip,
    swap_runs: list[SwapRun],
    throttles: list[ThrottleChange],
) -> None:
    base, one, ten, off = variants
    rows: list[tuple[str, ...]] = [
        (
            "1 throughput, client at 1 Hz",
            f"{one.best:,.0f}/s",
            f"{base.best:,.0f}/s (no client)",
            f"{one.best / base.best:.3f}",
            ">= 0.95",
            verdict(one.best / base.best >= 0.95),
        ),
        (
            "1 throughput, client at 10 Hz",
            f"{ten.best:,.0f}/s",
            f"{base.best:,.0f}/s (no client)",
            f"{ten.best / base.best:.3f}",
            "-",
            "-",
        ),
        (
            "1 throughput, socket served",
            f"{base.best:,.0f}/s",
            f"{off.best:,.0f}/s (no socket)",
            f"{base.best / off.best:.3f}",
            "-",
            "-",
        ),
        (
            f"2 status round trip, {rt.nodes} nodes",
            f"{rt.median(rt.status_us):.0f} µs",
            f"{rt.median(rt.empty_us):.0f} µs (empty request)",
            f"{rt.median(rt.status_us) / rt.median(rt.empty_us):.2f}x",
            "-",
            f"p95 {rt.p95(rt.status_us):.0f} µs",
        ),
        (
            f"2 status round trip, {rt.nodes} nodes",
            f"{rt.median(rt.status_us):.0f} µs",
            f"{rt.median(rt.in_process_us):.0f} µs (in-process)",
            f"{rt.median(rt.status_us) / rt.median(rt.in_process_us):.2f}x",
            "-",
            "-",
        ),
    ]
    for r in swap_runs:
        rows += [
            (
                f"3 swap duration, {r.label}",
                f"{statistics.median(r.durations_ms):.2f} ms",
                "-",
                "-",
                "-",
                f"p95 {quantile(r.durations_ms, 0.95):.2f} ms",
            ),
            (
                f"3 longest gap, {r.label}",
                f"{max(r.swap_gaps_ms):.2f} ms",
                f"{max(r.quiet_gaps_ms):.2f} ms (no swap)",
                f"{max(r.swap_gaps_ms) / max(r.quiet_gaps_ms):.2f}x",
                "-",
                "-",
            ),
            (
                f"3 lost/reordered, {r.label}",
                f"{r.lost} / {0 if r.in_order else 'some'}",
                "0 / 0",
                "-",
                "0 / 0",
                verdict(r.verified),
            ),
        ]
    effect = statistics.median(t.effect_s for t in throttles)
    first = statistics.median(t.first_seen_s for t in throttles)
    settles = [t.seen_within_s for t in throttles if t.hold_s == LONG_HOLD_S]
    within_10 = f"; within 10% after {max(settles):.1f} s" if settles else ""
    rows.append(
        (
            "4 throttle effect latency",
            f"{effect * 1e3:.0f} ms",
            f"{TICK_S * 1e3:.0f} ms (tick)",
            f"{effect / TICK_S:.3f}",
            "-",
            f"seen in snapshot after {first * 1e3:.0f} ms{within_10}",
        )
    )
    print_summary(("item", "control", "baseline", "ratio", "goal", "verdict"), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer swaps")
    parser.add_argument("--child-poll", nargs=2, metavar=("SOCKET", "HZ"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_poll:
        poll_child(args.child_poll[0], float(args.child_poll[1]))
        return
    sizes = QUICK if args.quick else FULL
    root = Path(tempfile.mkdtemp(prefix="sbc-", dir="/tmp"))  # short: socket paths <= 107 bytes
    try:
        ws = Workspace(root)
        variants = timed("item 1", lambda: socket_cost(ws, sizes))
        rt = timed("item 2", lambda: status_round_trip(ws, sizes))
        swap_runs = timed("item 3", lambda: swaps(ws, sizes))
        throttles = timed("item 4", lambda: throttle_effect(ws, sizes))
        summary(variants, rt, swap_runs, throttles)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
