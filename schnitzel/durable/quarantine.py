"""A store's quarantine entries read back for an operator (`schnitzel quarantine`): listed,
their packets exported, or requeued into the backlog.

Of an entry that took a row whole (schnitzel/durable/quarantine_table.py), only the packets
it took count: its body also holds the packets settled out of the row before (delivered),
and those are never exported or requeued with it. An entry whose checksum no longer matches
says so (`intact`): its packets are what is left of them, and when its seq range was changed
by hand they may not even be the packets of the seqs it claims; such an entry can be
exported (to look at, or re-send what one trusts) but not requeued.
"""

from __future__ import annotations

import sqlite3
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from schnitzel.durable.ledger import missing
from schnitzel.durable.quarantine_table import held_runs, whole_row_columns
from schnitzel.durable.rows import row_intact, settled_runs, unpack
from schnitzel.durable.store import DurableStore, StoreError, StoreRow

__all__ = ["QuarantineEntry", "quarantine_entries", "requeue_entries"]

Run = tuple[int, int]
"""An inclusive range of store seqs."""


@dataclass(frozen=True)
class QuarantineEntry:
    """One entry of a store's quarantine table, as an operator reads it."""

    id: int
    seq: int
    last: int
    packets: int
    """How many packets it took (not delivered; counted in `durable.rows_quarantined`)."""
    enqueued: float
    reason: str
    at: float
    held: list[Run]
    """The store seqs it took; any other packet its body holds had settled before."""
    intact: bool
    """Its checksum matches: its packets, and the seqs they are under, are as written."""
    parts: dict[int, bytes] | None
    """Store seq -> encoded packet, for each seq it took; None when it cannot be told which
    packet is which (an entry written before `held` existed, of part of a row)."""


_COLUMNS = "id, seq, {last}, {packets}, enqueued, reason, at, body, {sizes}, checksum"
"""Of an entry; `last`, `packets` and `sizes` came with format 4 (before: one packet each)."""


def quarantine_entries(db: sqlite3.Connection, ids: Sequence[int] = ()) -> list[QuarantineEntry]:
    """The entries `ids` (all when empty) of a store's quarantine table, in id order; of a
    store of any format (one not yet migrated is read as it is, not changed)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(quarantine)")}
    batch = {"last", "packets", "sizes"} <= have
    columns = _COLUMNS.format(
        last="last" if batch else "NULL",
        packets="packets" if batch else "1",
        sizes="sizes" if batch else "NULL",
    )
    whole = "row_seq, held" if whole_row_columns(db) else "NULL, NULL"
    sql = f"SELECT {columns}, {whole} FROM quarantine"
    if ids:
        sql += f" WHERE id IN ({','.join('?' * len(ids))})"
    settled: list[Run] = []
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'settled'").fetchone():
        settled = settled_runs(db)
    return [_entry(settled, *row) for row in db.execute(sql + " ORDER BY id", tuple(ids))]


def requeue_entries(store: DurableStore, next_seq: int, ids: Sequence[int]) -> int:
    """Put the packets the entries `ids` took back at the end of the backlog of `store` (open,
    its `Backlog.next_seq` given), each as a new row of its own with its checksum, and remove
    the entries, in one transaction; how many packets. Refused, naming the entry, for an
    entry that does not exist or whose packets cannot be vouched for."""
    wanted = list(dict.fromkeys(ids))
    entries = store.query(lambda db: quarantine_entries(db, wanted))
    found = {entry.id for entry in entries}
    for entry_id in wanted:
        if entry_id not in found:
            raise StoreError(
                f"durable store {str(store.path)!r} has no quarantine entry {entry_id}; "
                "`schnitzel quarantine list` shows the entries"
            )
    for entry in entries:
        if not entry.intact or entry.parts is None:
            raise StoreError(
                f"quarantine entry {entry.id} of durable store {str(store.path)!r} does not "
                "match its checksum (changed on disk): its packets cannot be vouched for, so "
                "it is not requeued; `schnitzel quarantine export` them and re-send what you "
                "trust"
            )
    now = time.time()
    rows: list[StoreRow] = []
    for entry in entries:
        assert entry.parts is not None
        for _seq, body in sorted(entry.parts.items()):
            rows.append((next_seq + len(rows), now, body, zlib.adler32(body)))

    def remove(db: sqlite3.Connection) -> None:
        db.executemany("DELETE FROM quarantine WHERE id = ?", [(e.id,) for e in entries])

    store.commit([], [], 0, extra=remove, restored=rows)
    return len(rows)


def _entry(
    settled: list[Run],
    entry_id: int,
    seq: int,
    last: int | None,
    packets: int,
    enqueued: float,
    reason: str,
    at: float,
    body: object,
    sizes: object,
    stored: object,
    row_seq: int | None,
    held: str | None,
) -> QuarantineEntry:
    end = seq if last is None else last
    runs = [(seq, end)]
    if row_seq is None and sizes is None and end == seq:  # one packet, taken alone
        row_seq = seq
    elif row_seq is None:  # a whole row written before entries said which seqs they took
        count = len(sizes) // 4 if isinstance(sizes, bytes) else 0
        row_seq = seq if count == packets == end - seq + 1 else None  # its whole range
        if row_seq is not None:  # a row set aside at open, as its range: the packets settled
            # out of it before (their `settled` ranges stay in the file) were delivered
            runs = missing(runs, settled)
            packets = sum(b - a + 1 for a, b in runs)
    if held is not None:
        try:
            runs = held_runs(held)
        except ValueError:  # changed by hand: which packets it took is not known
            runs, row_seq = [(seq, end)], None
    said = (entry_id, seq, end, packets, enqueued, reason, at, runs)
    if isinstance(body, str):  # an edit with sqlite3's text functions leaves text
        body = body.encode()
    if row_seq is None or not isinstance(body, bytes):
        return QuarantineEntry(*said, intact=False, parts=None)
    intact, pieces = _cut(row_seq, body, sizes, stored)
    parts = {
        s: pieces[s - row_seq]
        for first, last_seq in runs
        for s in range(first, last_seq + 1)
        if 0 <= s - row_seq < len(pieces)
    }
    return QuarantineEntry(*said, intact=intact, parts=parts)


def _cut(row_seq: int, body: bytes, sizes: object, stored: object) -> tuple[bool, list[bytes]]:
    """Whether a row's body (first seq `row_seq`) matches its checksum, and its packets: as
    its sizes cut them or, when they no longer fit the body, at its newlines (one between
    two packets), as the store counted them when it set the row aside."""
    if sizes is None:
        # A packet quarantined alone from an intact row keeps the plain Adler-32 of itself;
        # a one-packet row taken whole, the checksum it was stored with.
        intact = stored == zlib.adler32(body) or row_intact(row_seq, None, body, None, stored)
        return intact, [body]
    fitted = None
    if isinstance(sizes, bytes) and len(sizes) >= 8:
        fitted = unpack(row_seq, row_seq + len(sizes) // 4 - 1, body, sizes)
    pieces = body.split(b"\n") if fitted is None else fitted
    intact = row_intact(row_seq, row_seq + len(pieces) - 1, body, sizes, stored)
    return intact, pieces
