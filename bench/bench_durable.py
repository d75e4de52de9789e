"""Durable inboxes under load: throughput, group commit, cost of durability, replay, memory.

Each figure is read against a baseline measured in the same run (the machine is shared and
noisy, and what a commit costs depends on the disk, so no absolute rate is a verdict). Every
measurement is repeated (3 rounds, interleaved so noise hits every variant alike); rates are
the best of the rounds (noise only ever slows a run down), memory the worst (largest).

1. Headline: packets/s of `synthetic (count N) -> null` where `null` has a durable inbox
   (sync full), run through `Runtime`, against the straightforward design: a queue table in
   SQLite (WAL, synchronous=FULL) where a producer commits ONE transaction per packet (INSERT
   of `encode_packet(...)`) and a consumer takes ONE packet per transaction (SELECT oldest +
   DELETE, COMMIT, then `decode_packet`). The baseline is two threads with their own
   `sqlite3` connections: that is what one writes first with the standard library, and it is
   the faster straightforward design (no event-loop hop per statement), so the ratio is not
   flattered by a slow baseline. The same design over `aiosqlite` (a producer task and a
   consumer task, each with its own connection) is measured too and shown beside it.
   N is sized from a warm-up run so a durable run lasts >= 2 s; the baselines, one fsync per
   commit, get fewer packets (about a second's worth). Goal: >= 10x the baseline.
2. The group commit driven from asyncio, (a) through `aiosqlite` and (b) through a
   `ThreadPoolExecutor(1)` calling a plain `sqlite3` connection (what `DurableInbox` does):
   batches of 256 encoded packets, executemany INSERT + COMMIT, then executemany DELETE of
   the previous batch + COMMIT, WAL, synchronous=FULL.
3. Cost of durability: `synthetic (count N) -> passthrough -> null` with an in-memory inbox on
   `null`, a durable one (sync full) and a durable one with sync normal.
4. Replay: a backlog of 100k packets is left in a store by a graph whose sink never answers
   (`StalledSink` below; the run is stopped once every packet is committed), then a fresh
   process runs `synthetic (count 0) -> null` on that store and drains it. Packets/s against
   the headline's live rate. The time includes opening the store (its check and count).
5. Peak RSS of that replay process: VmHWM before and after the run (not ru_maxrss: a child
   started with vfork + exec inherits its parent's peak in ru_maxrss). Baseline: another fresh
   process that loads the same backlog into memory at once (SELECT all, decode every row).
6. Drain into HTTP: a backlog of N packets is left in a store as in item 4, then
   `synthetic (count 0) -> http` (durable inbox on that store) posts it to a real HTTP server
   on 127.0.0.1 (`LoopbackBackend` of tests/http_backend.py, a threaded stdlib server in the
   bench process) until the store is empty; `batch_max: 1` and `batch_max: 64`. Baseline: the
   same http sink with an in-memory inbox fed live by `synthetic (count N)`, same batch_max,
   into the same server; the ratio is what draining from disk costs against live delivery.
   The time includes opening the store. Every run counts the requests the server received and
   checks that each packet's idempotency key arrived exactly once and that each request's
   `Idempotency-Key` header is the one the sink must send (a warning line if not).

The files go to a temporary directory under `--dir` (default: the repository's parent
directory, not /tmp, which may be tmpfs where an fsync costs nothing). `df` of it is printed.

Run: .venv/bin/python bench/bench_durable.py [--quick] [--dir PATH] [--profile]
     .venv/bin/python bench/bench_durable.py --cost-only [--window 4096] [--packets 240000]
(`--quick`: fewer packets, durable runs of ~0.6 s; `--profile`: also a cProfile top 15 of
one durable run of item 1; the store's own thread does not show in it, only its waits.
`--cost-only`: item 3 alone, 5 rounds; `--window`: every variant's sink inbox with that
`max`, the in-memory one too; `--packets`: longer runs, where a run's start and stop (the
store's process starting, for one) weigh less.)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import io
import itertools
import json
import os
import pstats
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import aiosqlite
from _timing import proc_status_kb

from schnitzel.contract.codec import decode_packet, encode_packet
from schnitzel.contract.packet import StreamPacket
from schnitzel.durable.rows import live_packets
from schnitzel.registry import Sink
from schnitzel.runtime import Runtime
from schnitzel.runtime.runtime import StopReason
from schnitzel.validate import ValidatedGraph, validate_text

if TYPE_CHECKING:
    from tests.http_backend import LoopbackBackend, Received

REPO = Path(__file__).resolve().parent.parent
MODULE = Path(__file__).stem
"""The name graphs import `StalledSink` by: the bench directory is on sys.path when this file
runs as a script, and `main` makes the name resolve to this very module (no second import)."""
MB = 1024
"""kB per MB (VmHWM is in kB)."""
GROUP = 256
"""Packets per batch in item 2: the most a node takes or a source pulls at once."""
PAYLOAD = {"v": 1}

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS packets "
    "(seq INTEGER PRIMARY KEY, enqueued REAL NOT NULL, body BLOB NOT NULL)"
)
"""The store's own table, for every hand-written variant."""


@dataclass(frozen=True)
class Sizes:
    """How much each item does (`--quick` shrinks everything)."""

    rounds: int
    live_s: float
    """Target length of one durable run of item 1 (N is sized from a warm-up run)."""
    baseline_s: float
    """Target length of one run of a one-transaction-per-packet baseline."""
    group_batches: int
    cost_packets: int
    backlog: int
    http: tuple[tuple[int, int], ...]
    """Item 6: (batch_max, packets) of each variant."""


FULL = Sizes(3, 2.5, 1.0, 600, 120_000, 100_000, ((1, 1_000), (64, 40_000)))
QUICK = Sizes(3, 0.6, 0.3, 150, 30_000, 30_000, ((1, 200), (64, 8_000)))


# -- a sink whose backend never answers (item 4) -----------------------------------------------


class StalledSink(Sink):
    """Takes its first batch and waits on an event nobody sets: what arrives stays queued."""

    name: ClassVar[str] = "stalled"

    async def deliver(self, packet: StreamPacket) -> None:
        await asyncio.Event().wait()


# -- graphs ------------------------------------------------------------------------------------


def durable_inbox(
    path: Path, sync: str = "full", process: bool = False, window: int | None = None
) -> str:
    where = ", process: true" if process else ""
    size = f"max: {window}, " if window else ""
    return f"{{{size}durable: {{path: {json.dumps(str(path))}, sync: {sync}{where}}}}}"


def graph_text(
    count: int, sink: str = '"null"', inbox: str = "", stages: int = 0, config: str = ""
) -> str:
    """`synthetic (count) -> passthrough x stages -> sink`, the sink's config and inbox as
    given (YAML flow mappings)."""
    ids = ["src", *(f"p{i}" for i in range(1, stages + 1)), "out"]
    lines = ["version: 2", f"runtime: {{allow_modules: [{MODULE}]}}", "nodes:"]
    lines.append(
        f"  - {{id: src, kind: source, plugin: synthetic, "
        f"config: {{count: {count}, payload: {json.dumps(PAYLOAD)}}}}}"
    )
    lines += [f"  - {{id: {i}, kind: transform, plugin: passthrough}}" for i in ids[1:-1]]
    lines.append(
        f"  - {{id: out, kind: sink, plugin: {sink}"
        + (f", config: {config}" if config else "")
        + (f", inbox: {inbox}" if inbox else "")
        + "}"
    )
    lines.append("edges:")
    lines += [f"  - {{from: {a}, to: {b}}}" for a, b in itertools.pairwise(ids)]
    return "\n".join(lines) + "\n"


class Workspace:
    """The temporary directory every database file of the run goes to."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"
        self._n = 0

    def fresh(self, stem: str) -> Path:
        """A database path not used before in this run."""
        self._n += 1
        return self.root / f"{stem}-{self._n}.db"

    def graph(self, text: str) -> ValidatedGraph:
        path = self.root / "graph.yaml"
        path.write_text(text)
        result = validate_text(text, source=str(path), path=path)
        assert result.graph is not None, [p.render() for p in result.report.problems]
        return result.graph

    def runtime(self, graph: ValidatedGraph, drain_timeout_s: float = 30.0) -> Runtime:
        return Runtime(graph, state_dir=self.state, drain_timeout_s=drain_timeout_s)


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".ledger", ".lock"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def check(report: dict[str, Any], count: int) -> None:
    totals = report["totals"]
    assert totals["emitted"] == count and totals["delivered"] == count, totals
    assert totals["dropped"] == 0 and totals["errors"] == 0, totals
    assert report["status"] == "ok", (report["status"], report["stop_detail"])


def run_graph(ws: Workspace, text: str, count: int) -> float:
    """Seconds of one run of `text` through `Runtime`, checked to deliver `count`."""
    runtime = ws.runtime(ws.graph(text))
    start = time.perf_counter()
    report = asyncio.run(runtime.run())
    seconds = time.perf_counter() - start
    check(report, count)
    durable = report["nodes"]["out"].get("durable")
    if durable is not None:
        assert durable["settled"] == count and durable["backlog"] == 0, durable
    return seconds


def durable_run(
    ws: Workspace,
    count: int,
    stages: int = 0,
    sync: str = "full",
    process: bool = False,
    window: int | None = None,
) -> float:
    db = ws.fresh(f"durable-{sync}")
    try:
        inbox = durable_inbox(db, sync, process, window)
        text = graph_text(count, inbox=inbox, stages=stages)
        return run_graph(ws, text, count)
    finally:
        remove_db(db)


def new_packet(seq: int) -> StreamPacket:
    """A packet as the `synthetic` plugin makes it."""
    return StreamPacket.new("sensor", "src", seq, dict(PAYLOAD), None, None, time.time())


# -- 1: the straightforward design -------------------------------------------------------------


def open_queue(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")  # per connection: both sides set it
    db.execute(SCHEMA)
    return db


def threads_queue(path: Path, count: int) -> float:
    """Two threads, each with its own connection: the producer commits one INSERT per packet
    (autocommit), the consumer takes the oldest packet in one transaction per packet. The
    consumer sleeps on a condition while the queue is empty (no polling). Returns seconds."""
    producer_db, consumer_db = open_queue(path), open_queue(path)
    made = 0
    ready = threading.Condition()

    def producer() -> None:
        nonlocal made
        for seq in range(count):
            body = encode_packet(new_packet(seq)).encode()
            producer_db.execute(
                "INSERT INTO packets (enqueued, body) VALUES (?, ?)", (time.time(), body)
            )
            with ready:
                made += 1
                ready.notify()

    def consumer() -> None:
        for taken in range(count):
            with ready:
                while made <= taken:
                    ready.wait()
            consumer_db.execute("BEGIN IMMEDIATE")
            seq, body = consumer_db.execute(
                "SELECT seq, body FROM packets ORDER BY seq LIMIT 1"
            ).fetchone()
            consumer_db.execute("DELETE FROM packets WHERE seq = ?", (seq,))
            consumer_db.execute("COMMIT")
            decode_packet(body)

    workers = [threading.Thread(target=producer), threading.Thread(target=consumer)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - start
    left = consumer_db.execute("SELECT count(*) FROM packets").fetchone()[0]
    producer_db.close()
    consumer_db.close()
    assert left == 0, left
    return seconds


async def aiosqlite_queue(path: Path, count: int) -> float:
    """The same design as `threads_queue` on one event loop: a producer task and a consumer
    task, each with its own aiosqlite connection (own thread). Returns seconds."""
    async with (
        aiosqlite.connect(path, isolation_level=None, timeout=30.0) as producer_db,
        aiosqlite.connect(path, isolation_level=None, timeout=30.0) as consumer_db,
    ):
        for db in (producer_db, consumer_db):
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute(SCHEMA)
        made = 0
        ready = asyncio.Event()

        async def producer() -> None:
            nonlocal made
            for seq in range(count):
                body = encode_packet(new_packet(seq)).encode()
                await producer_db.execute(
                    "INSERT INTO packets (enqueued, body) VALUES (?, ?)", (time.time(), body)
                )
                made += 1
                ready.set()

        async def consumer() -> None:
            for taken in range(count):
                while made <= taken:
                    ready.clear()
                    await ready.wait()
                await consumer_db.execute("BEGIN IMMEDIATE")
                async with consumer_db.execute(
                    "SELECT seq, body FROM packets ORDER BY seq LIMIT 1"
                ) as cursor:
                    row = await cursor.fetchone()
                assert row is not None
                await consumer_db.execute("DELETE FROM packets WHERE seq = ?", (row[0],))
                await consumer_db.execute("COMMIT")
                decode_packet(row[1])

        start = time.perf_counter()
        await asyncio.gather(producer(), consumer())
        return time.perf_counter() - start


def sized(rate: float, seconds: float, step: int, least: int) -> int:
    """A packet count that lasts about `seconds` at `rate`, rounded up to `step`."""
    return max(least, -(-int(rate * seconds) // step) * step)


@dataclass
class Headline:
    count: int
    baseline_count: int
    aio_count: int
    durable: list[float]
    durable_s: list[float]
    threads: list[float]
    aio: list[float]

    @property
    def best(self) -> float:
        return max(self.durable)

    @property
    def ratio(self) -> float:
        return self.best / max(self.threads)


def headline(ws: Workspace, sizes: Sizes) -> Headline:
    warm = 10_000 if sizes is QUICK else 20_000
    n = sized(warm / durable_run(ws, warm), sizes.live_s, 10_000, warm)

    def per_packet(fn: Callable[[Path, int], float], count: int) -> float:
        db = ws.fresh("queue")
        try:
            return count / fn(db, count)
        finally:
            remove_db(db)

    def aio(path: Path, count: int) -> float:
        return asyncio.run(aiosqlite_queue(path, count))

    base_n = sized(per_packet(threads_queue, 100), sizes.baseline_s, 100, 200)
    aio_n = sized(per_packet(aio, 100), sizes.baseline_s, 100, 200)
    result = Headline(n, base_n, aio_n, [], [], [], [])
    for _ in range(sizes.rounds):
        seconds = durable_run(ws, n)
        result.durable_s.append(seconds)
        result.durable.append(n / seconds)
        result.threads.append(per_packet(threads_queue, base_n))
        result.aio.append(per_packet(aio, aio_n))
    print(f"1. headline: synthetic -> null (durable inbox, sync full), best of {sizes.rounds}")
    print(
        f"  schnitzel durable, {n:,} packets       {result.best:>10,.0f} packets/s  "
        f"(rounds: {rounds(result.durable)}; {', '.join(f'{s:.2f}' for s in result.durable_s)} s)"
    )
    print(
        f"  1 txn/packet, 2 threads, {base_n:,} packets {max(result.threads):>8,.0f} packets/s  "
        f"(rounds: {rounds(result.threads)})"
    )
    print(
        f"  1 txn/packet, aiosqlite, {aio_n:,} packets {max(result.aio):>8,.0f} packets/s  "
        f"(rounds: {rounds(result.aio)})"
    )
    print(
        f"  -> durable inbox is {result.ratio:.1f}x the thread baseline (goal >= 10x), "
        f"{result.best / max(result.aio):.1f}x the aiosqlite one"
    )
    if min(result.durable_s) < 2.0 and sizes is FULL:
        print("  (warning: a durable run lasted under 2 s; the machine sped up after the warm-up)")
    return result


def rounds(values: list[float]) -> str:
    return ", ".join(f"{v:,.0f}" for v in values)


# -- 2: the group commit through aiosqlite or one writer thread --------------------------------

INSERT = "INSERT INTO packets VALUES (?, ?, ?)"
DELETE = "DELETE FROM packets WHERE seq = ?"


def encoded_bodies() -> list[bytes]:
    return [encode_packet(new_packet(seq)).encode() for seq in range(GROUP)]


def batch_rows(index: int, bodies: list[bytes]) -> list[tuple[int, float, bytes]]:
    first, now = index * GROUP + 1, time.time()
    return [(first + i, now, body) for i, body in enumerate(bodies)]


async def group_aiosqlite(path: Path, batches: int, bodies: list[bytes]) -> float:
    """Each transaction as aiosqlite is used: executemany (implicit BEGIN) + commit."""
    async with aiosqlite.connect(path) as db:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=FULL")
        await db.execute(SCHEMA)
        await db.commit()
        previous: list[tuple[int]] = []
        start = time.perf_counter()
        for index in range(batches):
            rows = batch_rows(index, bodies)
            await db.executemany(INSERT, rows)
            await db.commit()
            if previous:
                await db.executemany(DELETE, previous)
                await db.commit()
            previous = [(row[0],) for row in rows]
        return time.perf_counter() - start


async def group_thread(path: Path, batches: int, bodies: list[bytes]) -> float:
    """Each transaction as one call on a single-thread executor, as `DurableStore.commit`."""
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(1, thread_name_prefix="bench-store")
    db = await loop.run_in_executor(pool, open_queue, path)

    def insert(rows: list[tuple[int, float, bytes]]) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(INSERT, rows)
        db.execute("COMMIT")

    def delete(seqs: list[tuple[int]]) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(DELETE, seqs)
        db.execute("COMMIT")

    try:
        previous: list[tuple[int]] = []
        start = time.perf_counter()
        for index in range(batches):
            rows = batch_rows(index, bodies)
            await loop.run_in_executor(pool, insert, rows)
            if previous:
                await loop.run_in_executor(pool, delete, previous)
            previous = [(row[0],) for row in rows]
        return time.perf_counter() - start
    finally:
        await loop.run_in_executor(pool, db.close)
        pool.shutdown()


@dataclass
class GroupCommit:
    packets: int
    aio: list[float]
    thread: list[float]

    @property
    def ratio(self) -> float:
        return max(self.thread) / max(self.aio)


def group_commit(ws: Workspace, sizes: Sizes) -> GroupCommit:
    bodies = encoded_bodies()
    batches = sizes.group_batches
    result = GroupCommit(batches * GROUP, [], [])
    for _ in range(sizes.rounds):
        for fn, rates in ((group_aiosqlite, result.aio), (group_thread, result.thread)):
            db = ws.fresh("group")
            try:
                rates.append(result.packets / asyncio.run(fn(db, batches, bodies)))
            finally:
                remove_db(db)
    print(
        f"2. group commit from asyncio: {batches} batches of {GROUP} (insert + commit, delete "
        f"previous + commit), best of {sizes.rounds}"
    )
    print(
        f"  aiosqlite                         {max(result.aio):>10,.0f} packets/s  "
        f"(rounds: {rounds(result.aio)})"
    )
    print(
        f"  ThreadPoolExecutor(1) + sqlite3  {max(result.thread):>11,.0f} packets/s  "
        f"(rounds: {rounds(result.thread)})"
    )
    faster = "the writer thread" if result.ratio >= 1 else "aiosqlite"
    print(f"  -> writer thread / aiosqlite = {result.ratio:.2f}x ({faster} is faster)")
    return result


# -- 3: cost of durability ---------------------------------------------------------------------


@dataclass
class Cost:
    packets: int
    memory: list[float]
    full: list[float]
    normal: list[float]
    process: list[float]
    """sync full, the store in a process of its own (`process: true`)."""


def cost(ws: Workspace, sizes: Sizes, window: int | None = None) -> Cost:
    """Item 3; `window`: `max` of the sink's inbox in every variant (default: the default)."""
    n = sizes.cost_packets
    result = Cost(n, [], [], [], [])
    memory_inbox = f"{{max: {window}}}" if window else ""
    for _ in range(sizes.rounds):
        result.memory.append(n / run_graph(ws, graph_text(n, inbox=memory_inbox, stages=1), n))
        result.full.append(n / durable_run(ws, n, stages=1, sync="full", window=window))
        result.normal.append(n / durable_run(ws, n, stages=1, sync="normal", window=window))
        result.process.append(n / durable_run(ws, n, stages=1, process=True, window=window))
    memory, full, normal = max(result.memory), max(result.full), max(result.normal)
    process = max(result.process)
    print(
        f"3. cost of durability: synthetic -> passthrough -> null, {n:,} packets, "
        f"best of {sizes.rounds}" + (f", window (max) {window:,}" if window else "")
    )
    print(
        f"  in-memory inbox          {memory:>11,.0f} packets/s  (rounds: {rounds(result.memory)})"
    )
    print(
        f"  durable, sync full       {full:>11,.0f} packets/s  (rounds: {rounds(result.full)})"
        f"  -> {full / memory:.3f}x in-memory"
    )
    print(
        f"  durable, sync normal     {normal:>11,.0f} packets/s  (rounds: {rounds(result.normal)})"
        f"  -> {normal / memory:.3f}x in-memory, {normal / full:.2f}x sync full"
    )
    print(
        f"  durable, full, process   {process:>11,.0f} packets/s  "
        f"(rounds: {rounds(result.process)})"
        f"  -> {process / memory:.3f}x in-memory, {process / full:.2f}x the store on a thread"
    )
    return result


# -- 4 and 5: replay and its memory ------------------------------------------------------------


def fill(ws: Workspace, db: Path, count: int) -> float:
    """Leave `count` packets in the store `db`: the sink never answers; the run is stopped
    once every packet is committed (and gives up waiting for the sink at once)."""
    text = graph_text(count, sink=f'"{MODULE}:StalledSink"', inbox=durable_inbox(db))
    runtime = ws.runtime(ws.graph(text), drain_timeout_s=0.1)
    inbox: Any = runtime.nodes["out"].inbox

    async def main() -> dict[str, Any]:
        async def stop_when_written() -> None:
            while inbox.stats.accepted < count:
                await asyncio.sleep(0.01)
            runtime.request_stop(StopReason.SIGNAL, "backlog written")

        watcher = asyncio.create_task(stop_when_written())
        try:
            return await runtime.run()
        finally:
            watcher.cancel()

    start = time.perf_counter()
    report = asyncio.run(main())
    seconds = time.perf_counter() - start
    out = report["nodes"]["out"]
    assert out["out"] == 0 and out["dropped"] == 0, out
    assert out["durable"]["backlog"] == count, out["durable"]
    return seconds


def child_replay(db: Path, root: Path) -> None:
    """In a fresh process: drain the backlog in `db` through `synthetic (count 0) -> null`."""
    ws = Workspace(root)
    runtime = ws.runtime(ws.graph(graph_text(0, inbox=durable_inbox(db))))
    before = proc_status_kb("VmHWM")
    start = time.perf_counter()
    report = asyncio.run(runtime.run())
    seconds = time.perf_counter() - start
    after = proc_status_kb("VmHWM")
    out = report["nodes"]["out"]
    assert report["status"] == "ok" and out["errors"] == 0 and out["dropped"] == 0, report
    with sqlite3.connect(db) as check_db:
        left = check_db.execute("SELECT count(*) FROM packets").fetchone()[0]
    result = {
        "seconds": seconds,
        "delivered": out["out"],
        "replayed": out["durable"]["replayed"],
        "left": left,
        "hwm_before_kb": before,
        "hwm_after_kb": after,
    }
    print(json.dumps(result))


def child_load_all(db: Path) -> None:
    """In a fresh process: what holding the whole backlog in memory at once costs."""
    before = proc_status_kb("VmHWM")
    with sqlite3.connect(db) as conn:
        rows = list(live_packets(conn))  # batch rows: several packets each
    packets = [decode_packet(body) for _seq, _at, body in rows]
    after = proc_status_kb("VmHWM")
    print(json.dumps({"rows": len(packets), "hwm_before_kb": before, "hwm_after_kb": after}))


def child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {args} exited {done.returncode}: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@dataclass
class Replay:
    backlog: int
    fill: list[float]
    rates: list[float]
    replay_kb: list[int]
    """VmHWM growth of the replay process during the run."""
    replay_peak_kb: list[int]
    load_kb: list[int]
    """VmHWM growth of a process that loads the whole backlog at once."""


def replay(ws: Workspace, sizes: Sizes) -> Replay:
    n = sizes.backlog
    result = Replay(n, [], [], [], [], [])
    for _ in range(sizes.rounds):
        db = ws.fresh("backlog")
        try:
            result.fill.append(n / fill(ws, db, n))
            loaded = child("--child-load-all", str(db))
            assert loaded["rows"] == n, loaded
            result.load_kb.append(loaded["hwm_after_kb"] - loaded["hwm_before_kb"])
            done = child("--child-replay", str(db), str(ws.root))
            assert done["replayed"] == n and done["delivered"] == n and done["left"] == 0, done
            result.rates.append(n / done["seconds"])
            result.replay_kb.append(done["hwm_after_kb"] - done["hwm_before_kb"])
            result.replay_peak_kb.append(done["hwm_after_kb"])
        finally:
            remove_db(db)
    print(
        f"4+5. replay of a {n:,}-packet backlog in a fresh process "
        f"(synthetic count 0 -> null), best rate / largest memory of {sizes.rounds}"
    )
    print(
        f"  backlog written (stalled sink)    {max(result.fill):>10,.0f} packets/s  "
        f"(rounds: {rounds(result.fill)})"
    )
    print(
        f"  replayed and settled              {max(result.rates):>10,.0f} packets/s  "
        f"(rounds: {rounds(result.rates)})"
    )
    print(
        f"  peak RSS growth during replay     {max(result.replay_kb) / MB:>10.1f} MB  "
        f"(rounds: {', '.join(f'{kb / MB:.1f}' for kb in result.replay_kb)}; process peak "
        f"{max(result.replay_peak_kb) / MB:.1f} MB)"
    )
    print(
        f"  baseline: load it all at once     {max(result.load_kb) / MB:>10.1f} MB  "
        f"(rounds: {', '.join(f'{kb / MB:.1f}' for kb in result.load_kb)})"
    )
    return result


# -- 6: drain into a local HTTP server ---------------------------------------------------------


def http_graph(url: str, batch_max: int, count: int, db: Path | None) -> str:
    """`synthetic (count) -> http` posting to `url`; a durable inbox on `db` if given."""
    config = f"{{url: {json.dumps(url)}, batch_max: {batch_max}}}"
    inbox = durable_inbox(db) if db is not None else ""
    return graph_text(count, sink="http", config=config, inbox=inbox)


def http_run(ws: Workspace, url: str, batch_max: int, count: int, db: Path | None) -> float:
    """Seconds of one run into the http sink: with `db`, draining the `count` packets left in
    it (`synthetic` makes none); without, `count` packets fed live through an in-memory inbox."""
    runtime = ws.runtime(ws.graph(http_graph(url, batch_max, 0 if db else count, db)))
    start = time.perf_counter()
    report = asyncio.run(runtime.run())
    seconds = time.perf_counter() - start
    if db is None:
        check(report, count)
        return seconds
    out = report["nodes"]["out"]
    assert report["status"] == "ok", (report["status"], report["stop_detail"])
    assert out["out"] == count and out["errors"] == 0 and out["dropped"] == 0, out
    durable = out["durable"]
    assert durable["replayed"] == count and durable["backlog"] == 0, durable
    with sqlite3.connect(db) as check_db:
        left = check_db.execute("SELECT count(*) FROM packets").fetchone()[0]
    assert left == 0, left
    return seconds


def packet_key(body: Any) -> str | None:
    """The idempotency key of one encoded packet as the server parsed it (see
    `StreamPacket.idempotency_key`); None for something that is not a packet."""
    if not isinstance(body, dict):
        return None
    meta = body.get("meta")
    key = meta.get("idempotency_key") if isinstance(meta, dict) else None
    return key if isinstance(key, str) else f"{body.get('source_id')}:{body.get('seq')}"


def key_problems(requests: list[Received], count: int) -> list[str]:
    """What is wrong with what the server received from a run of `count` packets from node
    `src`: refused requests, keys missing, duplicated or unexpected among the accepted ones,
    requests whose Idempotency-Key header is not the key of their packet (or batch)."""
    from schnitzel_plugins.http.sink import batch_key

    expected = {f"src:{seq}" for seq in range(count)}
    got: Counter[str | None] = Counter()
    wrong_header = 0
    for request in requests:
        members = [packet_key(body) for body in request.packets]
        if request.accepted:  # a refused request delivered nothing
            got.update(members)
        if isinstance(request.body, list):
            header = batch_key([str(key) for key in members])
        else:
            header = members[0]
        wrong_header += request.key != header
    problems = [
        f"{n:,} {what}"
        for n, what in (
            (sum(not r.accepted for r in requests), "requests refused"),
            (len(expected - got.keys()), "keys missing"),
            (sum(n - 1 for key, n in got.items() if key in expected and n > 1), "duplicates"),
            (sum(n for key, n in got.items() if key not in expected), "unexpected packets"),
            (wrong_header, "requests with a wrong Idempotency-Key header"),
        )
        if n
    ]
    return problems


@dataclass
class HttpVariant:
    """Item 6 for one batch_max: the drain of a backlog and live delivery of as many packets."""

    batch_max: int
    packets: int
    fill: list[float] = field(default_factory=list)
    drain: list[float] = field(default_factory=list)
    drain_s: list[float] = field(default_factory=list)
    drain_requests: list[int] = field(default_factory=list)
    live: list[float] = field(default_factory=list)
    live_s: list[float] = field(default_factory=list)
    live_requests: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return max(self.drain) / max(self.live)

    def delivered(self, backend: LoopbackBackend, what: str, round_no: int) -> int:
        """The requests of the run just done (checked; a warning if something is wrong)."""
        requests = backend.requests
        problems = key_problems(requests, self.packets)
        if problems:
            self.warnings.append(
                f"batch_max {self.batch_max}, {what} round {round_no}: {', '.join(problems)}"
            )
        return len(requests)


def http_drain(ws: Workspace, sizes: Sizes) -> list[HttpVariant]:
    # Imported here, not at the top: the child processes of items 4 and 5 (whose peak memory
    # is measured) need neither the server nor its imports (http.server, ssl).
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # the `tests` package lives at the repository's root
    from tests.http_backend import LoopbackBackend

    variants = [HttpVariant(batch_max, count) for batch_max, count in sizes.http]
    with LoopbackBackend() as backend:
        for round_no in range(1, sizes.rounds + 1):
            for v in variants:
                db = ws.fresh(f"http-backlog-{v.batch_max}")
                try:
                    v.fill.append(v.packets / fill(ws, db, v.packets))
                    backend.reset()
                    seconds = http_run(ws, backend.url, v.batch_max, v.packets, db)
                finally:
                    remove_db(db)
                v.drain_s.append(seconds)
                v.drain.append(v.packets / seconds)
                v.drain_requests.append(v.delivered(backend, "drain", round_no))
                backend.reset()
                seconds = http_run(ws, backend.url, v.batch_max, v.packets, None)
                v.live_s.append(seconds)
                v.live.append(v.packets / seconds)
                v.live_requests.append(v.delivered(backend, "live", round_no))
        backend.reset()
    print(
        "6. drain of a durable backlog into a local HTTP server (synthetic count 0 -> http) "
        f"vs live delivery (synthetic count N -> http, in-memory inbox), best of {sizes.rounds}"
    )
    for v in variants:
        print(f"  batch_max {v.batch_max}, {v.packets:,} packets")
        for name, rates, times, requests in (
            ("drained from the store", v.drain, v.drain_s, v.drain_requests),
            ("live, in-memory inbox", v.live, v.live_s, v.live_requests),
        ):
            print(
                f"    {name:<24} {max(rates):>10,.0f} packets/s  (rounds: {rounds(rates)}; "
                f"{', '.join(f'{s:.2f}' for s in times)} s; requests: {rounds(requests)})"
            )
        print(f"    -> drain is {v.ratio:.2f}x live delivery")
        times = v.drain_s + v.live_s
        if sizes is FULL and not 1.0 <= min(times) <= max(times) <= 3.0:
            print("    (warning: a run lasted outside 1-3 s; the machine is not the one sized for)")
    for line in itertools.chain.from_iterable(v.warnings for v in variants):
        print(f"  warning: {line}")
    return variants


# -- where the files go ------------------------------------------------------------------------


def file_system(directory: Path) -> tuple[list[str], dict[str, str]]:
    done = subprocess.run(
        ["df", "-hT", str(directory)], capture_output=True, text=True, check=False
    )
    lines = done.stdout.strip().splitlines()
    info: dict[str, str] = {}
    if done.returncode == 0 and len(lines) >= 2:
        fields = lines[-1].split()
        info = {"device": fields[0], "fstype": fields[1], "mount": fields[-1]}
    return lines, info


def fsync_ms(directory: Path, count: int = 200) -> float:
    """Median time of a 4 KiB append + fsync: what one commit with sync full waits for."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    times: list[float] = []
    try:
        block = b"x" * 4096
        for _ in range(count):
            start = time.perf_counter()
            os.write(fd, block)
            os.fsync(fd)
            times.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times) * 1e3


# -- profile and summary -----------------------------------------------------------------------


def profile(ws: Workspace, count: int) -> None:
    db = ws.fresh("profiled")
    runtime = ws.runtime(ws.graph(graph_text(count, inbox=durable_inbox(db))))
    profiler = cProfile.Profile()
    profiler.enable()
    report = asyncio.run(runtime.run())
    profiler.disable()
    remove_db(db)
    check(report, count)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
    print(f"cProfile of one durable run of item 1 ({count:,} packets), top 15 by own time")
    lines = text.getvalue().splitlines()
    total = next(line for line in lines if "function calls" in line)
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    for line in [total, *lines[start : start + 16]]:
        print("  " + line.strip())


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def summary(h: Headline, g: GroupCommit, c: Cost, r: Replay, http: list[HttpVariant]) -> None:
    memory, full, normal = max(c.memory), max(c.full), max(c.normal)
    replay_rate, replay_mb, load_mb = max(r.rates), max(r.replay_kb) / MB, max(r.load_kb) / MB
    rows = [
        (
            "1 durable src->null vs 1 txn/packet (threads)",
            f"{h.best:,.0f}/s",
            f"{max(h.threads):,.0f}/s",
            f"{h.ratio:.1f}x",
            ">= 10x",
            verdict(h.ratio >= 10),
        ),
        (
            "1 durable src->null vs 1 txn/packet (aiosqlite)",
            f"{h.best:,.0f}/s",
            f"{max(h.aio):,.0f}/s",
            f"{h.best / max(h.aio):.1f}x",
            "-",
            "-",
        ),
        (
            "2 group commit: writer thread vs aiosqlite",
            f"{max(g.thread):,.0f}/s",
            f"{max(g.aio):,.0f}/s",
            f"{g.ratio:.2f}x",
            "-",
            "thread faster" if g.ratio >= 1 else "aiosqlite faster",
        ),
        (
            "3 src->pass->null: durable full vs in-memory",
            f"{full:,.0f}/s",
            f"{memory:,.0f}/s",
            f"{full / memory:.3f}x",
            "-",
            "-",
        ),
        (
            "3 src->pass->null: durable normal vs in-memory",
            f"{normal:,.0f}/s",
            f"{memory:,.0f}/s",
            f"{normal / memory:.3f}x",
            "-",
            f"{normal / full:.2f}x full",
        ),
        (
            "3 src->pass->null: durable full, process, vs in-memory",
            f"{max(c.process):,.0f}/s",
            f"{memory:,.0f}/s",
            f"{max(c.process) / memory:.3f}x",
            "-",
            f"{max(c.process) / full:.2f}x thread",
        ),
        (
            f"4 replay {r.backlog // 1000}k backlog vs live (item 1)",
            f"{replay_rate:,.0f}/s",
            f"{h.best:,.0f}/s",
            f"{replay_rate / h.best:.2f}x",
            "-",
            "-",
        ),
        (
            f"5 peak RSS growth, replay vs load all {r.backlog // 1000}k",
            f"{replay_mb:+.1f} MB",
            f"{load_mb:+.1f} MB",
            f"{replay_mb / load_mb:.2f}x" if load_mb > 0 else "-",
            "not all at once",
            verdict(replay_mb < load_mb / 2),
        ),
    ]
    rows += [
        (
            f"6 http drain {v.packets:,} backlog, batch {v.batch_max} vs live",
            f"{max(v.drain):,.0f}/s",
            f"{max(v.live):,.0f}/s",
            f"{v.ratio:.2f}x",
            "every key once",
            verdict(not v.warnings),
        )
        for v in http
    ]
    header = ("item", "schnitzel", "baseline", "ratio", "goal", "verdict")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print("summary (rates: best of rounds; memory: largest of rounds)")
    for row in [header, *rows]:
        cells = (str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        print(("  " + "  ".join(cells)).rstrip())


def figures(
    fs: dict[str, str],
    fsync: float,
    h: Headline,
    g: GroupCommit,
    c: Cost,
    r: Replay,
    http: list[HttpVariant],
) -> dict[str, Any]:
    return {
        "bench": "durable",
        "file_system": fs,
        "fsync_ms_median": round(fsync, 4),
        "headline": {
            "packets": h.count,
            "durable_per_s": h.durable,
            "durable_s": h.durable_s,
            "threads_packets": h.baseline_count,
            "threads_per_s": h.threads,
            "aiosqlite_packets": h.aio_count,
            "aiosqlite_per_s": h.aio,
            "ratio_vs_threads": h.ratio,
            "ratio_vs_aiosqlite": h.best / max(h.aio),
            "goal": 10,
        },
        "group_commit": {
            "packets": g.packets,
            "batch": GROUP,
            "aiosqlite_per_s": g.aio,
            "thread_per_s": g.thread,
            "thread_over_aiosqlite": g.ratio,
        },
        "durability_cost": {
            "packets": c.packets,
            "memory_per_s": c.memory,
            "full_per_s": c.full,
            "normal_per_s": c.normal,
            "process_per_s": c.process,
            "full_over_memory": max(c.full) / max(c.memory),
            "normal_over_memory": max(c.normal) / max(c.memory),
        },
        "replay": {
            "backlog": r.backlog,
            "fill_per_s": r.fill,
            "replay_per_s": r.rates,
            "replay_over_live": max(r.rates) / h.best,
            "replay_hwm_growth_kb": r.replay_kb,
            "replay_hwm_kb": r.replay_peak_kb,
            "load_all_hwm_growth_kb": r.load_kb,
        },
        "http_drain": [
            {
                "batch_max": v.batch_max,
                "packets": v.packets,
                "fill_per_s": v.fill,
                "drain_per_s": v.drain,
                "drain_s": v.drain_s,
                "drain_requests": v.drain_requests,
                "live_per_s": v.live,
                "live_s": v.live_s,
                "live_requests": v.live_requests,
                "drain_over_live": v.ratio,
                "warnings": v.warnings,
            }
            for v in http
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer packets, shorter runs")
    parser.add_argument("--dir", type=Path, default=REPO.parent, help="where the database files go")
    parser.add_argument("--profile", action="store_true", help="cProfile one durable run")
    parser.add_argument(
        "--cost-only", action="store_true", help="item 3 alone (goal 5 of issue 18), 5 rounds"
    )
    parser.add_argument(
        "--window", type=int, help="with --cost-only: `max` of the sink's inbox (default 1024)"
    )
    parser.add_argument(
        "--packets", type=int, help="with --cost-only: packets per run (default 120,000)"
    )
    parser.add_argument("--child-replay", nargs=2, metavar=("DB", "ROOT"), help=argparse.SUPPRESS)
    parser.add_argument("--child-load-all", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_replay:
        child_replay(Path(args.child_replay[0]), Path(args.child_replay[1]))
        return
    if args.child_load_all:
        child_load_all(Path(args.child_load_all))
        return
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench_durable_") as name:
        ws = Workspace(Path(name))
        df, fs = file_system(ws.root)
        fsync = fsync_ms(ws.root)
        print(f"database files in {ws.root} (median 4 KiB append + fsync: {fsync:.3f} ms)")
        for line in df:
            print(f"  {line}")
        if args.cost_only:
            packets = args.packets or sizes.cost_packets
            cost(ws, dataclasses.replace(sizes, rounds=5, cost_packets=packets), args.window)
            return
        h = headline(ws, sizes)
        g = group_commit(ws, sizes)
        c = cost(ws, sizes)
        r = replay(ws, sizes)
        http = http_drain(ws, sizes)
        summary(h, g, c, r, http)
        if args.profile:
            profile(ws, h.count)
    print(f"(whole bench: {time.perf_counter() - started:.1f} s)")
    print(json.dumps(figures(fs, fsync, h, g, c, r, http)))


if __name__ == "__main__":
    sys.modules.setdefault(MODULE, sys.modules[__name__])
    main()
