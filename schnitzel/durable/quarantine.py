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
from dataclasses import dataclass, field

from schnitzel.durable.ledger import missing
from schnitzel.durable.quarantine_table import held_runs, held_text, whole_row_columns
from schnitzel.durable.rows import row_intact, settled_runs, unpack
from schnitzel.durable.store import DurableStore, StoreError, StoreRow

__all__ = [
    "QuarantineEntry",
    "QuarantineRequeue",
    "not_vouched_for",
    "quarantine_entries",
    "requeue_entries",
    "requeueable",
]

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

    def to_json(self) -> dict[str, object]:
        """The entry as `schnitzel quarantine list --json` and `schnitzel ctl quarantine list`
        show it: its id, the store seqs it took ("5-9,13-40"), how many, intact or not, when
        and why."""
        return {
            "id": self.id,
            "seqs": held_text(self.held),
            "packets": self.packets,
            "intact": self.intact,
            "at": self.at,
            "reason": self.reason,
        }


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
    the entries, in one transaction; how many packets. Refused (StoreError), naming the
    entry, for an entry that does not exist or whose packets cannot be vouched for."""
    requeue = QuarantineRequeue(str(store.path), tuple(dict.fromkeys(ids)), next_seq, time.time())
    store.query(requeue.plan)
    if requeue.refused:
        raise StoreError(requeue.refused)
    store.commit([], [], 0, extra=requeue.apply, restored=requeue.rows)
    return len(requeue.rows)


@dataclass
class QuarantineRequeue:
    """A requeue of quarantine entries, done by one commit of their store: `plan` (on the
    store's thread, just before the commit: nothing writes in between) reads the entries and
    makes `rows`, which the commit inserts as restored rows (new seqs from `base_seq`, each
    packet a row of its own with its checksum), and `apply` (inside the commit's transaction)
    removes the entries. The stopped store's `requeue_entries` and a running durable inbox
    (`schnitzel ctl quarantine requeue`, through its commit loop) both requeue this way."""

    store: str
    """The store's path, for the words of a refusal."""
    ids: tuple[int, ...]
    base_seq: int = 0
    """The store seq the first requeued packet takes."""
    at: float = 0.0
    """When the packets were requeued (their `enqueued`)."""
    room: int | None = None
    """Most packets it may put back (the seqs a running inbox reserved); None: any number."""
    rows: list[StoreRow] = field(default_factory=list)
    """Filled by `plan`: the rows to insert, in entry and seq order."""
    size: int = 0
    """Filled by `plan`: bytes of the rows."""
    refused: str = ""
    """Filled by `plan`: why nothing is requeued ("" when the entries can be)."""

    def plan(self, db: sqlite3.Connection) -> None:
        """Read the entries and make the rows, or say in `refused` why not (an entry that
        does not exist, or whose packets cannot be vouched for)."""
        self.rows, self.size, self.refused = [], 0, ""
        if not self.ids:  # (quarantine_entries would read every entry)
            return
        entries = quarantine_entries(db, self.ids)
        self.refused = _refusal(self.store, self.ids, entries)
        if self.refused:
            return
        seq = self.base_seq
        for entry in entries:
            assert entry.parts is not None  # _refusal: every entry is vouched for
            for _seq, body in sorted(entry.parts.items()):
                self.rows.append((seq, self.at, body, zlib.adler32(body)))
                self.size += len(body)
                seq += 1
        if self.room is not None and len(self.rows) > self.room:
            self.rows, self.size = [], 0
            self.refused = (
                f"quarantine entries {_ids_text(self.ids)} of durable store {self.store!r} "
                "took more packets than when the requeue was asked for (changed on disk "
                "meanwhile); list them again and requeue what you still want"
            )

    def apply(self, db: sqlite3.Connection) -> None:
        """Remove the entries (inside the commit that inserts `rows`); nothing if refused."""
        if not self.refused:
            db.executemany("DELETE FROM quarantine WHERE id = ?", [(i,) for i in self.ids])


def requeueable(
    db: sqlite3.Connection, store: str
) -> tuple[tuple[int, ...], list[tuple[int, str]]]:
    """Of every entry of a store's quarantine table: the ids of those that can be requeued,
    and (id, why) of those that cannot (`--all` requeues the first and names the others)."""
    ids: list[int] = []
    skipped: list[tuple[int, str]] = []
    for entry in quarantine_entries(db):
        if entry.intact and entry.parts is not None:
            ids.append(entry.id)
        else:
            skipped.append((entry.id, not_vouched_for(entry.id, store)))
    return tuple(ids), skipped


def not_vouched_for(entry_id: int, store: str) -> str:
    """Why entry `entry_id` of `store` is not requeued: it does not match its checksum."""
    return (
        f"quarantine entry {entry_id} of durable store {store!r} does not "
        "match its checksum (changed on disk): its packets cannot be vouched for, so "
        "it is not requeued; look at them (`schnitzel quarantine export --damaged STORE "
        "ID`) and re-send what you trust"
    )


def _refusal(store: str, ids: Sequence[int], entries: list[QuarantineEntry]) -> str:
    found = {entry.id for entry in entries}
    for entry_id in ids:
        if entry_id not in found:
            return (
                f"durable store {store!r} has no quarantine entry {entry_id}; "
                "`schnitzel quarantine list STORE` shows the entries (`schnitzel ctl quarantine "
                "list` on a running graph)"
            )
    for entry in entries:
        if not entry.intact or entry.parts is None:
            return not_vouched_for(entry.id, store)
    return ""


def _ids_text(ids: Sequence[int]) -> str:
    return ",".join(str(i) for i in ids)


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
