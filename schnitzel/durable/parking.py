"""Parked packets: the poison pills of a durable node, kept in its store apart from the backlog.

A packet the node's plugin refused while others passed (`on_error: park`) moves from the
`packets` table to the `parked` table of the same SQLite file, in the same transaction that
settles its batch, so it is never in neither table and never in both. It waits there until an
operator requeues it (back to the end of the backlog, as a new row) or drops it (gone for
good, counted). Parked rows survive restarts; they are counted when the store opens.

    parked: id (grows, never reused), packet_seq (its seq in `packets`), enqueued, parked_at,
            reason (the error), packet_id, body (the encoded packet), checksum (of body,
            as it was in `packets`)

Every change is a `ParkingChanges` the inbox hands to `DurableStore.commit` as its `extra`,
applied inside its transaction: a failed commit (a full disk) leaves nothing of it, and it is
tried again. The store's ledger (schnitzel/durable/ledger.py) never owes a parked packet: a
parked packet leaves `packets` among the commit's deletes (read from its row with
`DurableStore.packets` just before, copied here), and a requeued one comes back as one of
the commit's new rows (a new seq, owed from then on, a row of its own), its checksum made
from the one it was parked with, so a body changed while parked is caught when it is read
back.
The bound (`max_parked`, `max_parked_bytes`) is kept in the same transaction: over it, the
oldest parked packets are dropped and counted (docs/contracts/delivery.md says why oldest).
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from schnitzel.contract.codec import decode_packet, packet_to_dict
from schnitzel.errors import PacketDecodeError

if TYPE_CHECKING:
    from schnitzel.durable.quarantine import QuarantineRequeue

__all__ = [
    "EXCERPT_CHARS",
    "ParkedRow",
    "ParkingChanges",
    "Selection",
    "create_parked_table",
    "parked_bodies_naming",
    "parked_totals",
    "read_parked",
]

EXCERPT_CHARS = 120
"""How much of a parked packet's payload a listing shows."""
REASON_CHARS = 2000
"""Longest error text kept with a parked packet."""


Requeued = tuple[int, float, bytes, int]
"""A requeued row as the store inserts it: (seq, enqueued, body, checksum), a `StoreRow`."""


def create_parked_table(db: sqlite3.Connection) -> None:
    """Add the `parked` table (inside the store's create or migrate transaction)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS parked (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "packet_seq INTEGER NOT NULL, enqueued REAL NOT NULL, parked_at REAL NOT NULL, "
        "reason TEXT NOT NULL, packet_id TEXT NOT NULL, body BLOB NOT NULL, "
        "checksum INTEGER NOT NULL DEFAULT -1)"
    )
    columns = {row[1] for row in db.execute("PRAGMA table_info(parked)")}
    if "checksum" not in columns:  # a store parked into before rows carried checksums
        db.execute("ALTER TABLE parked ADD COLUMN checksum INTEGER NOT NULL DEFAULT -1")
        sums = [(zlib.adler32(body), i) for i, body in db.execute("SELECT id, body FROM parked")]
        db.executemany("UPDATE parked SET checksum = ? WHERE id = ?", sums)


@dataclass(frozen=True)
class Selection:
    """Which parked packets a requeue or drop means: `ids` (each by its parked id), the
    inclusive range `first`..`last`, or every one (`everything`)."""

    ids: tuple[int, ...] = ()
    first: int | None = None
    last: int | None = None
    everything: bool = False

    def where(self) -> tuple[str, list[int]]:
        """The SQL condition on `parked.id` and its parameters."""
        if self.everything:
            return "1", []
        if self.first is not None and self.last is not None:
            return "id BETWEEN ? AND ?", [self.first, self.last]
        marks = ",".join("?" * len(self.ids)) or "NULL"
        return f"id IN ({marks})", list(self.ids)

    def describe(self) -> str:
        if self.everything:
            return "all"
        if self.first is not None:
            return f"{self.first}-{self.last}"
        return ",".join(str(i) for i in self.ids)


@dataclass
class ParkingChanges:
    """What one commit does to the parked table, and (filled in by `apply`) what it did."""

    park: list[tuple[int, float, str, str]] = field(default_factory=list)
    """(packet seq, parked at, reason, packet id) of packets to move from `packets`."""
    park_found: dict[int, tuple[float, bytes, int]] = field(default_factory=dict)
    """Filled by `plan_park` before the commit: packet seq -> (enqueued, body, checksum) of
    the packets to park the store still holds."""
    requeue: Selection | None = None
    requeue_base_seq: int = 0
    """The first `packets.seq` requeued rows take (seqs reserved by the inbox)."""
    requeue_room: int = 0
    """How many seqs the inbox reserved: at most that many rows are requeued at once."""
    requeue_at: float = 0.0
    drop: Selection | None = None
    quarantine: QuarantineRequeue | None = None
    """Quarantine entries to requeue (`schnitzel ctl quarantine requeue`): planned with the
    parked rows to requeue, their rows inserted by the same commit, the entries removed by
    `apply`."""
    max_parked: int = 1 << 62
    max_parked_bytes: int = 1 << 62
    # results
    parked: int = 0
    requeued: int = 0
    requeued_bytes: int = 0
    requeued_ids: list[int] = field(default_factory=list)
    requeued_rows: list[Requeued] = field(default_factory=list)
    """Filled by `plan_requeue` before the commit: the rows the store inserts into `packets`
    with its own new rows (and its ledger then owes), so a requeued row is written exactly as
    any other."""
    dropped: int = 0
    overflowed: int = 0
    total: int = 0
    total_bytes: int = 0

    def __bool__(self) -> bool:
        return bool(self.park) or self.restores or self.drop is not None

    @property
    def restores(self) -> bool:
        """Whether it moves rows back into the backlog (parked, or quarantined ones)."""
        return self.requeue is not None or self.quarantine is not None

    @property
    def restored_rows(self) -> list[Requeued]:
        """The rows the commit inserts besides its new ones: requeued parked packets, or the
        packets of requeued quarantine entries (one request per commit: one of the two)."""
        quarantine = self.quarantine
        if quarantine is None or quarantine.refused:
            return self.requeued_rows
        return self.requeued_rows + quarantine.rows

    def plan_park(self, read: Callable[[list[int]], dict[int, tuple[float, bytes, int]]]) -> None:
        """Read the packets to park (`DurableStore.packets`), on the store's thread just
        before the commit."""
        self.park_found = read([seq for seq, _at, _reason, _pid in self.park]) if self.park else {}

    def plan_requeue(self, db: sqlite3.Connection) -> None:
        """Read the rows to requeue, on the store's thread just before the commit (nothing
        writes between the two): `requeued_rows` for the commit to insert, `requeued_ids`
        for `apply` to delete. Rows parked by this same commit are not among them."""
        self.requeued_rows, self.requeued_ids, self.requeued_bytes = [], [], 0
        if self.quarantine is not None:
            self.quarantine.plan(db)
        if self.requeue is None:
            return
        where, params = self.requeue.where()
        rows = db.execute(
            f"SELECT id, body, checksum FROM parked WHERE {where} ORDER BY id LIMIT ?",
            [*params, self.requeue_room],
        ).fetchall()
        seq = self.requeue_base_seq
        for parked_id, body, stored in rows:
            self.requeued_rows.append((seq, self.requeue_at, bytes(body), stored))
            self.requeued_ids.append(parked_id)
            self.requeued_bytes += len(body)
            seq += 1
        self.requeued = len(self.requeued_rows)

    def apply(self, db: sqlite3.Connection) -> None:
        """Run inside the commit's transaction, before its deletes (which include the seqs
        of the rows `park` copies here)."""
        self.parked = self.dropped = self.overflowed = 0
        if self.park:
            found = self.park_found
            rows = [
                (seq, found[seq][0], at, reason[:REASON_CHARS], pid, found[seq][1], found[seq][2])
                for seq, at, reason, pid in self.park
                if seq in found
            ]
            db.executemany(
                "INSERT INTO parked "
                "(packet_seq, enqueued, parked_at, reason, packet_id, body, checksum) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self.parked = len(rows)
        if self.requeued_ids:  # the same rows go into `packets` in this transaction
            db.executemany(
                "DELETE FROM parked WHERE id = ?", [(parked_id,) for parked_id in self.requeued_ids]
            )
        if self.quarantine is not None:
            self.quarantine.apply(db)
        if self.drop is not None:
            where, params = self.drop.where()
            self.dropped = db.execute(f"DELETE FROM parked WHERE {where}", params).rowcount
        if self.park:
            self.overflowed = _keep_bound(db, self.max_parked, self.max_parked_bytes)
        self.total, self.total_bytes = parked_totals(db)


def _keep_bound(db: sqlite3.Connection, max_count: int, max_bytes: int) -> int:
    """Drop the oldest parked rows until the table is within its bound; how many went."""
    count, size = parked_totals(db)
    if count <= max_count and size <= max_bytes:
        return 0
    doomed: list[tuple[int]] = []
    oldest_first = db.execute("SELECT id, length(body) FROM parked ORDER BY id").fetchall()
    for parked_id, length in oldest_first:  # read whole first: no delete under a live cursor
        if count <= max_count and size <= max_bytes:
            break
        doomed.append((parked_id,))
        count -= 1
        size -= length
    db.executemany("DELETE FROM parked WHERE id = ?", doomed)
    return len(doomed)


def parked_bodies_naming(db: sqlite3.Connection, key: bytes) -> list[bytes]:
    """The encoded parked packets that contain `key`."""
    return [
        bytes(body)
        for (body,) in db.execute("SELECT body FROM parked WHERE instr(body, ?) > 0", (key,))
    ]


def parked_totals(db: sqlite3.Connection) -> tuple[int, int]:
    """(count, bytes) of the parked packets."""
    count, size = db.execute(
        "SELECT count(*), coalesce(sum(length(body)), 0) FROM parked"
    ).fetchone()
    return int(count), int(size)


@dataclass(frozen=True)
class ParkedRow:
    """One parked packet as an operator sees it."""

    id: int
    packet_seq: int
    packet_id: str
    enqueued: float
    parked_at: float
    reason: str
    size: int
    excerpt: str
    """The start of the payload (or of the whole row when it does not decode)."""
    intact: bool = True
    """Its body still matches the checksum it was parked with (a requeue of a changed one
    is quarantined when read back, never delivered)."""
    packet: dict[str, object] | None = None
    """The whole packet (its portable form), only when one was asked for."""

    def to_json(self) -> dict[str, object]:
        shown: dict[str, object] = {
            "seq": self.id,
            "packet_id": self.packet_id,
            "packet_seq": self.packet_seq,
            "enqueued": self.enqueued,
            "parked_at": self.parked_at,
            "reason": self.reason,
            "bytes": self.size,
            "excerpt": self.excerpt,
            "intact": self.intact,
        }
        if self.packet is not None:
            shown["packet"] = self.packet
        return shown


def read_parked(
    db: sqlite3.Connection, after: int = 0, limit: int = 100, only: int | None = None
) -> list[ParkedRow]:
    """Parked packets oldest first (ids above `after`, at most `limit`), or the one `only`
    with its whole packet."""
    if only is not None:
        rows = db.execute(
            "SELECT id, packet_seq, packet_id, enqueued, parked_at, reason, body, checksum "
            "FROM parked WHERE id = ?",
            (only,),
        ).fetchall()
    else:
        rows = db.execute(
            "SELECT id, packet_seq, packet_id, enqueued, parked_at, reason, body, checksum "
            "FROM parked WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
    return [_shown(row, whole=only is not None) for row in rows]


def _shown(row: tuple[int, int, str, float, float, str, bytes, int], whole: bool) -> ParkedRow:
    parked_id, seq, packet_id, enqueued, parked_at, reason, body, stored = row
    text = bytes(body).decode("utf-8", "replace")
    packet: dict[str, object] | None = None
    excerpt = text
    try:
        decoded = decode_packet(body)
    except PacketDecodeError:
        if whole:
            packet = {"undecodable": text}
    else:
        excerpt = json.dumps(decoded.payload, ensure_ascii=False, default=str)
        if whole:
            packet = packet_to_dict(decoded)
    if len(excerpt) > EXCERPT_CHARS:
        excerpt = excerpt[: EXCERPT_CHARS - 3] + "..."
    intact = zlib.adler32(bytes(body)) == stored  # the store's `checksum`
    return ParkedRow(
        parked_id, seq, packet_id, enqueued, parked_at, reason, len(body), excerpt, intact, packet
    )
