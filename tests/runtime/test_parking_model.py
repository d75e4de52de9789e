"""A durable inbox with parking, against a model of what it should hold: random puts, takes
with some packets parked, requeues and drops, checked against the SQLite file after each step
and once more after a reopen. The backlog is first in, first out (a requeued packet joins at
the end); the parked table holds exactly what was parked and not yet requeued or dropped."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from schnitzel.contract.codec import decode_packet
from schnitzel.contract.packet import StreamPacket
from schnitzel.durable.parking import Selection
from schnitzel.durable.rows import live_packets
from schnitzel.durable.store import DiskFull
from schnitzel.runtime import durable_commits
from schnitzel.runtime.durable_inbox import DurableInbox
from schnitzel.runtime.inbox import InFlight
from schnitzel.runtime.metrics import NodeMetrics
from tests.waits import until

NO_SUCH_PARKED = Selection(ids=(1 << 62,))
"""Drops nothing: a request that returns once a commit wrote everything queued before it."""
GUARD_S = 60.0
"""Only against a hang: nothing waits for a set amount of real time."""


@dataclass
class Model:
    backlog: list[int] = field(default_factory=list)
    """Packet seqs, in the order the node must take them."""
    parked: dict[int, int] = field(default_factory=dict)
    """Parked id -> packet seq."""


def make_inbox(path: Path, process: bool = True) -> DurableInbox:
    """The store in a process of its own, or on a thread (where a test's stand-in for the
    commit is)."""
    return DurableInbox(
        8,
        "block",
        NodeMetrics(),
        InFlight(),
        path,
        1 << 30,
        None,
        "NORMAL",
        lambda *_: None,
        process=process,
    )


def stored(path: Path) -> tuple[list[int], dict[int, int]]:
    """(packet seqs in the packets table by row order, parked id -> packet seq)."""
    with closing(sqlite3.connect(path)) as db:
        rows = [(body,) for _seq, _at, body in live_packets(db)]
        parked = db.execute("SELECT id, body FROM parked").fetchall()
    return (
        [decode_packet(body).seq for (body,) in rows],
        {pid: decode_packet(body).seq for pid, body in parked},
    )


async def scenario(path: Path, seed: int) -> None:
    rng = random.Random(seed)
    inbox = make_inbox(path)
    await inbox.open()
    model = Model()
    next_seq = 0
    for _ in range(120):
        op = rng.choice(["put", "put", "take", "take", "requeue", "drop"])
        if op == "put":
            n = rng.randint(1, 12)
            batch = [StreamPacket.new("sensor", "m", next_seq + i, {"i": i}) for i in range(n)]
            await inbox.put(batch)
            model.backlog.extend(range(next_seq, next_seq + n))
            next_seq += n
        elif op == "take" and len(inbox):
            batch = inbox.take(rng.randint(1, 10))
            assert [p.seq for p in batch] == model.backlog[: len(batch)]
            del model.backlog[: len(batch)]
            refused = [p for p in batch if rng.random() < 0.3]
            batch.settle(None, None, [(p, f"refused {p.seq}") for p in refused])
            await inbox.change_parked("drop", NO_SUCH_PARKED)
            _, parked = stored(path)
            for p in refused:  # the new parked ids are those not in the model yet
                new = [
                    pid for pid, seq in parked.items() if seq == p.seq and pid not in model.parked
                ]
                assert len(new) == 1
                model.parked[new[0]] = p.seq
        elif op in ("requeue", "drop") and model.parked:
            ids = sorted(model.parked)
            chosen = rng.choice(
                [
                    Selection(everything=True),
                    Selection(ids=tuple(rng.sample(ids, rng.randint(1, len(ids))))),
                    Selection(first=ids[0], last=ids[len(ids) // 2]),
                ]
            )
            picked = [pid for pid in ids if _selects(chosen, pid)]
            done = await inbox.change_parked(op, chosen)
            assert (done.requeued if op == "requeue" else done.dropped) == len(picked)
            for pid in picked:
                seq = model.parked.pop(pid)
                if op == "requeue":
                    model.backlog.append(seq)
        await inbox.change_parked("drop", NO_SUCH_PARKED)
        on_disk, parked = stored(path)
        assert parked == model.parked
        assert on_disk == model.backlog  # taken packets were settled: none is held
        assert inbox.parked_count == len(model.parked)
        assert inbox.depth == len(model.backlog)
    await inbox.shutdown()

    again = make_inbox(path)  # a restart: both tables as they were, counted at open
    await again.open()
    assert again.stats.parked_at_open == len(model.parked)
    assert again.stats.lost is None  # parked rows are not owed; requeued ones are, and are here
    assert again.stats.replayed == len(model.backlog)
    taken: list[int] = []
    while len(taken) < len(model.backlog):
        await again.wait_items()
        batch = again.take(100)
        taken += [p.seq for p in batch]
        batch.settle()
    assert taken == model.backlog
    assert again.stats.rows_quarantined == 0  # every requeued row kept a matching checksum
    await again.shutdown()


def _selects(selection: Selection, parked_id: int) -> bool:
    if selection.everything:
        return True
    if selection.first is not None and selection.last is not None:
        return selection.first <= parked_id <= selection.last
    return parked_id in selection.ids


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_store_holds_what_the_model_says_through_parks_requeues_drops_and_a_reopen(
    tmp_path: Path, seed: int
) -> None:
    asyncio.run(asyncio.wait_for(scenario(tmp_path / "m.db", seed), 120))


def test_a_requeue_asked_while_a_commit_that_then_fails_runs_takes_the_packets_parked_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A packet parked before the operator asked is parked by an earlier commit than the
    requeue's, also when the commit in flight at the request fails and is retried (a full
    disk). The request used to know those parks by the identity of the list it saw; the
    failed commit put its parks back by merging that list into its own, so the retry served
    the request in the very commit that parked them: nothing was requeued."""
    entered, release = threading.Event(), threading.Event()
    fail_next = [False]
    original = durable_commits.commit_on_store

    def commit_on_store(*args: object) -> object:
        if fail_next[0]:  # held until the test has asked, then fails as on a full disk
            fail_next[0] = False
            entered.set()
            release.wait(GUARD_S)
            raise DiskFull("no space left (held by the test)")
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(durable_commits, "commit_on_store", commit_on_store)

    async def scenario() -> None:
        inbox = make_inbox(tmp_path / "r.db", process=False)
        await inbox.open()
        await inbox.put([StreamPacket.new("sensor", "m", i, {"i": i}) for i in range(2)])
        fail_next[0] = True
        first = inbox.take(1)
        first.settle(None, None, [(p, "refused") for p in first])
        await until(entered.is_set)  # the commit parking it runs on the store's thread
        second = inbox.take(1)
        second.settle(None, None, [(p, "refused") for p in second])  # queued to park
        requeue = asyncio.create_task(inbox.change_parked("requeue", Selection(everything=True)))
        await until(lambda: bool(inbox._parking_requests))
        release.set()  # the commit in flight fails; the retry parks both
        done = await requeue
        assert done.requeued == 2, (done.requeued, inbox.parked_count)
        assert inbox.parked_count == 0
        await inbox.shutdown()

    asyncio.run(asyncio.wait_for(scenario(), GUARD_S))


def test_packets_admitted_after_a_requeue_whose_commit_failed_keep_their_own_seqs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A requeue reserves seqs above every pending packet when its commit begins; when that
    commit fails (a full disk), packets admitted meanwhile took seqs above the reserved ones,
    so the retry's pending packets skip those seqs. Each must still be stored, delivered and
    settled under its own seq: none left behind in the store once all are settled."""
    steps: list[str] = []  # what the next held commits do: "ok" or "fail", in order
    entered, release = threading.Event(), threading.Event()
    original = durable_commits.commit_on_store

    def commit_on_store(*args: object) -> object:
        if steps:
            step = steps.pop(0)
            entered.set()
            release.wait(GUARD_S)
            release.clear()
            if step == "fail":
                raise DiskFull("no space left (held by the test)")
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(durable_commits, "commit_on_store", commit_on_store)
    # The retry then writes the packets before the requeue in one commit and those after
    # it in the next: the first takes packets on both sides of the reserved seqs into the
    # window (a commit that also requeues sends its new packets to disk, read back with
    # the store's seqs). 4 stands for the 8,192 a commit takes at most.
    monkeypatch.setattr(durable_commits, "GROUP_MAX_ROWS", 4)

    def packets(name: str, n: int) -> list[StreamPacket]:
        return [StreamPacket.new("sensor", "m", i, {"p": f"{name}{i}"}) for i in range(n)]

    async def held_commit() -> None:
        await until(entered.is_set)
        entered.clear()

    async def scenario() -> set[str]:
        inbox = make_inbox(tmp_path / "g.db", process=False)
        await inbox.open()
        await inbox.put(packets("a", 1))
        first = inbox.take(1)
        first.settle(None, None, [(p, "refused") for p in first])
        await until(lambda: inbox.parked_count == 1)
        steps.extend(["ok", "fail"])
        assert inbox.offer(packets("x", 1)) == 1
        await held_commit()  # x0's commit, held
        assert inbox.offer(packets("b", 2)) == 2
        requeue = asyncio.create_task(inbox.change_parked("requeue", Selection(everything=True)))
        await until(lambda: bool(inbox._parking_requests))
        release.set()  # x0's commit goes through; the next takes b0, b1 and the requeue
        await held_commit()
        assert inbox.offer(packets("c", 3)) == 3  # seqs above the ones the requeue reserved
        release.set()  # that commit fails; its retry writes b and c, and the requeue
        done = await requeue
        assert done.requeued == 1, done.requeued
        taken: list[str] = []
        while len(taken) < 7:
            await asyncio.wait_for(inbox.wait_items(), GUARD_S)
            batch = inbox.take(8)
            taken += [p.payload["p"] for p in batch]
            batch.settle()
        await inbox.shutdown()
        with closing(sqlite3.connect(tmp_path / "g.db")) as db:
            left = [decode_packet(body).payload["p"] for _seq, _at, body in live_packets(db)]
        assert not left, f"left in the store after all were settled: {left}"
        return set(taken)

    taken = asyncio.run(asyncio.wait_for(scenario(), GUARD_S))
    assert taken == {"x0", "b0", "b1", "c0", "c1", "c2", "a0"}, taken


def test_packets_lost_at_shutdown_on_a_full_disk_leave_the_reported_backlog_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Packets admitted but never committed (the disk stayed full until the shutdown gave
    up) are lost and counted so: the report's backlog holds none of them, so its bytes
    must not either."""

    def commit_on_store(*_args: object) -> None:
        raise DiskFull("no space left (held by the test)")

    monkeypatch.setattr(durable_commits, "commit_on_store", commit_on_store)

    async def scenario() -> None:
        inbox = make_inbox(tmp_path / "f.db", process=False)
        await inbox.open()
        batch = [StreamPacket.new("sensor", "m", i, {"i": i}) for i in range(3)]
        assert inbox.offer(batch) == len(batch)
        await until(lambda: inbox.stats.disk_errors >= 1)
        await inbox.shutdown(timeout_s=0.1)  # the disk never frees up: it gives up
        summary = inbox.summary()
        assert summary["backlog"] == 0
        assert summary["bytes"] == 0, summary

    asyncio.run(asyncio.wait_for(scenario(), GUARD_S))
