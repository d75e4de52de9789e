"""What `--metrics-addr` costs on a 50-node graph: time per scrape, and throughput while scraped.

The graph: `synthetic (count N) -> 48 passthrough nodes in a chain -> null`, run through
`Runtime` with a `MetricsServer` (what `--metrics-addr` starts). Figures:

- time per scrape of `/metrics` while the graph runs (median and worst of the scrapes made
  during the scraped runs), by an HTTP client on its own thread, as Prometheus would;
- packets/s with no metrics server, and with one scraped every second; the cost is the
  difference. Goal: below 1%.

Best of several interleaved rounds (the machine is shared and noisy).

Run: .venv/bin/python bench/bench_metrics.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from schnitzel import __version__
from schnitzel.observe.prometheus import MetricsServer
from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph

CHAIN = 48
SCRAPE_EVERY_S = 1.0


def graph_file(directory: Path, count: int) -> Path:
    lines = ["version: 2", "nodes:"]
    lines.append(f"  - {{id: src, kind: source, plugin: synthetic, config: {{count: {count}}}}}")
    edges, previous = [], "src"
    for n in range(CHAIN):
        lines.append(f"  - {{id: p{n}, kind: transform, plugin: passthrough}}")
        edges.append(f"  - {{from: {previous}, to: p{n}}}")
        previous = f"p{n}"
    lines.append('  - {id: out, kind: sink, plugin: "null"}')
    edges.append(f"  - {{from: {previous}, to: out}}")
    path = directory / "fifty.yaml"
    path.write_text("\n".join([*lines, "edges:", *edges]) + "\n")
    return path


def run_once(path: Path, directory: Path, count: int, scraped: bool) -> tuple[float, list[float]]:
    """packets/s of one run, and the scrape times (s) made during it."""
    scrapes: list[float] = []

    async def scenario() -> float:
        runtime = Runtime(load_graph(path), state_dir=directory / "state")
        metrics = None
        done = threading.Event()
        scraper = None
        if scraped:
            metrics = MetricsServer("127.0.0.1:0", runtime.snapshot, __version__)
            metrics.start()
            url = f"http://127.0.0.1:{metrics.port}/metrics"

            def scrape() -> None:
                with httpx.Client() as client:
                    while not done.wait(SCRAPE_EVERY_S):
                        start = time.perf_counter()
                        client.get(url, timeout=30).raise_for_status()
                        scrapes.append(time.perf_counter() - start)

            scraper = threading.Thread(target=scrape, daemon=True)
            scraper.start()
        start = time.perf_counter()
        try:
            report = await runtime.run()
            seconds = time.perf_counter() - start
        finally:
            done.set()
            if metrics is not None:
                await asyncio.get_running_loop().run_in_executor(None, _stop, scraper, metrics)
        assert report["totals"]["delivered"] == count, report["totals"]
        return count / seconds

    return asyncio.run(scenario()), scrapes


def _stop(scraper: threading.Thread | None, metrics: MetricsServer) -> None:
    if scraper is not None:
        scraper.join()
    metrics.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer packets and rounds")
    args = parser.parse_args()
    count, rounds = (300_000, 2) if args.quick else (1_000_000, 3)
    plain: list[float] = []
    scraped: list[float] = []
    times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        path = graph_file(directory, count)
        for _ in range(rounds):  # interleaved: machine noise hits both alike
            plain.append(run_once(path, directory, count, scraped=False)[0])
            rate, scrapes = run_once(path, directory, count, scraped=True)
            scraped.append(rate)
            times += scrapes
    best_plain, best_scraped = max(plain), max(scraped)
    cost = 1 - best_scraped / best_plain
    print(f"/metrics on a {CHAIN + 2}-node graph, {count} packets (best of {rounds} rounds)")
    print(f"  no metrics server          {best_plain:,.0f} packets/s")
    print(f"  scraped every {SCRAPE_EVERY_S:g} s         {best_scraped:,.0f} packets/s")
    verdict = "ok" if cost < 0.01 else "MISSED"
    print(f"  cost                       {cost:.1%} (goal < 1%: {verdict})")
    if times:
        median, worst = statistics.median(times) * 1000, max(times) * 1000
        print(f"  time per scrape            median {median:.1f} ms, worst {worst:.1f} ms "
              f"({len(times)} scrapes)")  # fmt: skip


if __name__ == "__main__":
    main()
