"""A store written by the schnitzel before batch rows (format 3) opens, is migrated in place and
drains: its one-packet rows, its parked and quarantined packets and its ledger all carry over
(the files were written by that version's own code: tests/runtime/fixtures/make_format3_store.py
says what they hold)."""

from __future__ import annotations

import gzip
import json
import sqlite3
from contextlib import closing
from pathlib import Path

from schnitzel.durable.parking import ParkingChanges, Selection, parked_totals, read_parked
from schnitzel.durable.store import FORMAT_VERSION, DurableStore
from schnitzel.runtime.durable_commits import commit_on_store

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BACKLOG = [1, 2, 6, 8, *range(10, 21)]
"""The store seqs the format-3 file owes (3..5 settled, 7 parked, 9 quarantined)."""


def format3_store(tmp_path: Path) -> Path:
    for name in ("format3.db", "format3.db.ledger"):
        (tmp_path / name).write_bytes(gzip.decompress((FIXTURES / f"{name}.gz").read_bytes()))
    return tmp_path / "format3.db"


def test_a_format_3_store_is_migrated_and_drains_with_nothing_lost(tmp_path: Path) -> None:
    path = format3_store(tmp_path)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    store = DurableStore(path)
    backlog = store.open()
    assert (backlog.count, backlog.next_seq, backlog.lost, backlog.note) == (15, 21, None, "")
    good, damaged = store.read(100)
    assert damaged == []
    assert [seq for seq, _at, _body in good] == BACKLOG
    assert all(json.loads(body)["payload"] == {"n": seq} for seq, _at, body in good)
    parked = store.query(read_parked)
    assert [(p.packet_seq, p.reason, p.intact) for p in parked] == [(7, "refused", True)]
    # New packets go into batch rows beside the old one-packet rows; settle part of each.
    commit_on_store(
        store, [(s, 2.0e9, b'{"new":%d}' % s) for s in range(21, 31)], [], 0, ParkingChanges()
    )
    store.commit([], [(1, 2), (21, 25)], 0)
    store.close()

    again = DurableStore(path)
    backlog = again.open()
    left = [s for s in BACKLOG if s > 2] + list(range(26, 31))
    assert (backlog.count, backlog.next_seq, backlog.lost, backlog.note) == (
        len(left),
        31,
        None,
        "",
    )
    requeue = ParkingChanges(
        requeue=Selection(everything=True), requeue_base_seq=31, requeue_room=1, requeue_at=3.0e9
    )
    commit_on_store(again, [], [], 0, requeue)
    assert requeue.requeued == 1 and again.query(parked_totals) == (0, 0)
    good, damaged = again.read(100)
    assert damaged == [] and [seq for seq, _at, _body in good] == [*left, 31]
    assert json.loads(good[-1][2])["payload"] == {"n": 7}  # the parked packet, intact
    again.commit([], [(1, 31)], 0)
    again.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION
        assert db.execute("SELECT count(*) FROM packets").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM settled").fetchone()[0] == 0
        kept = db.execute("SELECT seq, last, packets FROM quarantine").fetchall()
    assert kept == [(9, None, 1)]  # the old quarantined row, as it was
