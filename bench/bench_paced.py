"""Many paced sources: 100 sources x 100 Hz -> 3 stages -> sink (issue 18, goal 3).

schnitzel runs `synthetic (rate_hz: 100) x 100 -> passthrough x 3 -> recording sink` (every
source feeds the first stage); the comparator is what one writes by hand on one asyncio loop:
100 producer tasks, each on a fixed schedule (sleep until its next due time, catching up
after a late wake), putting one packet at a time into a shared `asyncio.Queue(1024)`, three
stage tasks and a sink task between `Queue(1024)`s. Packets are made as `synthetic` makes
them, and both sinks record `packet.ts` and `time.time() - packet.ts` per packet.

Each run is a fresh process (a child of this script); rounds interleave the two so machine
noise hits both alike. Per run:
- held rate: packets whose `ts` falls in the run's steady window (its first and last second
  left out), per second of that window, against the offered 10,000/s;
- p50 / p99 source-to-sink latency (`time.time() - packet.ts` at the sink);
- CPU: the process's CPU seconds (user + system, all threads) over the run's wall seconds;
- waited for a core: the share of the run's wall time the process was ready to run but
  waited on a run queue (Linux schedstat). On a busy machine that wait is the latency tail:
  a packet in flight when the process loses its core waits with it.
Goal: held within 0.5% of offered, p99 < 5 ms, CPU at most 1.5x the comparator's.

Run: .venv/bin/python bench/bench_paced.py [--quick] [--rounds N] [--profile]
[--compare-tree DIR] [--uvloop]
(`--quick`: 10 s runs instead of 30 s; `--profile`: instead, a cProfile top-25 of one
schnitzel run; `--compare-tree`: also schnitzel imported from another checkout, its
plugin packs too, for before/after in the same rounds; `--uvloop`: also both on uvloop, the
loop `schnitzel run` takes where the `fast` extra is installed, with the goal judged on each
loop.)
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import cProfile
import io
import itertools
import json
import math
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

SOURCES = 100
RATE_HZ = 100.0
STAGES = 3
QUEUE_SIZE = 1024
LoopFactory = Callable[[], asyncio.AbstractEventLoop] | None
"""The event loop of a child run: None, asyncio's own; `--uvloop`: uvloop's."""
EDGE_S = 1.0
"""Left out at each end of a run when the held rate is counted (start-up, stop)."""


@dataclass(frozen=True)
class RunFigures:
    """What one run measured."""

    held_rate: float
    p50_ms: float
    p99_ms: float
    cpu_share: float
    delivered: int
    core_wait_share: float
    """Of the run's wall time, how long the process was ready to run but waited for a core
    (Linux schedstat; 0 elsewhere): a busy machine's share of the latency tail."""


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def core_wait_s() -> float:
    """Seconds this (single-threaded) process has waited on a run queue so far; 0 when the
    system does not say (not Linux)."""
    try:
        with open("/proc/self/schedstat", "rb") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def figures(
    stamps: list[float], ages: list[float], cpu_s: float, wall_s: float, waited_s: float
) -> RunFigures:
    first, last = min(stamps), max(stamps)
    low, high = first + EDGE_S, last - EDGE_S
    held = sum(1 for ts in stamps if low <= ts < high) / (high - low)
    return RunFigures(
        held,
        quantile(ages, 0.5) * 1e3,
        quantile(ages, 0.99) * 1e3,
        cpu_s / wall_s,
        len(ages),
        waited_s / wall_s,
    )


# -- schnitzel -------------------------------------------------------------------------------


def graph_text() -> str:
    lines = ["version: 2", "runtime: {allow_modules: [_paced_sink]}", "nodes:"]
    for i in range(SOURCES):
        lines.append(
            f"  - {{id: s{i}, kind: source, plugin: synthetic, "
            f"config: {{rate_hz: {RATE_HZ}, payload: {{v: 1}}}}}}"
        )
    for i in range(1, STAGES + 1):
        lines.append(f"  - {{id: p{i}, kind: transform, plugin: passthrough}}")
    lines.append("  - {id: out, kind: sink, plugin: '_paced_sink:ArrivalRecorder'}")
    lines.append("edges:")
    lines += [f"  - {{from: s{i}, to: p1}}" for i in range(SOURCES)]
    chain = [f"p{i}" for i in range(1, STAGES + 1)] + ["out"]
    lines += [f"  - {{from: {a}, to: {b}}}" for a, b in itertools.pairwise(chain)]
    return "\n".join(lines) + "\n"


def run_schnitzel(seconds: float, loop: LoopFactory = None, profile: bool = False) -> RunFigures:
    from _paced_sink import AGES, STAMPS

    from schnitzel.runtime import Runtime
    from schnitzel.validate import validate_text

    with tempfile.TemporaryDirectory() as tmp:
        result = validate_text(graph_text(), source="paced.yaml", path=Path(tmp) / "paced.yaml")
        assert result.graph is not None, [p.render() for p in result.report.problems]
        runtime = Runtime(result.graph, state_dir=Path(tmp) / "state", drain_timeout_s=30.0)
        profiler = cProfile.Profile() if profile else None
        cpu, wall, waited = time.process_time(), time.perf_counter(), core_wait_s()
        if profiler is not None:
            profiler.enable()
        with asyncio.Runner(loop_factory=loop) as runner:
            report = runner.run(runtime.run(duration_s=seconds))
        if profiler is not None:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        waited = core_wait_s() - waited
    totals = report["totals"]
    assert totals["dropped"] == 0 and totals["errors"] == 0, totals
    assert totals["emitted"] == totals["delivered"] == len(AGES), (totals, len(AGES))
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        print(text.getvalue(), file=sys.stderr)
    return figures(STAMPS, AGES, cpu, wall, waited)


# -- the hand-written comparator --------------------------------------------------------------


_END = object()


async def comparator(seconds: float, stamps: list[float], ages: list[float]) -> None:
    from schnitzel.contract import StreamPacket

    queues: list[asyncio.Queue[object]] = [
        asyncio.Queue(maxsize=QUEUE_SIZE) for _ in range(STAGES + 1)
    ]
    mono = time.monotonic
    end = mono() + seconds

    async def producer(source_id: str, out: asyncio.Queue[object]) -> None:
        new, now, put = StreamPacket.new, time.time, out.put
        start, period, seq = mono(), 1.0 / RATE_HZ, 0
        while True:
            due = start + seq * period
            if due >= end:
                return
            delay = due - mono()
            if delay > 0:
                await asyncio.sleep(delay)
            await put(new("sensor", source_id, seq, {"v": 1}, None, None, now()))
            seq += 1

    async def stage(inbox: asyncio.Queue[object], out: asyncio.Queue[object]) -> None:
        get, put = inbox.get, out.put
        while True:
            packet = await get()
            await put(packet)
            if packet is _END:
                return

    async def sink(inbox: asyncio.Queue[object]) -> None:
        get, now = inbox.get, time.time
        while (packet := await get()) is not _END:
            ts = packet.ts  # type: ignore[attr-defined]
            stamps.append(ts)
            ages.append(now() - ts)

    producers = [asyncio.create_task(producer(f"s{i}", queues[0])) for i in range(SOURCES)]
    stages = [asyncio.create_task(stage(queues[i], queues[i + 1])) for i in range(STAGES)]
    done = asyncio.create_task(sink(queues[-1]))
    await asyncio.gather(*producers)
    await queues[0].put(_END)
    await asyncio.gather(*stages, done)


def run_comparator(seconds: float, loop: LoopFactory = None) -> RunFigures:
    import schnitzel.contract  # noqa: F401  (imported before the clock starts, as schnitzel's)

    stamps: list[float] = []
    ages: list[float] = []
    cpu, wall, waited = time.process_time(), time.perf_counter(), core_wait_s()
    with asyncio.Runner(loop_factory=loop) as runner:
        runner.run(comparator(seconds, stamps, ages))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return figures(stamps, ages, cpu, wall, core_wait_s() - waited)


# -- rounds and summary -----------------------------------------------------------------------


def import_root(tree: Path) -> Path:
    """Where to import the `schnitzel` of `tree` from, and its plugin packs. A checkout (with
    `plugins/` and `tui/`, e.g. `git worktree add --detach DIR main`) is laid out as installed
    (`schnitzel_plugins`, `schnitzel_tui`) in a temporary directory of links: else this
    checkout's editable install would give the compared run this checkout's `synthetic` and
    `passthrough`. A directory holding only `schnitzel/` is taken as it is (then the plugin
    packs are this checkout's)."""
    if not (tree / "plugins").is_dir():
        return tree
    root = Path(tempfile.mkdtemp(prefix="bench-paced-tree-"))
    atexit.register(shutil.rmtree, root)  # the links only, never what they point at
    for name, folder in [("schnitzel", "schnitzel"), ("schnitzel_plugins", "plugins")]:
        (root / name).symlink_to(tree / folder)
    if (tree / "tui").is_dir():
        (root / "schnitzel_tui").symlink_to(tree / "tui")
    return root


def child(which: str, seconds: float, tree: Path | None = None, uvloop: bool = False) -> RunFigures:
    """One run in a fresh process; `tree`: import `schnitzel` from there instead (a directory
    from `import_root`)."""
    cmd = [sys.executable, __file__, "--child", which, "--seconds", str(seconds)]
    cmd += ["--uvloop"] if uvloop else []
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return RunFigures(**json.loads(out.strip().splitlines()[-1]))


def show(label: str, run: RunFigures) -> str:
    return (
        f"{label} held {run.held_rate:8,.0f}/s ({run.held_rate / offered() - 1:+.2%}), "
        f"p50 {run.p50_ms:5.2f} p99 {run.p99_ms:6.2f} ms, CPU {run.cpu_share:5.1%}, "
        f"waited for a core {run.core_wait_share:5.2%}"
    )


def offered() -> float:
    return SOURCES * RATE_HZ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s runs instead of 30 s")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--profile", action="store_true", help="cProfile one schnitzel run")
    parser.add_argument(
        "--compare-tree",
        type=Path,
        help="also run schnitzel imported from this checkout (e.g. `git worktree add "
        "--detach DIR <commit>`), its plugin packs too; or from a directory holding only a "
        "`schnitzel/` package: before/after",
    )
    parser.add_argument(
        "--uvloop",
        action="store_true",
        help="also run schnitzel and the comparator on uvloop (installed in this venv)",
    )
    parser.add_argument("--child", choices=["schnitzel", "asyncio"], help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=30.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    seconds = 10.0 if args.quick else args.seconds
    if args.child is not None:
        loop: LoopFactory = None
        if args.uvloop:
            import uvloop

            loop = uvloop.new_event_loop
        run = (
            run_comparator(seconds, loop)
            if args.child == "asyncio"
            else run_schnitzel(seconds, loop)
        )
        print(json.dumps(asdict(run)))
        return
    if args.profile:
        print(show("schnitzel (profiled)", run_schnitzel(seconds, profile=True)))
        return
    print(
        f"{SOURCES} sources x {RATE_HZ:.0f} Hz -> {STAGES} stages -> sink, {seconds:.0f} s per "
        f"run, {args.rounds} interleaved rounds, fresh processes (offered {offered():,.0f}/s)"
    )
    variants: dict[str, tuple[str, Path | None, bool]] = {
        "schnitzel": ("schnitzel", None, False),
        "asyncio": ("asyncio", None, False),
    }
    if args.compare_tree is not None:
        variants["compared"] = ("schnitzel", import_root(args.compare_tree.resolve()), False)
        print(f"  compared: schnitzel imported from {args.compare_tree}")
    if args.uvloop:
        variants["schn-uv"] = ("schnitzel", None, True)
        variants["async-uv"] = ("asyncio", None, True)
    runs: dict[str, list[RunFigures]] = {name: [] for name in variants}
    names = list(variants)
    for i in range(args.rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate the order
            which, tree, on_uvloop = variants[name]
            run = child(which, seconds, tree, on_uvloop)
            runs[name].append(run)
            print(f"  round {i + 1}: " + show(f"{name:9}", run), flush=True)
    med = {
        which: RunFigures(
            statistics.median(r.held_rate for r in rs),
            statistics.median(r.p50_ms for r in rs),
            statistics.median(r.p99_ms for r in rs),
            statistics.median(r.cpu_share for r in rs),
            int(statistics.median(r.delivered for r in rs)),
            statistics.median(r.core_wait_share for r in rs),
        )
        for which, rs in runs.items()
    }
    s, a = med["schnitzel"], med["asyncio"]
    print("medians")
    print("  " + show("schnitzel", s))
    print("  " + show("asyncio  ", a))
    if "compared" in med:
        c = med["compared"]
        print("  " + show("compared ", c))
        print(
            f"  compared: CPU {c.cpu_share / a.cpu_share:.2f}x the comparator's, p99 "
            f"{c.p99_ms:.2f} ms; schnitzel uses {s.cpu_share / c.cpu_share:.2f}x its CPU"
        )
    if args.uvloop:
        su, au = med["schn-uv"], med["async-uv"]
        print("  " + show("schn-uv  ", su))
        print("  " + show("async-uv ", au))
        print(
            f"  uvloop: schnitzel CPU {su.cpu_share / s.cpu_share:.2f}x its asyncio loop's, "
            f"{su.cpu_share / a.cpu_share:.2f}x the asyncio comparator's; the comparator on "
            f"uvloop {au.cpu_share / a.cpu_share:.2f}x"
        )
    print("  " + verdict("asyncio", s, a))
    if args.uvloop:
        print("  " + verdict("uvloop", med["schn-uv"], med["async-uv"]))


def verdict(loop: str, s: RunFigures, a: RunFigures) -> str:
    """Goal 3 for schnitzel `s` against the comparator `a`, both on `loop`."""
    held_ok = abs(s.held_rate / offered() - 1) <= 0.005
    return (
        f"-> on {loop}: held {'ok' if held_ok else 'MISSED'} (within 0.5%), p99 "
        f"{'ok' if s.p99_ms < 5 else 'MISSED'} (< 5 ms; the comparator's {a.p99_ms:.2f} ms), "
        f"CPU {s.cpu_share / a.cpu_share:.2f}x the comparator's on {loop} "
        f"({'ok' if s.cpu_share <= 1.5 * a.cpu_share else 'MISSED'}: <= 1.5x)"
    )


if __name__ == "__main__":
    main()
