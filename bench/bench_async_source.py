"""An async source through the runtime against a bare `async for` over the same generator,
in the same run: `fetched (async, fetches of 64) -> null` (bench/_fetched_source.py, as a
network client yields the messages of a fetch).

The runtime takes, after each wait, every packet the source gives without waiting (up to a
batch), so its per-packet cost is the generator's and a list append, not a pull, a budget
reservation, a count and a hand-on each. Figures are CPU seconds per packet (best of the
rounds, interleaved), so the load of a shared machine moves them less; the ratio is the bare
loop's cost over the runtime's (1.0x: the runtime costs nothing on top).

`--before DIR` adds the runtime on an older checkout's packages laid out in DIR (as in
bench/bench_pipeline.py), in the same rounds.

Run: .venv/bin/python bench/bench_async_source.py [--count N] [--rounds N] [--before DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))


def _graph(count: int) -> str:
    return f"""version: 2
runtime: {{allow_modules: [_fetched_source]}}
nodes:
  - {{id: src, kind: source, plugin: "_fetched_source:Fetched", config: {{count: {count}}}}}
  - {{id: out, kind: sink, plugin: "null"}}
edges:
  - {{from: src, to: out}}
"""


def _runtime_cpu(count: int) -> float:
    from schnitzel.runtime import Runtime
    from schnitzel.validate import validate_text

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.yaml"
        result = validate_text(_graph(count), source=str(path), path=path)
        assert result.graph is not None, [p.render() for p in result.report.problems]
        runtime = Runtime(result.graph, state_dir=Path(tmp) / "state")
        start = time.process_time()
        report = asyncio.run(runtime.run())
        cpu = time.process_time() - start
    assert report["totals"]["delivered"] == count, report["totals"]
    return cpu


def _bare_cpu(count: int) -> float:
    from _fetched_source import fetched_packets

    async def drain() -> int:
        got = 0
        async for _packet in fetched_packets(count, 64, "src"):
            got += 1
        return got

    start = time.process_time()
    got = asyncio.run(drain())
    cpu = time.process_time() - start
    assert got == count
    return cpu


def child(variant: str, count: int) -> None:
    cpu = _bare_cpu(count) if variant == "bare" else _runtime_cpu(count)
    print(json.dumps({"cpu": cpu}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", type=Path, help="an older checkout's packages")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "COUNT"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    variants = ["bare async for", "schnitzel"] + (["schnitzel (before)"] if args.before else [])
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for variant in variants:
            env = None
            if variant.endswith("(before)"):
                env = {**os.environ, "PYTHONPATH": str(args.before.resolve())}
            kind = "bare" if variant.startswith("bare") else "runtime"
            cmd = [sys.executable, __file__, "--child", kind, str(args.count)]
            done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
            cpu = json.loads(done.stdout.splitlines()[-1])["cpu"]
            best[variant] = min(best.get(variant, cpu), cpu)
    print(f"{args.count:,} packets, best of {args.rounds} interleaved rounds, CPU per packet")
    bare = best["bare async for"]
    for variant, cpu in best.items():
        print(f"  {variant:22s} {cpu / args.count * 1e6:6.2f} µs  {bare / cpu:5.2f}x the bare loop")


if __name__ == "__main__":
    main()
