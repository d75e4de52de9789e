"""A damaged batch row as the operator sees it: one quarantine entry holding exactly the packets
the row still held, however the reads that found it were cut; one recent error naming how many
packets went; and a row whose seq range was changed on disk is damaged like one whose body was
(its checksum covers the columns that decide what is delivered: seq, last, sizes, body)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from schnitzel.contract.codec import encode_packet_bytes
from schnitzel.contract.packet import StreamPacket
from schnitzel.durable.quarantine import QuarantineEntry, requeue_entries
from schnitzel.durable.quarantine import quarantine_entries as entries_in
from schnitzel.durable.store import DurableStore, NewRow, StoreError
from tests.runtime import plugins
from tests.runtime.harness import graph_from, run
from tests.runtime.test_durable import graph


def new_rows(first: int, n: int) -> list[NewRow]:
    """`n` packets from store seq `first` on (packet seq = store seq - 1): one batch row."""
    return [
        (seq, 1.0, encode_packet_bytes(StreamPacket.new("sensor", "src", seq - 1, {"n": seq})))
        for seq in range(first, first + n)
    ]


def change_one_byte(path: Path, row: int) -> None:
    """One byte of the row starting at store seq `row` changed (in the file, store closed)."""
    with closing(sqlite3.connect(path)) as db:
        db.execute(
            "UPDATE packets SET body = substr(body, 1, 30) || 'X' || substr(body, 32) "
            "WHERE seq = ?",
            (row,),
        )
        db.commit()


def quarantine_entries(path: Path) -> list[tuple[int, int, int]]:
    """(seq, last, packets) of each quarantine entry."""
    with closing(sqlite3.connect(path)) as db:
        return db.execute(
            "SELECT seq, coalesce(last, seq), packets FROM quarantine ORDER BY id"
        ).fetchall()


def entries_of(path: Path) -> list[QuarantineEntry]:
    """The quarantine entries of the (closed) store at `path`, read back."""
    with closing(sqlite3.connect(path)) as db:
        return entries_in(db)


def numbered(parts: dict[int, bytes] | None) -> dict[int, int]:
    """Store seq -> the number `new_rows` wrote into the packet found under it."""
    assert parts is not None
    return {seq: json.loads(body)["payload"]["n"] for seq, body in parts.items()}


def read_all(store: DurableStore, limit: int) -> tuple[list[int], list[int]]:
    """Seqs read good and seqs quarantined, reading `limit` packets at a time to the end."""
    good: list[int] = []
    damaged: list[int] = []
    while True:
        got, bad = store.read(limit)
        if not got and not bad:
            return good, damaged
        good += [seq for seq, _at, _body in got]
        damaged += [seq for seq, *_ in bad]


def edited_by_hand(
    path: Path, rows: list[tuple[int, int]], *edits: str, settled: tuple[int, int] | None = None
) -> None:
    """A store at `path` holding a row of `n` packets from each `(first, n)` (and `settled`
    settled out of them), closed, then changed by the SQL `edits` as someone with sqlite3
    might."""
    store = DurableStore(path)
    store.open()
    for first, n in rows:
        store.commit(new_rows(first, n), [], 0)
    if settled is not None:
        store.commit([], [settled], 0)
    store.close()
    with closing(sqlite3.connect(path)) as db:
        for edit in edits:
            db.execute(edit)
        db.commit()


def test_a_damaged_row_read_a_few_packets_at_a_time_is_one_quarantine_entry(
    tmp_path: Path,
) -> None:
    """A read window smaller than the row found it damaged at each read and quarantined it
    once per read, each entry with the whole body: the row's packets counted in several
    entries. Now the first read that finds it moves every packet it still held, in one."""
    path = tmp_path / "out.db"
    store = DurableStore(path)
    store.open()
    store.commit(new_rows(1, 5), [], 0)
    store.commit(new_rows(6, 40), [], 0)
    store.commit(new_rows(46, 5), [], 0)
    store.close()
    change_one_byte(path, 6)
    again = DurableStore(path)
    again.open()
    good, damaged = read_all(again, 3)
    again.close()
    assert good == [*range(1, 6), *range(46, 51)]
    assert damaged == list(range(6, 46))
    assert quarantine_entries(path) == [(6, 45, 40)]


def damage_a_partly_settled_row(path: Path) -> None:
    """A store of one 40-packet row, 1-4 and 10-12 settled out of it, then one byte of the
    row changed on disk."""
    store = DurableStore(path)
    store.open()
    store.commit(new_rows(1, 40), [], 0)
    store.commit([], [(1, 4), (10, 12)], 0)
    store.close()
    change_one_byte(path, 1)


def test_a_damaged_row_some_packets_of_which_settled_quarantines_exactly_the_rest(
    tmp_path: Path,
) -> None:
    """Packets settled out of the row before it was damaged (the `settled` table) are not
    quarantined again: the entry counts the packets the row still held."""
    path = tmp_path / "out.db"
    damage_a_partly_settled_row(path)
    again = DurableStore(path)
    again.open()
    good, damaged = read_all(again, 2)
    again.close()
    held = [*range(5, 10), *range(13, 41)]
    assert (good, damaged) == ([], held)
    assert quarantine_entries(path) == [(5, 40, len(held))]


def test_a_damaged_row_is_one_recent_error_naming_its_packets(tmp_path: Path) -> None:
    """Each packet of a damaged row added the same recent error (up to 256 of them, pushing
    out every other error an operator looks for): one entry per row now, with the count."""
    path = tmp_path / "state" / "out.db"
    store = DurableStore(path)
    store.open()
    store.commit(new_rows(1, 200), [], 0)
    store.commit(new_rows(201, 10), [], 0)
    store.close()
    change_one_byte(path, 1)
    inbox = "{max: 8, durable: {path: state/out.db}}"
    report = run(graph_from(tmp_path, graph("{count: 0}", inbox=inbox)), tmp_path)
    out = report["nodes"]["out"]
    assert [p.seq for p in plugins.RECORDS["out"]] == list(range(200, 210))
    assert out["dropped_by_reason"] == {"corrupt": 200}
    assert out["durable"]["rows_quarantined"] == 200
    errors = [e["message"] for e in out["recent_errors"]]
    assert len(errors) == 1, errors
    assert "row 1-200" in errors[0] and "200 packets" in errors[0]
    assert quarantine_entries(path) == [(1, 200, 200)]


def test_a_row_whose_seq_range_was_changed_is_quarantined_not_delivered(
    tmp_path: Path,
) -> None:
    """The row's checksum covered its body and sizes, not its seq range: a row moved to
    other seqs by hand was delivered as if they were its own (and reported lost under its
    real ones). Its checksum covers `seq` and `last` now: it is damaged like a changed body."""
    path = tmp_path / "out.db"
    edited_by_hand(
        path,
        [(1, 10), (11, 10), (21, 1)],  # a one-packet row: `last` is NULL
        "UPDATE packets SET seq = seq + 100, last = last + 100 WHERE seq = 11",
        "UPDATE packets SET seq = 150 WHERE seq = 21",
    )
    again = DurableStore(path)
    backlog = again.open()
    good, damaged = read_all(again, 100)
    again.close()
    assert backlog.lost is not None and backlog.lost.count == 11  # the ledger owed 11..21
    assert good == list(range(1, 11))
    assert damaged == [*range(111, 121), 150]
    assert quarantine_entries(path) == [(111, 120, 10), (150, 150, 1)]


def test_a_row_whose_last_seq_and_sizes_were_cut_back_is_quarantined(tmp_path: Path) -> None:
    """`last` and `sizes` changed together (the row's last packet dropped from its range,
    its body kept): the sizes no longer add up to the body, so the row is damaged."""
    path = tmp_path / "out.db"
    edited_by_hand(
        path, [(1, 10)], "UPDATE packets SET last = 9, sizes = substr(sizes, 1, 36) WHERE seq = 1"
    )
    again = DurableStore(path)
    again.open()
    good, damaged = read_all(again, 100)
    again.close()
    assert (good, damaged) == ([], list(range(1, 10)))


def test_a_row_moved_onto_the_seqs_of_another_is_set_aside_at_open(tmp_path: Path) -> None:
    """A row moved by hand so that its seq range overlaps the row before it: the store's
    account of its file (which rows hold which seqs) assumed rows never overlap, and the
    reads around it quarantined good packets of the other row and stopped short of the rows
    after it. Now the open moves the overlapping row to the quarantine table, whole, before
    anything reads it, and says so; the other rows are delivered, every packet of them."""
    path = tmp_path / "out.db"
    edited_by_hand(
        path,
        [(1, 10), (11, 10), (21, 10), (31, 1)],
        "UPDATE packets SET seq = 5, last = 14 WHERE seq = 11",
        "UPDATE packets SET seq = 25 WHERE seq = 31",  # a one-packet row too
        settled=(11, 13),  # settled out of the row that is then moved
    )
    again = DurableStore(path)
    backlog = again.open()
    good, damaged = read_all(again, 4)
    again.close()
    # 11-13 were settled: by seq, the settled table says so of whatever row holds them
    assert (backlog.count, backlog.set_aside) == (20, 8)
    assert "rows 5-14, 25-25" in backlog.set_aside_why
    assert (good, damaged) == ([*range(1, 11), *range(21, 31)], [])
    assert quarantine_entries(path) == [(5, 14, 7), (25, 25, 1)]
    assert backlog.lost is not None and backlog.lost.count == 8  # not where the ledger said


def test_a_row_set_aside_at_open_makes_the_node_degraded_and_is_said(tmp_path: Path) -> None:
    path = tmp_path / "state" / "out.db"
    edited_by_hand(
        path, [(1, 10), (11, 10)], "UPDATE packets SET seq = 5, last = 14 WHERE seq = 11"
    )
    report = run(graph_from(tmp_path, graph("{count: 0}")), tmp_path)
    out = report["nodes"]["out"]
    assert [p.seq for p in plugins.RECORDS["out"]] == list(range(10))
    assert out["durable"]["rows_quarantined"] == 10
    assert "overlap the rows before them" in out["durable"]["last_error"]
    assert out["health"] == "degraded" and report["status"] == "degraded"


def test_a_row_whose_last_seq_was_set_below_its_first_is_set_aside_at_open(
    tmp_path: Path,
) -> None:
    """A batch row whose `last` was changed by hand to below its own seq: its range ran
    backwards, so the open counted it as fewer than no packets (15 queued of 30), the
    reads skipped packets 8-10 of the intact row before it and never reached it to
    quarantine it. Now the open sets it aside whole (its packets as its sizes say), like a
    row that overlaps another, and every packet of the other rows is delivered."""
    path = tmp_path / "out.db"
    edited_by_hand(
        path, [(1, 10), (11, 10), (21, 10)], "UPDATE packets SET last = 5 WHERE seq = 11"
    )
    again = DurableStore(path)
    backlog = again.open()
    good, damaged = read_all(again, 7)
    again.close()
    assert (good, damaged) == ([*range(1, 11), *range(21, 31)], [])
    assert (backlog.count, backlog.set_aside) == (20, 10)
    assert "rows 11-20" in backlog.set_aside_why
    assert quarantine_entries(path) == [(11, 20, 10)]
    assert backlog.lost is None  # its own seqs, quarantined: not also missing from the file


def test_a_row_whose_last_seq_was_raised_counts_the_packets_it_held(tmp_path: Path) -> None:
    """A 10-packet row whose `last` was raised by hand to 1000 was counted by its range: 990
    packets queued at open, 990 quarantined and dropped (its sizes and the one recent error
    named its range, not its packets), and a row after it took the raised range for an
    overlap and was set aside in its place. Now its range and its sizes disagree, so the open
    sets it aside whole as the packets its sizes hold, and the rows after it are delivered."""
    path = tmp_path / "state" / "out.db"
    edited_by_hand(
        path, [(1, 10), (11, 10), (21, 10)], "UPDATE packets SET last = 1000 WHERE seq = 11"
    )
    report = run(graph_from(tmp_path, graph("{count: 0}")), tmp_path)
    out = report["nodes"]["out"]
    assert [p.seq for p in plugins.RECORDS["out"]] == [*range(10), *range(20, 30)]
    assert out["durable"]["rows_quarantined"] == 10
    assert out["dropped_by_reason"].get("corrupt", 0) == 0  # never queued: set aside at open
    assert "10 packets" in out["durable"]["last_error"]
    assert "rows 11-20" in out["durable"]["last_error"]
    assert quarantine_entries(path) == [(11, 20, 10)]
    assert out["health"] == "degraded" and report["status"] == "degraded"
    # its packets are where the ledger owed them, quarantined: not lost as well
    assert out["durable"]["lost"] is None, out["durable"]["lost"]


def test_a_last_seq_raised_on_the_newest_row_is_set_aside_as_what_it_held(
    tmp_path: Path,
) -> None:
    """No row after it to overlap: the raised range was believed at open (1000 queued) and
    counted in full when the read found the row damaged."""
    path = tmp_path / "out.db"
    edited_by_hand(path, [(1, 10)], "UPDATE packets SET last = 1000 WHERE seq = 1")
    again = DurableStore(path)
    backlog = again.open()
    good, damaged = read_all(again, 100)
    again.close()
    assert (backlog.count, backlog.set_aside) == (0, 10)
    assert (good, damaged) == ([], [])
    assert quarantine_entries(path) == [(1, 10, 10)]


def test_a_raised_row_some_packets_of_which_settled_sets_aside_exactly_the_rest(
    tmp_path: Path,
) -> None:
    """As a damaged row found by a read (above): packets settled out of the row before its
    `last` was raised by hand were delivered, and are not counted again as set aside and
    'not delivered'. The open said 10 where 7 were still owed."""
    path = tmp_path / "out.db"
    edited_by_hand(path, [(1, 10)], "UPDATE packets SET last = 1000 WHERE seq = 1", settled=(1, 3))
    again = DurableStore(path)
    backlog = again.open()
    again.close()
    assert (backlog.count, backlog.lost) == (0, None)
    assert backlog.set_aside == 7, backlog.set_aside_why
    assert backlog.set_aside_why.startswith("7 packets")
    assert quarantine_entries(path) == [(4, 10, 7)]


def test_a_run_reports_only_the_owed_packets_of_a_row_set_aside_at_open(tmp_path: Path) -> None:
    """What the report, the node's last error and health say of such a row: the 7 packets
    still owed, not the 3 delivered before."""
    path = tmp_path / "state" / "out.db"
    edited_by_hand(
        path,
        [(1, 10), (11, 10)],
        "UPDATE packets SET last = 1000 WHERE seq = 11",
        settled=(11, 13),
    )
    report = run(graph_from(tmp_path, graph("{count: 0}")), tmp_path)
    out = report["nodes"]["out"]
    assert [p.seq for p in plugins.RECORDS["out"]] == list(range(10))
    assert out["durable"]["rows_quarantined"] == 7
    assert out["durable"]["last_error"].endswith(
        "7 packets of rows whose seq ranges overlap the rows before them, or are not the "
        "packets they hold (rows 11-20: changed by hand?) moved to its quarantine table, "
        "not delivered"
    )
    assert out["durable"]["lost"] is None and out["health"] == "degraded"
    assert quarantine_entries(path) == [(14, 20, 7)]


def test_an_entry_set_aside_at_open_exports_only_the_packets_it_took(tmp_path: Path) -> None:
    """The entry keeps the row as found, settled packets and all; reading it back gives the
    seven it took, each the packet written under its seq, and vouches for them (the row
    matches its checksum under its own range: only `last` was changed)."""
    path = tmp_path / "out.db"
    edited_by_hand(path, [(1, 10)], "UPDATE packets SET last = 1000 WHERE seq = 1", settled=(1, 3))
    store = DurableStore(path)
    store.open()  # sets it aside
    store.close()
    [entry] = entries_of(path)
    assert (entry.held, entry.packets, entry.intact) == ([(4, 10)], 7, True)
    assert numbered(entry.parts) == {seq: seq for seq in range(4, 11)}


def test_an_entry_set_aside_at_open_requeues_only_the_packets_it_took(tmp_path: Path) -> None:
    """Requeued, the seven owed packets come back at the end of the backlog as new rows and
    are read back intact; the three delivered before do not come back, and the entry is
    gone."""
    path = tmp_path / "out.db"
    edited_by_hand(path, [(1, 10)], "UPDATE packets SET last = 1000 WHERE seq = 1", settled=(1, 3))
    store = DurableStore(path)
    backlog = store.open()
    [entry] = store.query(entries_in)
    assert requeue_entries(store, backlog.next_seq, [entry.id]) == 7
    good, damaged = read_all(store, 100)
    store.close()
    assert damaged == [] and good == list(range(backlog.next_seq, backlog.next_seq + 7))
    again = DurableStore(path)
    reopened = again.open()
    got, _bad = again.read(100)
    again.close()
    assert (reopened.count, reopened.lost, reopened.set_aside) == (7, None, 0)
    assert [json.loads(body)["payload"]["n"] for _seq, _at, body in got] == list(range(4, 11))
    assert quarantine_entries(path) == []


def test_a_damaged_row_entry_exports_the_packets_it_took_and_says_it_is_damaged(
    tmp_path: Path,
) -> None:
    """A row whose checksum failed when read, 7 of its 40 packets settled before (the byte
    changed is in one of those): the entry gives back the 33 it took, flagged as not
    vouched for, and cannot be requeued (its packets would only be quarantined again)."""
    path = tmp_path / "out.db"
    damage_a_partly_settled_row(path)
    again = DurableStore(path)
    backlog = again.open()
    read_all(again, 5)
    [entry] = again.query(entries_in)
    with pytest.raises(StoreError, match=f"entry {entry.id} .* does not match its checksum"):
        requeue_entries(again, backlog.next_seq, [entry.id])
    again.close()
    held = [*range(5, 10), *range(13, 41)]
    assert (entry.held, entry.packets, entry.intact) == ([(5, 9), (13, 40)], 33, False)
    assert numbered(entry.parts) == {seq: seq for seq in held}


def test_a_row_whose_sizes_were_changed_is_set_aside_as_many_as_its_packets(
    tmp_path: Path,
) -> None:
    """Sizes cut to three entries: the open took the row for three packets, all of them
    settled before, and reported the seven it still owed lost. The sizes are not to be
    trusted (the row fails its checksum), so it counts its packets by its newlines: the
    seven are set aside, not lost, and read back at their seqs."""
    path = tmp_path / "out.db"
    edited_by_hand(
        path,
        [(1, 10)],
        "UPDATE packets SET sizes = substr(sizes, 1, 12) WHERE seq = 1",
        settled=(1, 3),
    )
    again = DurableStore(path)
    backlog = again.open()
    [entry] = again.query(entries_in)
    again.close()
    assert (backlog.count, backlog.lost, backlog.set_aside) == (0, None, 7)
    assert (entry.held, entry.packets, entry.intact) == ([(4, 10)], 7, False)
    assert numbered(entry.parts) == {seq: seq for seq in range(4, 11)}


def test_unknown_entries_are_not_requeued(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    store = DurableStore(path)
    backlog = store.open()
    with pytest.raises(StoreError, match="has no quarantine entry 3"):
        requeue_entries(store, backlog.next_seq, [3])
    store.close()


def test_seqs_settled_out_of_a_row_set_aside_are_not_used_again_without_a_ledger(
    tmp_path: Path,
) -> None:
    """The entry of a row set aside at open ends at the last packet it took (7); the seqs
    settled out of the row after that (8-10) stay in the settled table. An open without the
    ledger (deleted) started at seq 8, and the next open took new packets 8-10 for settled
    ones: never delivered, never reported. Seqs are never used again."""
    path = tmp_path / "out.db"
    edited_by_hand(path, [(1, 10)], "UPDATE packets SET last = 1000 WHERE seq = 1", settled=(8, 10))
    store = DurableStore(path)
    assert store.open().set_aside == 7
    store.close()
    path.with_name(path.name + ".ledger").unlink()
    again = DurableStore(path)
    backlog = again.open()
    again.commit(new_rows(backlog.next_seq, 5), [], 0)
    again.close()
    last = DurableStore(path)
    reopened = last.open()
    good, damaged = read_all(last, 100)
    last.close()
    assert backlog.next_seq == 11
    assert (reopened.count, damaged) == (5, [])
    assert good == list(range(11, 16))


def test_a_crash_after_a_row_was_set_aside_at_open_reports_no_false_loss(
    tmp_path: Path,
) -> None:
    """The open moves the row to the quarantine table in a commit of its own, then writes the
    ledger anew. A kill -9 between the two leaves the ledger of the run before, which still
    owes the row's packets: the next open found them missing from the file (they are in its
    quarantine table) and reported 7 packets lost, 'rows are missing from the store file'.
    The set-aside commit marks the file as newer than any ledger before it, so that ledger is
    recognised as behind the file (not trusted), as after a power loss."""
    path = tmp_path / "out.db"
    edited_by_hand(path, [(1, 10)], "UPDATE packets SET last = 1000 WHERE seq = 1", settled=(1, 3))
    ledger = path.with_name("out.db.ledger")
    before = ledger.read_bytes()
    store = DurableStore(path)
    assert store.open().set_aside == 7
    store.close()
    ledger.write_bytes(before)  # as a kill -9 after the set-aside commit leaves it
    again = DurableStore(path)
    backlog = again.open()
    again.close()
    assert backlog.lost is None, backlog.lost
    assert "could not check the store for lost packets" in backlog.note
    assert quarantine_entries(path) == [(4, 10, 7)]
    # and the ledger this open wrote is trusted by the next one
    third = DurableStore(path)
    backlog = third.open()
    third.close()
    assert (backlog.lost, backlog.note) == (None, "")


def test_an_entry_an_older_schnitzel_set_aside_gives_back_only_its_owed_packets(
    tmp_path: Path,
) -> None:
    """Before entries said which seqs they took, a row set aside at open went into the table
    as its whole range (seq 1, last 10, packets 10: 680e693's `_set_aside`), the 3 packets
    settled out of it before included; its `settled` ranges stayed in the file. Such an entry
    was read back as taking all 10, and requeue delivered the 3 settled ones a second time.
    The settled ranges in the file say which it still owed."""
    path = tmp_path / "out.db"
    edited_by_hand(path, [(1, 10)], "UPDATE packets SET last = 1000 WHERE seq = 1", settled=(1, 3))
    store = DurableStore(path)
    store.open()
    store.close()
    with closing(sqlite3.connect(path)) as db:  # the entry as that version wrote it
        db.execute(
            "UPDATE quarantine SET seq = 1, last = 10, packets = 10, row_seq = NULL, held = NULL"
        )
        db.commit()
    [entry] = entries_of(path)
    assert (entry.held, entry.packets, entry.intact) == ([(4, 10)], 7, True)
    store = DurableStore(path)
    backlog = store.open()
    assert requeue_entries(store, backlog.next_seq, [entry.id]) == 7
    good, _damaged = store.read(100)
    store.close()
    assert [json.loads(body)["payload"]["n"] for _seq, _at, body in good] == list(range(4, 11))


def test_a_loss_beside_a_row_set_aside_is_counted_whole_by_a_count_only_ledger(
    tmp_path: Path,
) -> None:
    """A ledger too fragmented to list its runs keeps only the count owed (12: row 1-10 less
    the 3 settled, and row 11-15). Row 1's `last` raised by hand (set aside at its own seqs)
    and row 11 deleted: the 5 packets of row 11 are lost. The open took the set-aside row as
    holding all 10 of its seqs, the 3 settled ones too, and reported 2 lost."""
    from schnitzel.durable.ledger import Ledger

    path = tmp_path / "out.db"
    edited_by_hand(
        path,
        [(1, 10), (11, 5)],
        "UPDATE packets SET last = 1000 WHERE seq = 1",
        "DELETE FROM packets WHERE seq = 11",
        settled=(1, 3),
    )
    ledger = Ledger(path.with_name("out.db.ledger"))
    state = ledger.read()
    assert state is not None and state.owed_count == 12
    state.runs = None  # as the ledger writes it when the runs do not fit its slot
    ledger.open()
    ledger.write(state)
    ledger.close()
    store = DurableStore(path)
    backlog = store.open()
    store.close()
    assert backlog.set_aside == 7
    assert backlog.lost is not None and backlog.lost.count == 5, backlog.lost
