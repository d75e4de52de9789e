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
"whole process" is the same count over the child's whole wall time, start-up included.
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
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def _run_schnitzel(text: str, count: int, delivered: int) -> float:
    from schnitzel.runtime import Runtime
    from schnitzel.validate import validate_text

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.yaml"
        result = validate_text(text, source=str(path), path=path)
        assert result.graph is not None, [p.render() for p in result.report.problems]
        runtime = Runtime(result.graph, state_dir=Path(tmp) / "state")
        start = time.perf_counter()
        report = asyncio.run(runtime.run())
        seconds = time.perf_counter() - start
    totals = report["totals"]
    assert totals["emitted"] == count and totals["delivered"] == delivered, totals
    assert totals["errors"] == 0 and totals["dropped"] == 0, totals
    return seconds


def _timed(pipeline: Callable[[], Any], arrived: int) -> float:
    start = time.perf_counter()
    got = asyncio.run(pipeline())
    seconds = time.perf_counter() - start
    assert got == arrived, (got, arrived)
    return seconds


def child(workload: str, variant: str, count: int) -> None:
    """Run one variant once in this (fresh) process; print its pipeline seconds as JSON."""
    import _real_work as work
    from _pipeline_baseline import batched_pipeline, linear_pipeline

    if workload == "real":
        arrived, total = work.expected(count)
        if variant.startswith("schnitzel"):
            style = "batch" if variant.endswith("process_batch") else "each"
            seconds = _run_schnitzel(_real_graph(count, style), count, arrived)
            got_total = work.SUMS["out"]
        else:
            seconds = _timed(
                (lambda: work.asyncio_each(count))
                if variant == "asyncio"
                else (lambda: work.asyncio_batches(count)),
                arrived,
            )
            got_total = work.SUMS["asyncio"]
        assert abs(got_total - total) < 1e-6 * max(1.0, total), (got_total, total)
    elif variant == "schnitzel":
        seconds = _run_schnitzel(_passthrough_graph(count), count, count)
    elif variant == "asyncio":
        seconds = _timed(lambda: linear_pipeline(count), count)
    else:
        seconds = _timed(lambda: batched_pipeline(count, batch=work.BATCH), count)
    print(json.dumps({"seconds": seconds}))


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


def run_variant(
    workload: str, variant: str, count: int, before: Path | None = None
) -> tuple[float, float]:
    """(pipeline seconds, whole-process seconds) of one fresh process."""
    env = None
    if variant.endswith(BEFORE):
        variant = variant.removesuffix(BEFORE)
        env = {**os.environ, "PYTHONPATH": str(before)}
    if variant == "bytewax b64":
        which = "passthrough" if workload == "pass" else "real"
        cmd = [str(BYTEWAX_PYTHON), str(BENCH_DIR / "_bytewax_flows.py"), which, str(count)]
    else:
        cmd = [sys.executable, __file__, "--child", workload, variant, str(count)]
    start = time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    whole = time.perf_counter() - start
    return json.loads(done.stdout.splitlines()[-1])["seconds"], whole


def measure(
    workload: str, variants: list[str], count: int, rounds: int, before: Path | None = None
) -> dict[str, tuple[float, float, list[float]]]:
    """Per variant: median rate, median whole-process rate, the rates of every round."""
    runs: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    for _ in range(rounds):
        for variant in variants:
            runs[variant].append(run_variant(workload, variant, count, before))
    return {
        v: (
            statistics.median(count / s for s, _ in times),
            statistics.median(count / w for _, w in times),
            [count / s for s, _ in times],
        )
        for v, times in runs.items()
    }


def show(title: str, results: dict[str, tuple[float, float, list[float]]], base: str) -> None:
    """Rates and ratios. A ratio is the median of the per-round ratios (each variant against
    the baseline's run of the same round: neighbours in time share the machine's load)."""
    print(title)
    for variant, (rate, whole, rates) in results.items():
        ratio = paired_ratio(results, variant, base)
        whole_ratio = whole / results[base][1]
        listed = ", ".join(f"{r:,.0f}" for r in rates)
        print(
            f"  {variant:34s} {rate:>10,.0f}/s  {ratio:5.2f}x {base}  | whole process "
            f"{whole:>9,.0f}/s {whole_ratio:5.2f}x  (rounds: {listed})"
        )


def paired_ratio(
    results: dict[str, tuple[float, float, list[float]]], variant: str, base: str
) -> float:
    """The median over rounds of variant rate / base rate in the same round."""
    pairs = zip(results[variant][2], results[base][2], strict=True)
    return statistics.median(ours / theirs for ours, theirs in pairs)


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
    show("1. map -> filter -> map -> sink, real per-packet work", results, "asyncio")
    for variant in [v for v in real if v.startswith("schnitzel")]:
        ratio = paired_ratio(results, variant, "asyncio b64")
        print(f"  -> {variant}: {ratio:.2f}x asyncio b64 (goals: >= 2.0x asyncio, >= 0.8x b64)")
    results = measure("pass", passthrough, count, rounds, before)
    show("2. synthetic -> passthrough x3 -> null", results, "asyncio")
    if use_bytewax:
        ratio = paired_ratio(results, "schnitzel", "bytewax b64")
        whole = results["schnitzel"][1] / results["bytewax b64"][1]
        print(
            f"  -> schnitzel: {ratio:.2f}x bytewax b64, whole process {whole:.2f}x (goal >= 1.0x)"
        )


if __name__ == "__main__":
    main()
