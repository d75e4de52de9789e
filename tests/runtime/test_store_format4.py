"""A store written before a row's checksum covered its seq range (format 4) opens, is migrated in
place and drains: its batch rows, keeping the checksums they were written with, read back
intact; its settled ranges, parked packet, quarantine entry and ledger carry over; rows written
after the migration are sealed (rows.SEALED) and a hand-moved one is caught (the files were
written by that version's own code: tests/runtime/fixtures/make_format4_store.py says what
they hold)."""

from __future__ import annotations

import gzip
import json
import sqlite3
from contextlib import closing
from pathlib import Path

from schnitzel.durable.parking import ParkingChanges, Selection, parked_totals, read_parked
from schnitzel.durable.quarantine import quarantine_entries
from schnitzel.durable.rows import SEALED
from schnitzel.durable.store import FORMAT_VERSION, DurableStore
from schnitzel.runtime.durable_commits import commit_on_store

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BACKLOG = [1, 2, 6, *range(8, 21), 31]
"""The store seqs the format-4 file owes (3..5 settled, 7 parked, 21..30 quarantined)."""


def format4_store(tmp_path: Path) -> Path:
    for name in ("format4.db", "format4.db.ledger"):
        (tmp_path / name).write_bytes(gzip.decompress((FIXTURES / f"{name}.gz").read_bytes()))
    return tmp_path / "format4.db"


def checksums(path: Path) -> dict[int, int]:
    with closing(sqlite3.connect(path)) as db:
        return dict(db.execute("SELECT seq, checksum FROM packets").fetchall())


def test_a_format_4_store_is_migrated_and_drains_with_nothing_lost(tmp_path: Path) -> None:
    path = format4_store(tmp_path)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 4
    assert all(stored < SEALED for stored in checksums(path).values())
    store = DurableStore(path)
    backlog = store.open()
    assert (backlog.count, backlog.next_seq, backlog.lost, backlog.note) == (17, 32, None, "")
    good, damaged = store.read(5)  # the old batch row read a few packets at a time
    more, damaged_more = store.read(100)
    assert damaged == damaged_more == []
    good += more
    assert [seq for seq, _at, _body in good] == BACKLOG
    assert all(json.loads(body)["payload"] == {"n": seq} for seq, _at, body in good)
    parked = store.query(read_parked)
    assert [(p.packet_seq, p.reason, p.intact) for p in parked] == [(7, "refused", True)]
    # New packets, and the parked one requeued: rows of the new format beside the old ones.
    commit_on_store(
        store, [(s, 2.0e9, b'{"new":%d}' % s) for s in range(32, 42)], [], 0, ParkingChanges()
    )
    requeue = ParkingChanges(
        requeue=Selection(everything=True), requeue_base_seq=42, requeue_room=1, requeue_at=3.0e9
    )
    commit_on_store(store, [], [(1, 2)], 0, requeue)
    assert requeue.requeued == 1 and store.query(parked_totals) == (0, 0)
    store.close()
    sums = checksums(path)
    assert sums[1] < SEALED and sums[31] < SEALED  # the old rows, as they were written
    assert sums[32] >= SEALED and sums[42] >= SEALED

    again = DurableStore(path)
    backlog = again.open()
    left = [s for s in BACKLOG if s > 2] + list(range(32, 43))
    assert (backlog.count, backlog.next_seq, backlog.lost, backlog.note) == (
        len(left),
        43,
        None,
        "",
    )
    good, damaged = again.read(100)
    assert damaged == [] and [seq for seq, _at, _body in good] == left
    assert json.loads(good[-1][2])["payload"] == {"n": 7}  # the parked packet, intact
    again.commit([], [(1, 42)], 0)
    again.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION == 5
        assert db.execute("SELECT count(*) FROM packets").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM settled").fetchone()[0] == 0
        kept = db.execute("SELECT seq, last, packets FROM quarantine").fetchall()
    assert kept == [(21, 30, 10)]  # the old quarantine entry, as it was


def test_a_row_written_after_the_migration_and_moved_by_hand_is_quarantined(
    tmp_path: Path,
) -> None:
    path = format4_store(tmp_path)
    store = DurableStore(path)
    store.open()
    store.commit([(s, 2.0e9, b'{"new":%d}' % s) for s in range(32, 42)], [], 0)
    store.close()
    with closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE packets SET seq = 132, last = 141 WHERE seq = 32")
        db.commit()
    again = DurableStore(path)
    backlog = again.open()
    good, damaged = again.read(100)
    again.close()
    assert backlog.lost is not None and backlog.lost.count == 10
    assert [seq for seq, _at, _body in good] == BACKLOG
    assert [seq for seq, *_ in damaged] == list(range(132, 142))


def test_its_quarantine_entry_reads_back_as_the_packets_it_took(tmp_path: Path) -> None:
    """The entry was written before entries said which seqs they took (`held`, `row_seq`):
    it took its whole row (10 packets of 10), so they are still known, and it says it is
    damaged (one byte of packet 21 was changed on disk)."""
    path = format4_store(tmp_path)
    store = DurableStore(path)
    store.open()
    [entry] = store.query(quarantine_entries)
    store.close()
    assert (entry.seq, entry.last, entry.packets, entry.held) == (21, 30, 10, [(21, 30)])
    assert entry.intact is False and entry.parts is not None
    numbers = {
        seq: json.loads(body)["payload"]["n"] for seq, body in entry.parts.items() if seq > 21
    }
    assert numbers == {seq: seq for seq in range(22, 31)}
