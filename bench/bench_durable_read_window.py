"""Reading a durable backlog back a few packets at a time: batch rows against one-packet rows.

A durable inbox reads its backlog back about `max / 2` packets at a time (`DurableStore.read`),
so an inbox with a small `max` reads each batch row of 256 packets in many steps. The same
backlog (N packets of about 1 KB) is stored twice, once in batch rows (format 4, as the inbox
commits) and once in one-packet rows (as format 3 did, and as requeued packets are), then read
back to the end with each limit; CPU seconds of the whole read (this thread), best of the
rounds, and the ratio batch rows / one-packet rows.

Run: .venv/bin/python bench/bench_durable_read_window.py [--packets 20480] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import zlib
from pathlib import Path

from schnitzel.durable.store import DurableStore

LIMITS = (1, 8, 32, 512)
BODY = b'{"payload":"' + b"x" * 984 + b'"}'


def filled(directory: Path, packets: int, batch_rows: bool) -> DurableStore:
    store = DurableStore(directory / ("batch.db" if batch_rows else "single.db"), "OFF")
    store.open()
    if batch_rows:
        for first in range(1, packets + 1, 8192):
            last = min(first + 8192, packets + 1)
            store.commit([(seq, 1.0, BODY) for seq in range(first, last)], [], 0)
    else:  # rows of their own, as a requeue writes them
        sums = zlib.adler32(BODY)
        store.commit([], [], 0, restored=[(seq, 1.0, BODY, sums) for seq in range(1, packets + 1)])
    return store


def read_through(directory: Path, packets: int, batch_rows: bool, limit: int) -> float:
    store = filled(directory, packets, batch_rows)
    try:
        started = time.thread_time()
        got = 0
        while good := store.read(limit)[0]:
            got += len(good)
        spent = time.thread_time() - started
    finally:
        store.close()
    assert got == packets, (got, packets)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=20480)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{args.packets:,} packets of {len(BODY)} bytes, CPU s of the read, best of {args.rounds}"
    )
    print(f"{'limit':>6} {'batch rows':>11} {'one-packet rows':>16} {'ratio':>6}")
    for limit in LIMITS:
        best = {True: float("inf"), False: float("inf")}
        for _ in range(args.rounds):
            for batch_rows in (True, False):
                directory = Path(tempfile.mkdtemp(prefix="schnitzel-bench-read-"))
                try:
                    spent = read_through(directory, args.packets, batch_rows, limit)
                finally:
                    shutil.rmtree(directory)
                best[batch_rows] = min(best[batch_rows], spent)
        ratio = best[True] / best[False]
        print(f"{limit:>6} {best[True]:>11.3f} {best[False]:>16.3f} {ratio:>5.2f}x")


if __name__ == "__main__":
    main()
