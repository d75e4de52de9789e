"""`http_ingest` requests/s and p99 latency with a durable inbox behind it, and with an
in-memory one, against the same server library (aiohttp) answering 200 without schnitzel.

The servers run on their own thread and event loop in this process; the client (aiohttp's,
1, 32 or 256 concurrent keep-alive connections, one JSON record per POST) runs on the main
thread, so every variant pays for the same client (httpx was the bottleneck here: its
connection pool costs O(connections) per request). One connection is a device posting one
record at a time, each after its answer: what it sees is the latency of one answer.

- baseline: an aiohttp app that reads and parses the JSON body and answers 200.
- http_ingest: `http_ingest -> null` with the `null` sink's inbox durable (SQLite, WAL), run by
  `Runtime`; each POST is answered 202 once its record is committed: the runtime checkpoints
  `http_ingest` (`checkpoints_promptly`) as soon as the put into the durable inbox returns, and
  one commit serves every request waiting at that moment.
- http_ingest, in memory: the same graph with `null`'s inbox in memory; each POST is answered
  202 once `null` took its record, when the node's batch settles (the tracker looks then, not
  at its next 0.1 s poll, which bounded one connection at 10 requests/s).

Best of `--rounds` interleaved rounds (the machine is shared and noisy).

Run: .venv/bin/python bench/bench_sensors_ingest.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph

RECORD = {"device": "press-7", "temp_c": 21.5, "vibration": [0.1, 0.2, 0.3]}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Background:
    """An event loop on its own thread running one coroutine until `stop()`."""

    def __init__(self, serve: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._serve = serve
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve(self._stop))

    def __enter__(self) -> Background:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


def baseline_server(port: int) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    async def handle(request: web.Request) -> web.Response:
        await request.json()
        return web.json_response({"ok": True})

    async def serve(stop: asyncio.Event) -> None:
        app = web.Application()
        app.router.add_post("/ingest", handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await stop.wait()
        await runner.cleanup()

    return serve


def ingest_runtime(
    port: int, directory: Path, durable: bool = True
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    graph = directory / f"ingest_{port}.yaml"
    store = f", durable: {{path: out_{port}.db}}" if durable else ""
    graph.write_text(
        "version: 2\nnodes:\n"
        f"  - {{id: src, kind: source, plugin: http_ingest, config: {{port: {port}}}}}\n"
        "  - id: out\n    kind: sink\n    plugin: 'null'\n"
        f"    inbox: {{max: 1024{store}}}\n"
        "edges: [{from: src, to: out}]\n"
    )

    async def serve(stop: asyncio.Event) -> None:
        runtime = Runtime(load_graph(graph), state_dir=directory / f"state_{port}")
        task = asyncio.create_task(runtime.run())
        await stop.wait()
        runtime.request_stop("signal")
        await task

    return serve


async def until_listening(port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            await asyncio.sleep(0.01)


async def hammer(port: int, clients: int, requests: int) -> tuple[float, float]:
    """(requests/s, p99 latency in ms) of `requests` POSTs over `clients` connections."""
    await until_listening(port)
    url = f"http://127.0.0.1:{port}/ingest"
    latencies: list[float] = []
    each = requests // clients
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post() -> None:
            started = time.perf_counter()
            async with session.post(url, json=RECORD) as answer:
                await answer.read()
                assert answer.status in (200, 202), answer.status
            latencies.append(time.perf_counter() - started)

        async def one_client() -> None:
            for _ in range(each):
                await post()

        await post()  # connection and server warm
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return len(latencies) / elapsed, latencies[int(len(latencies) * 0.99) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and rounds")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    requests = 2000 if args.quick else 8000
    rounds = 1 if args.quick else args.rounds
    print(
        f"{requests} POSTs of one JSON record each ({requests // 4} over one connection), "
        f"best of {rounds} rounds"
    )
    print(f"{'clients':>7}  {'variant':<24} {'req/s':>8} {'p99 ms':>8}  {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for clients in (1, 32, 256):
            best: dict[str, tuple[float, float]] = {}
            posts = requests // 4 if clients == 1 else requests  # one at a time: fewer
            for _round in range(rounds):
                for name, server in (
                    ("aiohttp 200 (baseline)", baseline_server),
                    ("http_ingest + durable", lambda p: ingest_runtime(p, Path(tmp))),
                    ("http_ingest, in memory", lambda p: ingest_runtime(p, Path(tmp), False)),
                ):
                    port = free_port()
                    with Background(server(port)):
                        rate, p99 = asyncio.run(hammer(port, clients, posts))
                    if name not in best or rate > best[name][0]:
                        best[name] = (rate, p99)
            base = best["aiohttp 200 (baseline)"][0]
            for name, (rate, p99) in best.items():
                print(f"{clients:>7}  {name:<24} {rate:>8.0f} {p99:>8.1f}  {rate / base:>5.2f}x")


if __name__ == "__main__":
    main()
