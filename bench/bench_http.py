"""The http sink's throughput into a real HTTP server on 127.0.0.1, against plain httpx.

Each figure is read against a baseline measured in the same run, into the same backend
(tests/http_backend.py: a threaded stdlib server that parses and records every body, so it is
the slow side; both variants pay for it alike):

- baseline: one `httpx.AsyncClient`, a loop POSTing each packet's `encode_packet` JSON with
  an Idempotency-Key header, one packet per request, one request at a time.
- sink, batch_max 1: `synthetic (count N) -> http` through `Runtime`, one packet per request
  (encoding, breaker bookkeeping and the runtime's accounting on top of the same requests).
  Goal: >= 0.8x the baseline.
- sink, batch_max 64: the same graph posting JSON arrays of up to 64 packets.
  Goal: >= 5x the baseline.

Best of several interleaved rounds (the machine is shared and noisy). Every run checks that
the backend got each key exactly once.

Run: .venv/bin/python bench/bench_http.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.http_backend
from schnitzel.contract.codec import encode_packet
from schnitzel.contract.packet import StreamPacket
from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph
from tests.http_backend import LoopbackBackend

PAYLOAD = {"v": 1, "site": "lab", "reading": 21.5}


def graph_file(directory: Path, url: str, count: int, batch_max: int) -> Path:
    path = directory / f"http_{batch_max}.yaml"
    path.write_text(
        "version: 2\nnodes:\n"
        f"  - {{id: src, kind: source, plugin: synthetic, config: {{count: {count}, "
        "payload: {v: 1, site: lab, reading: 21.5}}}\n"
        "  - id: out\n    kind: sink\n    plugin: http\n"
        f"    config: {{url: '{url}', batch_max: {batch_max}}}\n"
        "edges: [{from: src, to: out}]\n"
    )
    return path


def check_exactly_once(backend: LoopbackBackend, source_id: str, count: int) -> None:
    got = Counter(f"{p['source_id']}:{p['seq']}" for p in backend.packets())
    assert got == Counter({f"{source_id}:{i}": 1 for i in range(count)}), "lost or duplicated"


def sink_rate(backend: LoopbackBackend, directory: Path, count: int, batch_max: int) -> float:
    backend.reset()
    graph = load_graph(graph_file(directory, backend.url, count, batch_max))
    runtime = Runtime(graph, state_dir=directory / "state")
    start = time.perf_counter()
    report = asyncio.run(runtime.run())
    seconds = time.perf_counter() - start
    assert report["totals"]["delivered"] == count, report["totals"]
    check_exactly_once(backend, "src", count)
    return count / seconds


async def post_each(url: str, count: int) -> None:
    async with httpx.AsyncClient() as client:
        for seq in range(count):
            packet = StreamPacket.new("sensor", "base", seq, dict(PAYLOAD))
            response = await client.post(
                url,
                content=encode_packet(packet).encode(),
                headers={
                    "Content-Type": "application/json",
                    "Idempotency-Key": packet.idempotency_key,
                },
            )
            response.raise_for_status()


def baseline_rate(backend: LoopbackBackend, count: int) -> float:
    backend.reset()
    start = time.perf_counter()
    asyncio.run(post_each(backend.url, count))
    seconds = time.perf_counter() - start
    check_exactly_once(backend, "base", count)
    return count / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer packets and rounds")
    args = parser.parse_args()
    single, batched, rounds = (500, 5_000, 2) if args.quick else (3_000, 30_000, 3)

    with tempfile.TemporaryDirectory() as tmp, LoopbackBackend() as backend:
        directory = Path(tmp)
        runs: dict[str, Callable[[], float]] = {
            "baseline": lambda: baseline_rate(backend, single),
            "sink batch_max 1": lambda: sink_rate(backend, directory, single, 1),
            "sink batch_max 64": lambda: sink_rate(backend, directory, batched, 64),
        }
        rates: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(rounds):  # interleaved: machine noise hits every variant alike
            for name, run in runs.items():
                rates[name].append(run())

    best = {name: max(values) for name, values in rates.items()}
    base = best["baseline"]
    goals = {"baseline": None, "sink batch_max 1": 0.8, "sink batch_max 64": 5.0}
    print(f"http sink into a loopback backend (best of {rounds} interleaved rounds)")
    header = ("variant", "packets/s", "ratio", "goal", "verdict")
    rows = [header]
    for name, rate in best.items():
        goal = goals[name]
        ratio = rate / base
        rows.append(
            (
                name,
                f"{rate:,.0f}",
                f"{ratio:.2f}x",
                "-" if goal is None else f">= {goal}x",
                "-" if goal is None else ("ok" if ratio >= goal else "MISSED"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print(("  " + "  ".join(cells)).rstrip())


if __name__ == "__main__":
    main()
