"""Pipelines as users write them, against hand-written asyncio and bytewax, in one run.

Two workloads (issue 18, rows 1 and 2), each variant in a fresh process per round, rounds
interleaved so that machine noise hits every variant alike; medians of the rounds:

1. Real per-packet work, `map -> filter -> map -> sink` (bench/_real_work.py: derive a
   payload, drop one in ten, derive again, add up in the sink), 1M packets:
   - schnitzel, the plugins written with per-packet `process` / `deliver`;
   - schnitzel, the plugins written with batch `process_batch` / `deliver_batch`;
   - hand-written asyncio, one packet per queue put/get (a task per stage, Queue(1024));
   - hand-written asyncio with lists of 64 packets per put/get;
   - bytewax 0.21, batches of 64 (an anchor; dict records).
   Goals: schnitzel >= 2.0x asyncio, >= 0.8x asyncio batches of 64.
2. `synthetic -> passthrough x3 -> null`, 1M packets: schnitzel, hand asyncio
   (bench/_pipeline_baseline.py), asyncio batches of 64, bytewax 0.21 batches of 64.
   Goal: schnitzel >= bytewax b64.

Rates are packets sent per second of the pipeline's own run (after imports and set-up);
"whole process" is the same count over the child's whole wall time, start-up included. Each is
also read per CPU second (the pipeline's `time.process_time()`, the whole child's user + system
time): on a shared machine a process waits for a core for a share of its wall time that moves
with everyone else's load, while its CPU time moves much less.
The packages are compiled to bytecode first (`compile_packages`), as an installed wheel is.
Ratios are medians of per-round ratios: on a shared machine the load drifts between rounds,
and a variant's neighbour in the same round saw the most similar load.
bytewax runs in its own virtualenv, `bench/.venv-bytewax` (created here with pip on first
use, gitignored), never in the project's environment.

`--before DIR` adds the schnitzel variants run on an older checkout's packages laid out in DIR
(`schnitzel/`, `schnitzel_plugins/`, and a `sitecustomize.py` that drops the editable
install's finder), interleaved with the rest: before and after in the same run.

Run: .venv/bin/python bench/bench_pipeline.py [--quick] [--rounds N] [--no-bytewax] [--before DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
BYTEWAX_VENV = BENCH_DIR / ".venv-bytewax"
BYTEWAX_PYTHON = BYTEWAX_VENV / "bin" / "python"
BYTEWAX_REQUIREMENT = "bytewax>=0.21,<0.22"

REAL = ["schnitzel process", "schnitzel process_batch", "asyncio", "asyncio b64", "bytewax b64"]
PASS = ["schnitzel", "asyncio", "asyncio b64", "bytewax b64"]


# -- children: one variant, one run, in a fresh process ----------------------------------------


def _real_graph(count: int, style: str) -> str:
    cls = {"each": "Each", "batch": "Batch"}[style]
    payload = "{raw: 20.5, unit: C, sensor: t-17}"
    return f"""version: 2
runtime: {{allow_modules: [_real_work]}}
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: {count}, payload: {payload}}}}}
  - {{id: scale, kind: transform, plugin: "_real_work:Scale{cls}"}}
  - {{id: keep, kind: transform, plugin: "_real_work:Keep{cls}"}}
  - {{id: label, kind: transform, plugin: "_real_work:Label{cls}"}}
  - {{id: out, kind: sink, plugin: "_real_work:Sum{cls}"}}
edges:
  - {{from: src, to: scale}}
  - {{from: scale, to: keep}}
  - {{from: keep, to: label}}
  - {{from: label, to: out}}
"""


def _passthrough_graph(count: int) -> str:
    nodes = [
        f"  - {{id: src, kind: source, plugin: synthetic, config: {{count: {count}, "
        "payload: {v: 1}}}",
        *(f"  - {{id: p{i}, kind: transform, plugin: passthrough}}" for i in (1, 2, 3)),
        '  - {id: out, kind: sink, plugin: "null"}',
    ]
    ids = ["src", "p1", "p2", "p3", "out"]
    edges = [f"  - {{from: {a}, to: {b}}}" for a, b in itertools.pairwise(ids)]
    return "\n".join(["version: 2", "nodes:", *nodes, "edges:", *edges]) + "\n"


def _run_schnitzel(text: str, count: int, delivered: int) -> tuple[float, float]:
    from schnitzel.runtime import Runtime
    from schnitzel.validate import validate_text

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.yaml"
        result = validate_text(text, source=str(path), path=path)
        assert result.graph is not None, [p.render() for p in result.report.problems]
        runtime = Runtime(result.graph, state_dir=Path(tmp) / "state")
        start, cpu = time.perf_counter(), time.process_time()
        report = asyncio.run(runtime.run())
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    totals = report["totals"]
    assert totals["emitted"] == count and totals["delivered"] == delivered, totals
    assert totals["errors"] == 0 and totals["dropped"] == 0, totals
    return seconds, cpu


def _timed(pipeline: Callable[[], Any], arrived: int) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    got = asyncio.run(pipeline())
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert got == arrived, (got, arrived)
    return seconds, cpu


def child(workload: str, variant: str, count: int) -> None:
    """Run one variant once in this (fresh) process; print its pipeline's wall and CPU
    seconds as JSON."""
    import _real_work as work
    from _pipeline_baseline import batched_pipeline, linear_pipeline

    if workload == "real":
        arrived, total = work.expected(count)
        if variant.startswith("schnitzel"):
            style = "batch" if variant.endswith("process_batch") else "each"
            seconds, cpu = _run_schnitzel(_real_graph(count, style), count, arrived)
            got_total = work.SUMS["out"]
        else:
            seconds, cpu = _timed(
                (lambda: work.asyncio_each(count))
                if variant == "asyncio"
                else (lambda: work.asyncio_batches(count)),
                arrived,
            )
            got_total = work.SUMS["asyncio"]
        assert abs(got_total - total) < 1e-6 * max(1.0, total), (got_total, total)
    elif variant == "schnitzel":
        seconds, cpu = _run_schnitzel(_passthrough_graph(count), count, count)
    elif variant == "asyncio":
        seconds, cpu = _timed(lambda: linear_pipeline(count), count)
    else:
        seconds, cpu = _timed(lambda: batched_pipeline(count, batch=work.BATCH), count)
    print(json.dumps({"seconds": seconds, "cpu": cpu}))


# -- the parent: rounds of fresh processes, medians, ratios ------------------------------------


def compile_packages(before: Path | None) -> None:
    """Compile the packages the children import, this checkout's and `before`'s. An installed
    wheel has its bytecode compiled by pip (as bytewax's has); an editable checkout run with
    PYTHONDONTWRITEBYTECODE=1 (as on these machines) would recompile every module in every
    child, which the whole-process figures would count as start-up."""
    for package in ("schnitzel", "plugins"):
        compileall.compile_dir(BENCH_DIR.parent / package, quiet=1)
    compileall.compile_dir(BENCH_DIR, quiet=1, maxlevels=0)
    if before is not None:
        compileall.compile_dir(before, quiet=1)


def ensure_bytewax() -> bool:
    """Create bench/.venv-bytewax with bytewax 0.21 unless it is there; False if it cannot."""
    if BYTEWAX_PYTHON.exists():
        return True
    print(f"(creating {BYTEWAX_VENV} with {BYTEWAX_REQUIREMENT}; once)")
    venv.create(BYTEWAX_VENV, with_pip=True)
    done = subprocess.run(
        [str(BYTEWAX_PYTHON), "-m", "pip", "install", "-q", BYTEWAX_REQUIREMENT], check=False
    )
    return done.returncode == 0


BEFORE = " (before)"


class Run(NamedTuple):
    """One variant's run in a fresh process: seconds of wall time and of CPU time."""

    seconds: float
    """The pipeline's own run (after imports and set-up)."""
    whole: float
    """The child process, start-up and exit included."""
    cpu: float
    """CPU seconds of the pipeline's own run."""
    whole_cpu: float
    """CPU seconds (user + system) of the whole child process."""


def run_variant(workload: str, variant: str, count: int, before: Path | None = None) -> Run:
    """Wall and CPU seconds, of the pipeline and of the whole process, of one fresh process."""
    env = None
    if variant.endswith(BEFORE):
        variant = variant.removesuffix(BEFORE)
        env = {**os.environ, "PYTHONPATH": str(before)}
    if variant == "bytewax b64":
        which = "passthrough" if workload == "pass" else "real"
        cmd = [str(BYTEWAX_PYTHON), str(BENCH_DIR / "_bytewax_flows.py"), which, str(count)]
    else:
        cmd = [sys.executable, __file__, "--child", workload, variant, str(count)]
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    whole = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child just waited for
    whole_cpu = after.ru_utime - used.ru_utime + after.ru_stime - used.ru_stime
    result = json.loads(done.stdout.splitlines()[-1])
    return Run(result["seconds"], whole, result["cpu"], whole_cpu)


def measure(
    workload: str, variants: list[str], count: int, rounds: int, before: Path | None = None
) -> dict[str, list[Run]]:
    """Per variant: its run of every round (rounds interleaved)."""
    runs: dict[str, list[Run]] = {v: [] for v in variants}
    for _ in range(rounds):
        for variant in variants:
            runs[variant].append(run_variant(workload, variant, count, before))
    return runs


def show(title: str, runs: dict[str, list[Run]], base: str, count: int) -> None:
    """Rates and ratios against `base`, by wall time and by CPU time. A rate is the median
    over rounds; a ratio the median of the per-round ratios (each variant against the
    baseline's run of the same round: neighbours in time share the machine's load). CPU
    time moves much less with the load of a shared machine than wall time does."""
    print(title)
    for variant, times in runs.items():
        rate = statistics.median(count / r.seconds for r in times)
        cpu_rate = statistics.median(count / r.cpu for r in times)
        listed = ", ".join(f"{count / r.seconds:,.0f}" for r in times)
        print(
            f"  {variant:34s} {rate:>10,.0f}/s {ratio(runs, variant, base, 'seconds'):5.2f}x"
            f" | whole process {ratio(runs, variant, base, 'whole'):5.2f}x"
            f" | per CPU second {cpu_rate:>10,.0f}/s {ratio(runs, variant, base, 'cpu'):5.2f}x,"
            f" whole process {ratio(runs, variant, base, 'whole_cpu'):5.2f}x"
            f"  (rounds: {listed})"
        )


def ratio(runs: dict[str, list[Run]], variant: str, base: str, measure: str) -> float:
    """The median over rounds of the variant's rate / the base's rate in the same round, by
    `measure` (a `Run` field: the rate is packets per that many seconds)."""
    pairs = zip(runs[variant], runs[base], strict=True)
    return statistics.median(getattr(b, measure) / getattr(v, measure) for v, b in pairs)


def goals(runs: dict[str, list[Run]], variant: str, base: str, goal: str) -> None:
    """One line: the variant against `base` by wall and by CPU time, pipeline and whole."""
    print(
        f"  -> {variant}: {ratio(runs, variant, base, 'seconds'):.2f}x {base}, whole process "
        f"{ratio(runs, variant, base, 'whole'):.2f}x; per CPU second "
        f"{ratio(runs, variant, base, 'cpu'):.2f}x, whole process "
        f"{ratio(runs, variant, base, 'whole_cpu'):.2f}x ({goal})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200k packets, 3 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3)")
    parser.add_argument("--count", type=int, default=None, help="packets (default 1M)")
    parser.add_argument("--no-bytewax", action="store_true", help="skip the bytewax anchors")
    parser.add_argument("--before", type=Path, help="an older checkout's packages (see above)")
    parser.add_argument("--child", nargs=3, metavar=("WORKLOAD", "VARIANT", "COUNT"))
    args = parser.parse_args()
    if args.child:
        workload, variant, count = args.child
        child(workload, variant, int(count))
        return
    count = args.count or (200_000 if args.quick else 1_000_000)
    rounds = args.rounds or 3
    use_bytewax = not args.no_bytewax and ensure_bytewax()
    real = [v for v in REAL if use_bytewax or not v.startswith("bytewax")]
    passthrough = [v for v in PASS if use_bytewax or not v.startswith("bytewax")]
    before = args.before.resolve() if args.before else None
    compile_packages(before)
    if before is not None:
        real += [v + BEFORE for v in REAL if v.startswith("schnitzel")]
        passthrough += [v + BEFORE for v in PASS if v.startswith("schnitzel")]
    print(f"{count:,} packets, median of {rounds} interleaved rounds, a fresh process each")
    results = measure("real", real, count, rounds, before)
    show("1. map -> filter -> map -> sink, real per-packet work", results, "asyncio", count)
    for variant in [v for v in real if v.startswith("schnitzel")]:
        goals(results, variant, "asyncio", "goal >= 2.0x")
        goals(results, variant, "asyncio b64", "goal >= 0.8x")
    results = measure("pass", passthrough, count, rounds, before)
    show("2. synthetic -> passthrough x3 -> null", results, "asyncio", count)
    if use_bytewax:
        for variant in [v for v in passthrough if v.startswith("schnitzel")]:
            goals(results, variant, "bytewax b64", "goal >= 1.0x")


if __name__ == "__main__":
    main()
