"""Batch rows (schnitzel/durable/rows.py) as the inbox counts them: the bytes of a backlog
read back at open, and the sizes of the packets of a damaged row."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

import schnitzel.durable.store as store_module
from schnitzel.durable.rows import row_intact
from schnitzel.durable.store import DurableStore, NewRow, NewRows
from tests.runtime import plugins
from tests.runtime.harness import graph_from, run
from tests.runtime.test_durable import graph


def new_rows(first: int, n: int) -> list[NewRow]:
    return [(seq, 1.0, b'{"n":%d}' % seq) for seq in range(first, first + n)]


def test_new_rows_enqueued_at_a_whole_second_are_stored(tmp_path: Path) -> None:
    """`NewRows.enqueued` given as an int (a float as the type says, a whole second) is the
    time of every row: `_packed_run` took it for a list of times, one per packet, and the
    commit raised TypeError."""
    store = DurableStore(tmp_path / "out.db")
    store.open()
    store.commit(NewRows(1, 5, [b'{"n":1}', b'{"n":2}']), [], 0)
    store.close()
    with closing(sqlite3.connect(tmp_path / "out.db")) as db:
        assert db.execute("SELECT seq, last, enqueued FROM packets").fetchall() == [(1, 2, 5.0)]


def test_a_reopened_backlog_counts_its_packets_bytes_not_the_newlines_between_them(
    tmp_path: Path,
) -> None:
    store = DurableStore(tmp_path / "out.db")
    store.open()
    rows = new_rows(1, 600)  # three batch rows
    store.commit(rows, [], 0)
    store.commit([], [(1, 10)], 0)  # cut into the first
    store.close()
    again = DurableStore(tmp_path / "out.db")
    backlog = again.open()
    again.close()
    assert backlog.count == 590
    assert backlog.bytes == sum(len(body) for _seq, _at, body in rows[10:])


def test_a_replayed_backlog_once_delivered_leaves_no_bytes_counted(tmp_path: Path) -> None:
    """The report's `durable.bytes` (and what `max_bytes` is checked against) comes back to 0
    once the backlog a run found in its store is delivered."""
    plugins.DOWN.add("out")
    sink = "tests.runtime.plugins:Backend"
    first = run(graph_from(tmp_path, graph("{count: 1000}", sink)), tmp_path, max_packets=1000)
    assert first["nodes"]["out"]["durable"]["backlog"] == 1000
    plugins.DOWN.clear()
    second = run(graph_from(tmp_path, graph("{count: 0}", sink)), tmp_path)
    durable = second["nodes"]["out"]["durable"]
    assert (durable["replayed"], durable["settled"]) == (1000, 1000)
    assert (durable["backlog"], durable["bytes"]) == (0, 0)


def test_a_row_whose_sizes_were_changed_counts_its_body_shared_out(tmp_path: Path) -> None:
    """A changed byte in a row's `sizes` damages the row (its checksum covers them); the
    sizes read back are not believed, so the inbox forgets the bytes the row held and not
    a length from the damaged field (a 2 GB one made its byte count negative)."""
    path = tmp_path / "out.db"
    store = DurableStore(path)
    store.open()
    rows = new_rows(1, 10)
    store.commit(rows, [], 0)
    store.close()
    with closing(sqlite3.connect(path)) as db:
        (sizes,) = db.execute("SELECT sizes FROM packets").fetchone()
        changed = bytearray(sizes)
        changed[3] = 0x7F  # the high byte of the first packet's length
        db.execute("UPDATE packets SET sizes = ?", (bytes(changed),))
        db.commit()
    again = DurableStore(path)
    backlog = again.open()
    good, damaged = again.read(100)
    displaced = again.displace(100)
    again.close()
    stored = sum(len(body) for _seq, _at, body in rows)
    assert backlog.bytes == stored
    assert good == [] and len(damaged) == 10
    assert sum(size for _seq, _at, size, _why in damaged) == stored
    assert displaced == (0, 0, [])


def test_a_row_whose_sizes_are_no_longer_a_blob_names_no_blob_and_is_quarantined(
    tmp_path: Path,
) -> None:
    """The blob-ref scan at open (`bodies_naming`) reads every row naming a key; a row whose
    `sizes` column changed type (one bit of its record header) is damaged: it names nothing
    and is quarantined when read, as `read` does, instead of a TypeError that stopped the
    inbox from opening."""
    path = tmp_path / "out.db"
    store = DurableStore(path)
    store.open()
    store.commit(new_rows(1, 10), [], 0)
    store.close()
    with closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE packets SET sizes = CAST(sizes AS TEXT)")
        db.commit()
    again = DurableStore(path)
    again.open()
    try:
        assert again.bodies_naming(b'"n"') == []
        good, damaged = again.read(100)
    finally:
        again.close()
    assert good == [] and [seq for seq, *_ in damaged] == list(range(1, 11))


def test_a_batch_row_read_back_a_few_packets_at_a_time_is_checked_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An inbox with a small `max` reads its backlog back a few packets at a time. Each read
    fetched the whole row again and checked and split all of it: with `max: 1` a row of 256
    packets was checksummed 256 times (40x the CPU per packet of one-packet rows,
    bench/bench_durable_read_window.py). The row's packets are checked once and kept for
    the reads that follow."""
    store = DurableStore(tmp_path / "out.db")
    store.open()
    rows = new_rows(1, 512)  # two full batch rows
    store.commit(rows, [], 0)
    checks: list[int] = []

    def counted(first: int, last: int | None, body: object, sizes: object, stored: object) -> bool:
        checks.append(1)
        return row_intact(first, last, body, sizes, stored)

    monkeypatch.setattr(store_module, "row_intact", counted)
    got: list[bytes] = []
    while batch := store.read(1)[0]:
        got.extend(body for _seq, _at, body in batch)
        store.commit([], [(batch[0][0], batch[0][0])], 0)  # settled as it goes
    store.close()
    assert got == [body for _seq, _at, body in rows]
    assert len(checks) == 2


def test_a_row_changed_on_disk_before_it_is_read_is_still_quarantined_whole(
    tmp_path: Path,
) -> None:
    """What is kept of a row after its check is only what the check passed: a row read
    first after it changed on disk is quarantined, every packet of it."""
    path = tmp_path / "out.db"
    store = DurableStore(path)
    store.open()
    store.commit(new_rows(1, 10), [], 0)
    store.commit(new_rows(11, 10), [], 0)
    assert [seq for seq, _at, _body in store.read(3)[0]] == [1, 2, 3]
    db = store._db
    assert db is not None
    db.execute(
        "UPDATE packets SET body = substr(body, 1, 20) || 'X' || substr(body, 22) WHERE seq = 11"
    )
    good, damaged = store.read(100)
    store.close()
    assert [seq for seq, *_ in good] == list(range(4, 11))
    assert [seq for seq, *_ in damaged] == list(range(11, 21))
