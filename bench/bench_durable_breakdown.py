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

Then the same runs by wall time, which is what bench_durable's item 3 (goal 5 of issue 18)
compares: packets/s of each variant against memory's, and for the durable run where its wall
time goes besides the loop's CPU. The loop waits (blocked in its selector) while a commit is on
the store's thread, and a commit waits for the GIL before it starts: the store's thread needs
the GIL to begin (and at every SQLite call it returns from) while the loop's thread is busy
with Python code, which it gives up only every `sys.getswitchinterval()` (5 ms) or when it
blocks. Per commit: how long from its submission on the loop to its start on the store's
thread (the GIL), and how long it ran there. Variants 3 and 4 by wall time are the ceilings:
what the loop alone allows with no commit on its path, and with no encoding either.

`--instructions`: instead of CPU seconds, instructions per packet counted by valgrind
(callgrind), which the machine's load does not move: variants 1 and 2, each run in a fresh
process for `--packets` and for a third of that, the difference per packet (start-up and stop
taken out), the event loop's thread apart from the others (the store's). `--rounds` runs of
each, the median shown: how commits group (packets per commit) still moves a durable count by
a few percent from run to run.

Run: .venv/bin/python bench/bench_durable_breakdown.py [--packets 60000] [--rounds 3]
     .venv/bin/python bench/bench_durable_breakdown.py --instructions [--packets 40000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import selectors
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast

import bench_durable as b

import schnitzel.runtime.durable_admission as admission
import schnitzel.runtime.durable_commits as commits
from schnitzel.contract.packet import StreamPacket

VARIANTS = ("memory", "durable", "durable, no store", "durable, no store, no encode")


class StoreClock:
    """CPU seconds spent inside the store's commit calls, measured in the store's thread;
    when each commit was submitted on the loop, began and ended there (perf_counter)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.submitted: list[float] = []
        self.began: list[float] = []
        self.ended: list[float] = []

    def wrap(self, commit: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any) -> Any:
            self.began.append(time.perf_counter())
            started = time.thread_time()
            try:
                return commit(*args)
            finally:
                self.seconds += time.thread_time() - started
                self.ended.append(time.perf_counter())

        return timed

    def gil_wait_s(self) -> float:
        """Mean seconds from a commit's submission to its start on the store's thread."""
        waits = [b - a for a, b in zip(self.submitted, self.began, strict=False)]
        return statistics.mean(waits) if waits else 0.0

    def commit_s(self) -> float:
        """Mean seconds a commit ran on the store's thread."""
        runs = [b - a for a, b in zip(self.began, self.ended, strict=False)]
        return statistics.mean(runs) if runs else 0.0


class SelectorClock:
    """Seconds the event loop's thread spent blocked in its selector (waiting, not idle
    polls): while a durable run waits there, it waits for the store."""

    def __init__(self) -> None:
        self.blocked = 0.0

    def wrap(self, select: Callable[..., Any]) -> Callable[..., Any]:
        def timed(selector: Any, timeout: float | None = None) -> Any:
            if timeout == 0:
                return select(selector, timeout)
            started = time.perf_counter()
            try:
                return select(selector, timeout)
            finally:
                self.blocked += time.perf_counter() - started

        return timed


@contextlib.contextmanager
def patched(store: bool, encode: bool, clock: StoreClock, waits: SelectorClock) -> Iterator[None]:
    """The inbox with its store calls and/or its encoding skipped; the commits timed, from
    their submission to the store's thread (`run_in_executor`), and the loop's waits."""
    real_commit, real_encode = commits.commit_on_store, admission.encode_batch_bytes
    real_submit, real_select = asyncio.BaseEventLoop.run_in_executor, selectors.EpollSelector.select
    timed_commit = clock.wrap(real_commit if store else _skip)

    def submit(loop: asyncio.BaseEventLoop, pool: Any, func: Any, *args: Any) -> Any:
        if func is timed_commit:
            clock.submitted.append(time.perf_counter())
        return real_submit(loop, pool, func, *args)

    commits.commit_on_store = timed_commit
    asyncio.BaseEventLoop.run_in_executor = submit  # type: ignore[method-assign]
    selectors.EpollSelector.select = waits.wrap(real_select)  # type: ignore[method-assign]
    if not encode:
        admission.encode_batch_bytes = _constant_bodies
    try:
        yield
    finally:
        commits.commit_on_store, admission.encode_batch_bytes = real_commit, real_encode
        asyncio.BaseEventLoop.run_in_executor = real_submit  # type: ignore[method-assign]
        selectors.EpollSelector.select = real_select  # type: ignore[method-assign]


def _skip(*args: Any) -> Any:
    return args[-1]  # the commit's parking changes, as `commit_on_store` returns them


def _constant_bodies(batch: Sequence[StreamPacket]) -> list[bytes]:
    return [b'{"v":1}'] * len(batch)


def process_cpu() -> float:
    times = os.times()
    return times.user + times.system


class Measured(NamedTuple):
    """One run, per packet (seconds), and its commits."""

    process: float
    """CPU of the whole process."""
    loop: float
    """CPU of the event loop's thread."""
    store: float
    """CPU of the store's thread inside commits."""
    wall: float
    blocked: float
    """Wall time the loop's thread waited in its selector."""
    commits: int
    gil_wait_s: float
    commit_s: float


def measure(ws: b.Workspace, variant: str, packets: int) -> Measured:
    """One run of `variant` through `Runtime`, checked to deliver every packet."""
    clock, waits = StoreClock(), SelectorClock()
    db = ws.fresh("breakdown")
    inbox = "" if variant == "memory" else b.durable_inbox(db)
    runtime = ws.runtime(ws.graph(b.graph_text(packets, inbox=inbox, stages=1)))
    store, encode = "no store" not in variant, "no encode" not in variant
    with patched(store, encode, clock, waits):
        process, loop, wall = process_cpu(), time.thread_time(), time.perf_counter()
        report = cast(dict[str, Any], asyncio.run(runtime.run()))
        wall = time.perf_counter() - wall
        loop = time.thread_time() - loop
        process = process_cpu() - process
    b.remove_db(db)
    b.check(report, packets)
    return Measured(
        process / packets,
        loop / packets,
        clock.seconds / packets,
        wall / packets,
        waits.blocked / packets,
        len(clock.began),
        clock.gil_wait_s(),
        clock.commit_s(),
    )


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


INSTRUCTION_VARIANTS = VARIANTS[:2]
"""Counted by valgrind: the in-memory graph and the durable one, as they really run."""
SHORT_FRACTION = 3
"""The short run is this fraction of `--packets`; its count is taken off the long one's."""


def child(variant: str, packets: int, root: Path) -> None:
    """One run of `variant` in this process (under valgrind); prints its packets (JSON)."""
    ws = b.Workspace(Path(tempfile.mkdtemp(prefix="run_", dir=root)))
    measure(ws, variant, packets)
    print(json.dumps({"packets": packets}))


def counted(variant: str, packets: int, root: Path) -> tuple[int, int]:
    """Instructions of one run in a fresh process under callgrind: (the main thread, which
    runs the event loop; every other thread, the store's among them)."""
    out = Path(tempfile.mkdtemp(prefix="callgrind_", dir=root))
    cmd = [sys.executable, __file__, "--child", variant, "--packets", str(packets)]
    cmd += ["--dir", str(root)]
    valgrind = ["valgrind", "--tool=callgrind", "--separate-threads=yes"]
    valgrind.append(f"--callgrind-out-file={out / 'cg.out'}")
    env = dict(os.environ, PYTHONHASHSEED="0")
    subprocess.run(valgrind + cmd, capture_output=True, text=True, env=env, check=True)
    totals: dict[int, int] = {}
    for path in out.glob("cg.out-*"):
        found = re.search(r"^(?:totals|summary): (\d+)", path.read_text(), re.MULTILINE)
        assert found is not None, f"no totals in {path}"
        totals[int(path.name.rsplit("-", 1)[1])] = int(found.group(1))
    shutil.rmtree(out)
    main_thread = totals.pop(1)
    return main_thread, sum(totals.values())


def instructions(variant: str, packets: int, rounds: int, root: Path) -> tuple[float, float]:
    """Median instructions per packet over `rounds`: (the event loop's thread, the others)."""
    short = packets // SHORT_FRACTION
    loops: list[float] = []
    others: list[float] = []
    for _round in range(rounds):
        long_loop, long_other = counted(variant, packets, root)
        short_loop, short_other = counted(variant, short, root)
        loops.append((long_loop - short_loop) / (packets - short))
        others.append((long_other - short_other) / (packets - short))
    return statistics.median(loops), statistics.median(others)


def report_instructions(packets: int, rounds: int, root: Path) -> None:
    figures = {v: instructions(v, packets, rounds, root) for v in INSTRUCTION_VARIANTS}
    print(
        f"instructions per packet, synthetic -> passthrough -> null, {packets:,} less "
        f"{packets // SHORT_FRACTION:,} packets (valgrind callgrind, fresh processes, "
        f"median of {rounds})"
    )
    print(f"  {'variant':<10} {'process':>9} {'loop':>9} {'others':>9}")
    for variant, (loop, others) in figures.items():
        print(f"  {variant:<10} {loop + others:>9,.0f} {loop:>9,.0f} {others:>9,.0f}")
    memory, durable = (sum(figures[v]) for v in INSTRUCTION_VARIANTS)
    print(f"  -> durable / memory instructions: {durable / memory:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--packets", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=b.REPO.parent, help="where files go")
    parser.add_argument(
        "--instructions", action="store_true", help="instructions per packet (valgrind)"
    )
    parser.add_argument("--child", choices=INSTRUCTION_VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.packets, args.dir)
        return
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind (apt-get install valgrind)")
    root = Path(tempfile.mkdtemp(prefix="bench_durable_breakdown_", dir=args.dir))
    try:
        if args.instructions:
            report_instructions(args.packets, args.rounds, root)
            return
        ws = b.Workspace(root)
        best: dict[str, Measured] = {}
        fastest: dict[str, Measured] = {}
        for _round in range(args.rounds):
            for variant in VARIANTS:
                got = measure(ws, variant, args.packets)
                if variant not in best or got.process < best[variant].process:
                    best[variant] = got
                if variant not in fastest or got.wall < fastest[variant].wall:
                    fastest[variant] = got
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
        process, loop, store = best[variant][:3]
        print(f"  {variant:<30} {process * us:>8.2f} {loop * us:>8.2f} {store * us:>8.2f}")
    memory = best["memory"].process
    durable = best["durable"].process
    no_store, no_encode = best["durable, no store"].loop, best["durable, no store, no encode"].loop
    print(f"  -> durable / memory CPU: {durable / memory:.1f}x (0.2x throughput needs <= 5x)")
    print(f"  -> encode on the loop: {(no_store - no_encode) * us:.2f} us")
    print(f"  -> inbox bookkeeping on the loop: {(no_encode - best['memory'].loop) * us:.2f} us")
    print(f"  -> the store thread (SQLite, ledger): {best['durable'].store * us:.2f} us")
    print(
        f"SQLite alone, insert + delete: one row per packet {rows[1] * us:.2f} us, "
        f"one row per 256 packets {rows[256] * us:.2f} us per packet"
    )
    report_wall(fastest, args.packets, args.rounds)


def report_wall(fastest: dict[str, Measured], packets: int, rounds: int) -> None:
    us, ms = 1e6, 1e3
    memory = fastest["memory"].wall
    print(
        f"wall time per packet, the same runs, best of {rounds} (us); x memory = "
        "throughput against the in-memory run (bench_durable's item 3, goal >= 0.2x)"
    )
    print(f"  {'variant':<30} {'wall':>8} {'x memory':>9} {'loop CPU':>9} {'loop waits':>11}")
    for variant in VARIANTS:
        got = fastest[variant]
        print(
            f"  {variant:<30} {got.wall * us:>8.2f} {memory / got.wall:>8.3f}x "
            f"{got.loop * us:>9.2f} {got.blocked * us:>11.2f}"
        )
    durable = fastest["durable"]
    print(
        f"  -> durable: the loop waited {durable.blocked / durable.wall:.0%} of the run; "
        f"{durable.commits} commits ({packets / max(durable.commits, 1):.0f} packets each), "
        f"each waited {durable.gil_wait_s * ms:.2f} ms for the store's thread to start it "
        f"(the GIL) and ran {durable.commit_s * ms:.2f} ms there"
    )


if __name__ == "__main__":
    sys.modules.setdefault(b.MODULE, b)
    main()
