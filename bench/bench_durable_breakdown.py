"""Where the CPU of a durable packet goes: item 3 of bench_durable.py taken apart.

`synthetic -> passthrough -> null` (bench_durable's graph), run through `Runtime`, CPU per
packet (not wall time: on a shared machine the wall time of a run is mostly waiting for a core,
while its CPU time is what the code costs), best of the rounds, four variants interleaved:

1. memory: `null` has an in-memory inbox (the baseline of bench_durable's item 3);
2. durable: a durable inbox, sync full (what item 3 measures);
3. durable, no store: the same inbox with its store calls skipped (each commit returns at once
   on the store's thread): what the inbox costs on the event loop, encoding included;
4. durable, no store, no encode: also every packet's encoding replaced by one constant body.

Per variant: CPU of the whole process, of the event loop's thread, and of the store's thread
(the commit calls, measured inside that thread). The differences name the parts: encode = 3 - 4,
inbox bookkeeping (admission, commit loop hops, window, settle) = 4 - 1, SQLite and the ledger
= the store thread of 2. Then SQLite alone on a file beside the runs (synchronous off, so CPU
only): one row per packet (executemany INSERT, then a range DELETE, as format 3 stores did)
against one row per 256 packets (one INSERT of the bodies end to end, one DELETE, as the batch
rows of format 4 do): what batch rows save per packet.

Variants 3 and 4 are measurements only (they lose every packet on a crash).

Run: .venv/bin/python bench/bench_durable_breakdown.py [--packets 60000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import bench_durable as b

import schnitzel.runtime.durable_admission as admission
import schnitzel.runtime.durable_commits as commits
from schnitzel.contract.packet import StreamPacket

VARIANTS = ("memory", "durable", "durable, no store", "durable, no store, no encode")


class StoreClock:
    """CPU seconds spent inside the store's commit calls, measured in the store's thread."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, commit: Callable[..., None]) -> Callable[..., None]:
        def timed(*args: Any) -> None:
            started = time.thread_time()
            try:
                commit(*args)
            finally:
                self.seconds += time.thread_time() - started

        return timed


@contextlib.contextmanager
def patched(store: bool, encode: bool, clock: StoreClock) -> Iterator[None]:
    """The inbox with its store calls and/or its encoding skipped; the commits timed."""
    real_commit, real_encode = commits.commit_on_store, admission.encode_batch_bytes
    commits.commit_on_store = clock.wrap(real_commit if store else _skip)
    if not encode:
        admission.encode_batch_bytes = _constant_bodies
    try:
        yield
    finally:
        commits.commit_on_store, admission.encode_batch_bytes = real_commit, real_encode


def _skip(*_args: Any) -> None:
    return None


def _constant_bodies(batch: list[StreamPacket]) -> list[bytes]:
    return [b'{"v":1}'] * len(batch)


def process_cpu() -> float:
    times = os.times()
    return times.user + times.system


def measure(ws: b.Workspace, variant: str, packets: int) -> tuple[float, float, float]:
    """(process, loop thread, store thread) CPU seconds per packet of one run."""
    clock = StoreClock()
    db = ws.fresh("breakdown")
    inbox = "" if variant == "memory" else b.durable_inbox(db)
    runtime = ws.runtime(ws.graph(b.graph_text(packets, inbox=inbox, stages=1)))
    store, encode = "no store" not in variant, "no encode" not in variant
    with patched(store, encode, clock):
        process, loop = process_cpu(), time.thread_time()
        report = cast(dict[str, Any], asyncio.run(runtime.run()))
        loop = time.thread_time() - loop
        process = process_cpu() - process
    b.remove_db(db)
    b.check(report, packets)
    return process / packets, loop / packets, clock.seconds / packets


def sqlite_rows(root: Path, packets: int, per_row: int) -> float:
    """CPU seconds per packet to insert and delete `packets` encoded packets, `per_row` of
    them in each row, 256 per transaction pair (synchronous off: CPU, not the disk)."""
    body = b"x" * 141
    path = root / f"rows-{per_row}.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute(
        "CREATE TABLE packets (seq INTEGER PRIMARY KEY, enqueued REAL NOT NULL, "
        "body BLOB NOT NULL, checksum INTEGER NOT NULL DEFAULT -1)"
    )
    seq, group = 1, 256
    started = time.thread_time()
    for _ in range(packets // group):
        if per_row == 1:
            rows = [(seq + k, 1.0, body, 5) for k in range(group)]
        else:
            rows = [(seq + k, 1.0, body * per_row, 5) for k in range(0, group, per_row)]
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO packets VALUES (?, ?, ?, ?)", rows)
        db.execute("COMMIT")
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM packets WHERE seq BETWEEN ? AND ?", (seq, seq + group - 1))
        db.execute("COMMIT")
        seq += group
    seconds = time.thread_time() - started
    db.close()
    b.remove_db(path)
    return seconds / (packets // group * group)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--packets", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=b.REPO.parent, help="where files go")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_durable_breakdown_", dir=args.dir))
    try:
        ws = b.Workspace(root)
        best: dict[str, tuple[float, float, float]] = {}
        for _round in range(args.rounds):
            for variant in VARIANTS:
                got = measure(ws, variant, args.packets)
                if variant not in best or got[0] < best[variant][0]:
                    best[variant] = got
        rows = {
            n: min(sqlite_rows(root, args.packets, n) for _ in range(args.rounds)) for n in (1, 256)
        }
    finally:
        shutil.rmtree(root)
    us = 1e6
    print(
        f"CPU per packet, synthetic -> passthrough -> null, {args.packets:,} packets, "
        f"best of {args.rounds} (us)"
    )
    print(f"  {'variant':<30} {'process':>8} {'loop':>8} {'store':>8}")
    for variant in VARIANTS:
        process, loop, store = best[variant]
        print(f"  {variant:<30} {process * us:>8.2f} {loop * us:>8.2f} {store * us:>8.2f}")
    memory = best["memory"][0]
    durable = best["durable"][0]
    no_store, no_encode = best["durable, no store"][1], best["durable, no store, no encode"][1]
    print(f"  -> durable / memory CPU: {durable / memory:.1f}x (0.2x throughput needs <= 5x)")
    print(f"  -> encode on the loop: {(no_store - no_encode) * us:.2f} us")
    print(f"  -> inbox bookkeeping on the loop: {(no_encode - best['memory'][1]) * us:.2f} us")
    print(f"  -> the store thread (SQLite, ledger): {best['durable'][2] * us:.2f} us")
    print(
        f"SQLite alone, insert + delete: one row per packet {rows[1] * us:.2f} us, "
        f"one row per 256 packets {rows[256] * us:.2f} us per packet"
    )


if __name__ == "__main__":
    sys.modules.setdefault(b.MODULE, b)
    main()
