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

On a shared machine the CPU share of a run moves with the load (a process that lost its core
wakes late and its sources catch up in bigger batches): the verdict takes the CPU ratio of
each round (CPU per packet held: schnitzel's run against the comparator's of the same round),
names the runs that fell behind the offered rate, says the load the rounds ran under, and
with `--instructions` adds the instructions per packet of `bench_paced_instructions.py` (a
virtual clock under valgrind, which the load does not move).

Run: .venv/bin/python bench/bench_paced.py [--quick] [--rounds N] [--profile]
[--compare-tree DIR] [--loop auto|asyncio|uvloop] [--instructions]
(`--quick`: 10 s runs instead of 30 s; `--profile`: instead, a cProfile top-25 of one
schnitzel run; `--compare-tree`: also schnitzel imported from another checkout, its
plugin packs too, for before/after in the same rounds; `--loop`: the event loop of every
run, schnitzel's and the comparator's (`auto`, the default: the loop `schnitzel run` takes,
uvloop where installed); `--instructions`: also count instructions per packet.)
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
LoopFactory = Callable[[], asyncio.AbstractEventLoop]
"""What makes the event loop of a child run."""
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


def loop_factory(name: str) -> LoopFactory:
    """The event loop `name` ("asyncio" or "uvloop"), as `schnitzel run --loop` makes it."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.SelectorEventLoop


def default_loop() -> str:
    """The loop `schnitzel run` takes by default (`--loop auto`): uvloop where installed."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run_schnitzel(
    seconds: float, loop: LoopFactory = asyncio.SelectorEventLoop, profile: bool = False
) -> RunFigures:
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


def run_comparator(seconds: float, loop: LoopFactory = asyncio.SelectorEventLoop) -> RunFigures:
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


def child(which: str, seconds: float, loop: str, tree: Path | None = None) -> RunFigures:
    """One run in a fresh process on the event loop `loop`; `tree`: import `schnitzel` from
    there instead (a directory from `import_root`)."""
    cmd = [sys.executable, __file__, "--child", which, "--seconds", str(seconds), "--loop", loop]
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


def load() -> str:
    """The machine's load averages (1, 5, 15 min) and its cores, to print beside the figures."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


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
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="the event loop of every run (auto: schnitzel run's default, uvloop where installed)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count instructions per packet on a virtual clock (valgrind; "
        "bench_paced_instructions.py, asyncio's loop)",
    )
    parser.add_argument("--child", choices=["schnitzel", "asyncio"], help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=30.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    seconds = 10.0 if args.quick else args.seconds
    loop_name = default_loop() if args.loop == "auto" else args.loop
    if args.child is not None:
        factory = loop_factory(loop_name)
        run = (
            run_comparator(seconds, factory)
            if args.child == "asyncio"
            else run_schnitzel(seconds, factory)
        )
        print(json.dumps(asdict(run)))
        return
    if args.profile:
        print(show("schnitzel (profiled)", run_schnitzel(seconds, loop_factory(loop_name), True)))
        return
    print(
        f"{SOURCES} sources x {RATE_HZ:.0f} Hz -> {STAGES} stages -> sink, {seconds:.0f} s per "
        f"run, {args.rounds} interleaved rounds, fresh processes, every run on {loop_name} "
        f"(offered {offered():,.0f}/s); {load()}"
    )
    variants: dict[str, tuple[str, Path | None]] = {
        "schnitzel": ("schnitzel", None),
        "asyncio": ("asyncio", None),
    }
    if args.compare_tree is not None:
        variants["compared"] = ("schnitzel", import_root(args.compare_tree.resolve()))
        print(f"  compared: schnitzel imported from {args.compare_tree}")
    runs: dict[str, list[RunFigures]] = {name: [] for name in variants}
    names = list(variants)
    for i in range(args.rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate the order
            which, tree = variants[name]
            run = child(which, seconds, loop_name, tree)
            runs[name].append(run)
            print(f"  round {i + 1}: " + show(f"{name:9}", run), flush=True)
        print(f"  round {i + 1}: {load()}", flush=True)
    med = {which: median_run(rs) for which, rs in runs.items()}
    s, a = med["schnitzel"], med["asyncio"]
    print("medians")
    print("  " + show("schnitzel", s))
    print("  " + show("asyncio  ", a))
    if "compared" in med:
        c = med["compared"]
        print("  " + show("compared ", c))
        print(
            f"  compared: CPU {round_ratios(runs['compared'], runs['asyncio'])} the "
            f"comparator's, p99 {c.p99_ms:.2f} ms; schnitzel uses "
            f"{round_ratios(runs['schnitzel'], runs['compared'])} its CPU"
        )
    counts = instruction_counts(args.compare_tree) if args.instructions else None
    print("  " + verdict(loop_name, runs["schnitzel"], runs["asyncio"], counts))
    print(f"  ({load()})")


def median_run(runs: list[RunFigures]) -> RunFigures:
    """The median of each figure over `runs`."""
    return RunFigures(
        statistics.median(r.held_rate for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        statistics.median(r.cpu_share for r in runs),
        int(statistics.median(r.delivered for r in runs)),
        statistics.median(r.core_wait_share for r in runs),
    )


def cpu_ratios(mine: list[RunFigures], theirs: list[RunFigures]) -> list[float]:
    """CPU per packet held of `mine` over `theirs`, round by round (two runs of one round met
    about the same load; runs of different rounds did not). Per packet: a run starved of its
    core that fell behind the offered rate did less work, and spent less CPU on it."""
    return [
        (m.cpu_share / m.held_rate) / (t.cpu_share / t.held_rate)
        for m, t in zip(mine, theirs, strict=True)
    ]


def round_ratios(mine: list[RunFigures], theirs: list[RunFigures]) -> str:
    """`cpu_ratios`: their median and range."""
    ratios = cpu_ratios(mine, theirs)
    return f"{statistics.median(ratios):.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}x)"


def instruction_counts(before: Path | None) -> dict[str, float]:
    """Instructions per packet (`bench_paced_instructions.py`): schnitzel, the comparator,
    and `before` (a checkout) when given."""
    from bench_paced_instructions import per_packet

    counts = {"asyncio": per_packet("asyncio", 2.5, None)}
    counts["schnitzel"] = per_packet("schnitzel", 2.5, None)
    if before is not None:
        counts["compared"] = per_packet("schnitzel", 2.5, import_root(before.resolve()))
    return counts


def verdict(
    loop: str, s: list[RunFigures], a: list[RunFigures], counts: dict[str, float] | None
) -> str:
    """Goal 3 for schnitzel's runs `s` against the comparator's `a`, both on `loop`: held rate
    and p99 at their medians, CPU round by round."""
    sm = median_run(s)
    held_ok = abs(sm.held_rate / offered() - 1) <= 0.005
    cpu_ok = statistics.median(cpu_ratios(s, a)) <= 1.5
    behind = [
        f"round {i + 1} ({name})"
        for i, runs in enumerate(zip(s, a, strict=True))
        for name, run in zip(("schnitzel", "comparator"), runs, strict=True)
        if abs(run.held_rate / offered() - 1) > 0.005
    ]
    text = (
        f"-> on {loop}: held {'ok' if held_ok else 'MISSED'} (within 0.5%), p99 "
        f"{'ok' if sm.p99_ms < 5 else 'MISSED'} (< 5 ms; rounds "
        f"{', '.join(f'{r.p99_ms:.2f}' for r in s)}; the comparator's "
        f"{', '.join(f'{r.p99_ms:.2f}' for r in a)}), CPU {round_ratios(s, a)} the "
        f"comparator's per packet ({'ok' if cpu_ok else 'MISSED'}: <= 1.5x)"
    )
    if behind:  # starved of a core: its p99 and CPU are the machine's, not the code's
        text += f"; fell behind the offered rate: {', '.join(behind)}"
    if counts is not None:
        base = counts["asyncio"]
        text += "; instructions per packet (virtual clock): " + ", ".join(
            f"{name} {value:,.0f} ({value / base:.2f}x)" for name, value in counts.items()
        )
    return text


if __name__ == "__main__":
    main()
