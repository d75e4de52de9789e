"""The nats sink and source against bare nats-py loops, on one real nats-server (loopback).

Each figure is read against a baseline measured in the same run, on the same server
(tests/transports/nats_server.py: JetStream with `sync_interval: always`, a file stream):

- publish baseline: one connection, `js.publish_async` of each packet's `encode_packet` JSON
  with `Nats-Msg-Id`, then wait for every ack.
- sink: `synthetic (count N) -> nats` with a durable inbox, through `Runtime` (the durable
  store's commits, encoding and the runtime's accounting on top of the same publishes).
  Goal: >= 0.7x the publish baseline.
- pull baseline: a pull consumer, `fetch(64)` in a loop, one `ack()` per message.
- source: `nats (batch 64) -> null` through `Runtime`, acks once the runtime reports the
  packets safe. Goal: >= 0.8x the pull baseline.

- workers: `nats (batch 64) -> null` in 1, then 2 `schnitzel run` processes sharing one
  consumer, on a stream filled beforehand; the rate is read from the consumer (messages
  acknowledged from 10% to 100% of them, so process start-up is not counted). Goal: two
  workers >= 1.7x one (on a machine with a core for each worker and one for the server).

Every run checks the stream or the consumer: N messages stored, none left unacknowledged.
Best of several interleaved rounds (the machine is shared and noisy).

Run: .venv/bin/python bench/bench_transports.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.transports
from schnitzel.contract.codec import encode_packet
from schnitzel.contract.packet import StreamPacket
from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph
from tests.transports.nats_server import NatsServer

PAYLOAD = {"v": 1, "site": "lab", "reading": 21.5}
STREAM = "BENCH"


async def fresh_stream(url: str) -> None:
    import nats
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    nc = await nats.connect(url)
    js = nc.jetstream()
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(STREAM)
    await js.add_stream(StreamConfig(name=STREAM, subjects=["bench.>"]))
    await nc.close()


async def stored(url: str) -> int:
    import nats

    nc = await nats.connect(url)
    info = await nc.jetstream().stream_info(STREAM)
    await nc.close()
    return int(info.state.messages)


async def bare_publish(url: str, count: int) -> None:
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    futures = []
    for seq in range(count):
        packet = StreamPacket.new("sensor", "base", seq, dict(PAYLOAD))
        headers = {"Nats-Msg-Id": packet.idempotency_key}
        body = encode_packet(packet).encode()
        futures.append(await js.publish_async("bench.base", body, headers=headers))
    await asyncio.gather(*futures)
    await nc.close()


def publish_baseline(server: NatsServer, count: int) -> float:
    asyncio.run(fresh_stream(server.url))
    start = time.perf_counter()
    asyncio.run(bare_publish(server.url, count))
    seconds = time.perf_counter() - start
    assert asyncio.run(stored(server.url)) == count
    return count / seconds


def sink_rate(server: NatsServer, directory: Path, count: int) -> float:
    asyncio.run(fresh_stream(server.url))
    path = directory / "sink.yaml"
    path.write_text(
        "version: 2\nnodes:\n"
        f"  - {{id: src, kind: source, plugin: synthetic, config: {{count: {count}, "
        "payload: {v: 1, site: lab, reading: 21.5}}}\n"
        "  - id: out\n    kind: sink\n    plugin: nats\n"
        f"    config: {{url: '{server.url}', subject: bench.sink}}\n"
        "    inbox: {durable: {path: state/sink.db, sync: normal}}\n"
        "edges: [{from: src, to: out}]\n"
    )
    runtime = Runtime(load_graph(path), state_dir=directory / "state")
    start = time.perf_counter()
    report = asyncio.run(runtime.run())
    seconds = time.perf_counter() - start
    assert report["totals"]["delivered"] == count, report["totals"]
    assert asyncio.run(stored(server.url)) == count
    return count / seconds


async def ack_pending(url: str, consumer: str) -> tuple[int, int]:
    import nats

    nc = await nats.connect(url)
    info = await nc.jetstream().consumer_info(STREAM, consumer)
    await nc.close()
    return int(info.num_pending or 0), int(info.num_ack_pending or 0)


async def bare_pull(url: str, count: int) -> None:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig

    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_consumer(
        STREAM, ConsumerConfig(durable_name="base", ack_policy=AckPolicy.EXPLICIT)
    )
    sub = await js.pull_subscribe_bind(durable="base", stream=STREAM)
    got = 0
    while got < count:
        for msg in await sub.fetch(64, timeout=5):
            await msg.ack()
            got += 1
    await nc.flush()
    await nc.close()


def pull_baseline(server: NatsServer, count: int) -> float:
    asyncio.run(fresh_stream(server.url))
    asyncio.run(bare_publish(server.url, count))
    start = time.perf_counter()
    asyncio.run(bare_pull(server.url, count))
    seconds = time.perf_counter() - start
    assert asyncio.run(ack_pending(server.url, "base")) == (0, 0)
    return count / seconds


def source_rate(server: NatsServer, directory: Path, count: int) -> float:
    asyncio.run(fresh_stream(server.url))
    asyncio.run(bare_publish(server.url, count))
    path = directory / "source.yaml"
    path.write_text(
        "version: 2\nnodes:\n"
        "  - id: src\n    kind: source\n    plugin: nats\n"
        f"    config: {{url: '{server.url}', stream: {STREAM}, consumer: workers, batch: 64}}\n"
        '  - {id: out, kind: sink, plugin: "null"}\n'
        "edges: [{from: src, to: out}]\n"
    )
    runtime = Runtime(load_graph(path), state_dir=directory / "state")
    start = time.perf_counter()
    report = asyncio.run(runtime.run(max_packets=count))
    seconds = time.perf_counter() - start
    assert report["totals"]["delivered"] == count, report["totals"]
    assert asyncio.run(ack_pending(server.url, "workers")) == (0, 0)
    return count / seconds


def workers_rate(server: NatsServer, directory: Path, count: int, workers: int) -> float:
    """Messages acknowledged per second by `workers` processes sharing one consumer."""
    asyncio.run(fresh_stream(server.url))
    asyncio.run(bare_publish(server.url, count))
    path = directory / "worker.yaml"
    path.write_text(
        "version: 2\nnodes:\n"
        "  - id: src\n    kind: source\n    plugin: nats\n"
        f"    config: {{url: '{server.url}', stream: {STREAM}, consumer: shared, batch: 64}}\n"
        '  - {id: out, kind: sink, plugin: "null"}\n'
        "edges: [{from: src, to: out}]\n"
    )
    schnitzel = Path(sys.executable).parent / "schnitzel"
    processes = [
        subprocess.Popen(
            [
                str(schnitzel),
                "run",
                str(path),
                "--no-control-socket",
                "--state-dir",
                str(directory / f"w{n}"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ),
        )
        for n in range(workers)
    ]
    first = last = 0.0
    started = time.monotonic()
    try:
        while True:
            with contextlib.suppress(Exception):  # the consumer is made by the first worker
                pending, unacked = asyncio.run(ack_pending(server.url, "shared"))
                acked = count - pending - unacked
                now = time.perf_counter()
                if not first and acked >= count // 10:
                    first, from_acked = now, acked
                if acked == count:
                    last = now
                    break
            assert time.monotonic() - started < 300, "the workers never finished"
            time.sleep(0.02)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(60)
    return (count - from_acked) / (last - first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer packets and rounds")
    args = parser.parse_args()
    count, rounds = (2_000, 2) if args.quick else (20_000, 3)

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        with NatsServer(directory / "nats") as server:
            runs: dict[str, Callable[[], float]] = {
                "publish baseline": lambda: publish_baseline(server, count),
                "sink (durable)": lambda: sink_rate(server, directory, count),
                "pull baseline": lambda: pull_baseline(server, count),
                "source -> null": lambda: source_rate(server, directory, count),
                "1 worker process": lambda: workers_rate(server, directory, 2 * count, 1),
                "2 worker processes": lambda: workers_rate(server, directory, 2 * count, 2),
            }
            rates: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(rounds):  # interleaved: machine noise hits every variant alike
                for name, run in runs.items():
                    rates[name].append(run())

    best = {name: max(values) for name, values in rates.items()}
    against = {
        "sink (durable)": ("publish baseline", 0.7),
        "source -> null": ("pull baseline", 0.8),
        "2 worker processes": ("1 worker process", 1.7),
    }
    print(f"nats sink and source, {count} packets (best of {rounds} interleaved rounds)")
    rows = [("variant", "packets/s", "ratio", "goal", "verdict")]
    for name, rate in best.items():
        if name in against:
            base, goal = against[name]
            ratio = rate / best[base]
            verdict = "ok" if ratio >= goal else "MISSED"
            rows.append((name, f"{rate:,.0f}", f"{ratio:.2f}x", f">= {goal}x", verdict))
        else:
            rows.append((name, f"{rate:,.0f}", "-", "-", "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print(("  " + "  ".join(cells)).rstrip())


if __name__ == "__main__":
    main()
