"""The jsonl sink's fsync policies: packets/s for `never`, `interval` and `batch`, in one run.

Each figure is read against `fsync: never` measured in the same run (the machine is shared and
noisy, and what an fsync costs depends on the disk, so no absolute rate is a verdict):

1. The sink called directly, as the runtime calls a blocking sink: `deliver_batch` on
   pre-built packets in batches of 1, 16 and 256 (256 is the most the runtime hands over at
   once). `batch` pays one fsync per batch, so small batches show its worst case. Best of
   several interleaved rounds.
2. Through the runtime: `synthetic (count N) -> jsonl`, the batches the runtime really makes.

The files go to a temporary directory under `--dir` (default: the system temp dir). Point it
at the disk the sink will write to in production: on tmpfs an fsync costs nothing.

Run: .venv/bin/python bench/bench_jsonl_sink.py [--quick] [--dir PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from schnitzel.contract.packet import StreamPacket
from schnitzel.registry.plugin import NodeContext
from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph
from schnitzel_plugins.io.jsonl_sink import JsonlSink, JsonlSinkConfig

POLICIES = ("never", "interval", "batch")
BATCH_SIZES = (1, 16, 256)
PAYLOAD = {"x": 1.5, "y": -0.25, "z": 9.81}


def sink_in(directory: Path, policy: str) -> JsonlSink:
    context = NodeContext("out", directory, directory / "state", logging.getLogger("bench"))
    return JsonlSink(JsonlSinkConfig(path=f"{policy}.jsonl", fsync=policy), context)


def direct_rate(directory: Path, policy: str, packets: list[StreamPacket], size: int) -> float:
    """Packets/s of `deliver_batch` in batches of `size`, open and close included."""
    (directory / f"{policy}.jsonl").unlink(missing_ok=True)
    sink = sink_in(directory, policy)
    batches = [packets[i : i + size] for i in range(0, len(packets), size)]
    start = time.perf_counter()
    asyncio.run(sink.open())
    for batch in batches:
        sink.deliver_batch(batch)
    asyncio.run(sink.close())
    return len(packets) / (time.perf_counter() - start)


def runtime_rate(directory: Path, policy: str, count: int) -> float:
    """Packets/s of a whole run of `synthetic -> jsonl`."""
    (directory / "run.jsonl").unlink(missing_ok=True)
    graph = directory / "graph.yaml"
    graph.write_text(
        "version: 2\nnodes:\n"
        f"  - {{id: gen, kind: source, plugin: synthetic, config: {{count: {count}, "
        "payload: {x: 1.5, y: -0.25, z: 9.81}}}\n"
        "  - {id: out, kind: sink, plugin: jsonl, "
        f"config: {{path: run.jsonl, fsync: {policy}}}}}\n"
        "edges: [{from: gen, to: out}]\n"
    )
    runtime = Runtime(load_graph(graph), state_dir=directory / "state")
    start = time.perf_counter()
    report = asyncio.run(runtime.run())
    seconds = time.perf_counter() - start
    assert report["totals"]["delivered"] == count, report["totals"]
    return count / seconds


def best_interleaved(measure: Callable[[str], float], rounds: int) -> dict[str, float]:
    """The best rate of each policy over `rounds`, the policies taking turns within a round."""
    best = dict.fromkeys(POLICIES, 0.0)
    for _ in range(rounds):
        for policy in POLICIES:
            best[policy] = max(best[policy], measure(policy))
    return best


def report_line(label: str, rates: dict[str, float]) -> str:
    base = rates["never"]
    cells = [
        f"{policy} {rates[policy]:>9,.0f}/s ({rates[policy] / base:4.2f}x)" for policy in POLICIES
    ]
    return f"  {label:<18}" + "   ".join(cells)


def disk_of(directory: Path) -> str:
    done = subprocess.run(
        ["df", "--output=fstype,source", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.split()
    return " ".join(lines[-2:]) if done.returncode == 0 else "unknown filesystem"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer packets and rounds")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the files")
    args = parser.parse_args()
    count, rounds = (20_000, 2) if args.quick else (100_000, 3)

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench_jsonl_") as name:
        directory = Path(name)
        print(
            f"jsonl sink, files on {disk_of(directory)}; ratios to fsync: never (higher is faster)"
        )
        packets = [StreamPacket.new("sensor", "imu", n, PAYLOAD) for n in range(count)]
        for size in BATCH_SIZES:
            # fsync per batch makes batches of 1 slow: fewer packets keep the run short
            share = packets if size >= 16 else packets[: max(count // 20, 1000)]
            rates = best_interleaved(
                lambda p, share=share, size=size: direct_rate(directory, p, share, size), rounds
            )
            print(report_line(f"batches of {size}", rates))
        rates = best_interleaved(lambda p: runtime_rate(directory, p, count), rounds)
        print(report_line("runtime run", rates))
        print(f"  ({count:,} packets per run, best of {rounds}; cpu count {os.cpu_count()})")


if __name__ == "__main__":
    sys.exit(main())
