"""The SQLite file behind one durable inbox.

One table of encoded packets keyed by a sequence number that only grows, so replay order is
arrival order. A row holds the packets of one run of consecutive seqs (up to 256 of one
commit: a batch row, schnitzel/durable/rows.py) and a checksum (Adler-32) of them, checked
when it is read back; a row stays until every packet in it settled, the packets settled out
of it meanwhile recorded in the `settled` table in the same transaction. The file is in
WAL mode; every write is one transaction (a group commit of many packets and deletes). A
`DurableStore` is used from one thread only: the inbox runs every call on its own
single-thread executor, so calls run in the order they were made.

Damage is never a healthy empty store (docs/contracts/delivery.md, "Damage a store detects"):

- a file SQLite cannot read is renamed beside itself (`.corrupt-<UTC time>`) and a new,
  empty store takes its place: never emptied in place, never deleted;
- the ledger (`<store>.ledger`, schnitzel/durable/ledger.py) says which rows the store owes;
  rows it owes that the file no longer holds are reported as lost at open (`Backlog.lost`);
- a row whose body no longer matches its checksum, or no longer decodes, is moved to the
  `quarantine` table of the same file, counted, and never delivered.

Every change to the `packets` table goes through `_transact`, which keeps the ledger in step.
Another module may add its own table to the file and move packets in or out in the same
transaction: `commit(..., extra=..., restored=...)` (packets in: new seqs above every owed
one, each with its `checksum`; packets out: their seqs among the deletes, read with
`packets()` and copied by `extra` first) and `move_out(seqs, copy)` (packets out, neither
lost nor settled) are that seam. The `parked`
table (schnitzel/durable/parking.py) is one: its rows keep their checksum, are not owed, and
a requeue inserts them again as new rows.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import os
import sqlite3
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple, TypeVar

from schnitzel.contract.run_report import LostReport
from schnitzel.durable.ledger import (
    LEDGER_SUFFIX,
    Ledger,
    LedgerState,
    LedgerUnreadable,
    Owed,
    Run,
    missing,
)
from schnitzel.durable.lock import StoreLock, real_path
from schnitzel.durable.parking import create_parked_table
from schnitzel.durable.quarantine_table import add_whole_row_columns, held_text
from schnitzel.durable.rows import (
    ROW_MAX_BYTES,
    ROW_MAX_PACKETS,
    PackedRow,
    RowIndex,
    create_settled_table,
    may_overlap,
    merged_runs,
    overlapping,
    pack,
    packet_sizes,
    row_intact,
    sealed,
    settled_runs,
    unpack,
)
from schnitzel.errors import RuntimeStartError, SchnitzelError

__all__ = [
    "Backlog",
    "Damaged",
    "DiskFull",
    "DurableStore",
    "Loss",
    "NewRow",
    "NewRows",
    "ReadRow",
    "StoreError",
    "StoreRow",
    "checksum",
    "seq_runs",
]

APPLICATION_ID = 0x53434E5A  # "SCNZ": marks a file as a schnitzel store
FORMAT_VERSION = 5
"""1: packets(seq, enqueued, body). 2: + packets.checksum, quarantine, meta. 3: + parked
(schnitzel/durable/parking.py). 4: batch rows (+ packets.last, packets.sizes, the settled
table, quarantine.last/sizes/packets; schnitzel/durable/rows.py). 5: a row's checksum covers
its seq range too (rows.SEALED; an older schnitzel would take every new row for a damaged
one). An older store is migrated in place at open: its rows stay as they are (one-packet
rows before 4, checksums of their content alone before 5) and are read as such. Within 5:
quarantine.row_seq/held (schnitzel/durable/quarantine_table.py), added to a store when it is
created or first quarantines a row whole, without a new number: older code ignores them."""
WAL_LIMIT_BYTES = 64 << 20
"""The WAL file is truncated back to this size after a checkpoint."""
VACUUM_FREE_PAGES = 2048
"""Free pages (8 MiB at 4 KiB) an empty store gives back to the file system."""

_T = TypeVar("_T")

_SQLITE_FULL = 13
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_SQLITE_READONLY = 8
_SQLITE_BUSY = 5

NewRow = tuple[int, float, bytes]
"""(seq, enqueued at [unix seconds], encoded packet): a packet a commit writes."""


class NewRows(NamedTuple):
    """The packets a durable inbox's commit writes: consecutive seqs from `first`, their
    encoded bodies in seq order, every row of them marked enqueued at `enqueued` (unix
    seconds), the time of the oldest (a row's time only shows the backlog's age, and a row
    already carries its first packet's for all of its packets). One list of bodies, not a
    tuple per packet as `NewRow`: cheaper to build on the event loop, and to pickle to a
    store's process and back out of it."""

    first: int
    enqueued: float
    bodies: list[bytes]


StoreRow = tuple[int, float, bytes, int]
"""(seq, enqueued at, encoded packet, its Adler-32 as it had it before, -1 if damaged then):
a packet written back (a parked packet requeued), in a row of its own, its checksum from
that one (and its new seq), so a change made to it meanwhile is caught when it is read."""
ReadRow = tuple[int, float, bytes]
"""(seq, enqueued at, encoded packet) read back, its checksum verified."""
Damaged = tuple[int, float, int, str]
"""(seq, enqueued at, size, why): a row moved to the quarantine table instead of delivered."""
Extra = Callable[[sqlite3.Connection], None]
"""More writes of another module's tables, run inside a store transaction."""

checksum = zlib.adler32
"""The checksum stored with each row, of its encoded packets (rows.py): computed on the
store's thread, once per row. Adler-32 rather than CRC-32 for cost (about 0.4 us against
1 us for CRC-32 on a 150-byte packet on the reference machine). Any single changed byte
changes it; damage to several bytes of a short body slips through more often than with
CRC-32. It guards against accidents, not
against someone forging rows."""

_RUNS_SQL = (
    "SELECT min(seq), max(last) FROM "
    "(SELECT seq, last, seq - (sum(n) OVER (ORDER BY seq) - n) AS run FROM "
    "(SELECT seq, coalesce(last, seq) AS last, coalesce(last, seq) - seq + 1 AS n "
    "FROM packets)) GROUP BY run ORDER BY 1"
)
"""The seqs of the rows in the file as runs of consecutive numbers (only asked when there
are gaps): a row starting where the one before ended continues its run."""
_ALONE = (None, None, 1, None, None)
"""The last, sizes, packets, row_seq and held of a quarantine entry of one packet alone."""
_RANGES_SQL = (
    "SELECT seq, last FROM (SELECT seq, last, max(coalesce(last, seq)) OVER (ORDER BY seq "
    "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before FROM packets) "
    "WHERE last IS NOT NULL OR seq <= before ORDER BY seq"
)
"""The rows of several packets, and any row starting inside the seq range of a row before it
(a file changed by hand: rows.overlapping tells which to set aside)."""
_ROW_SQL = "SELECT seq, enqueued, body, checksum, last, sizes FROM packets"
FetchedRow = tuple[int, float, object, int, int | None, object]
"""A row as read: (seq, enqueued, body, checksum, last, sizes); body and sizes may be
anything when the file was changed by hand."""


class StoreError(SchnitzelError):
    """The store cannot be written or read; the message names the file."""


class DiskFull(StoreError):
    """A write failed for lack of space (or an I/O error); nothing of it was kept."""


@dataclass(frozen=True)
class Loss:
    """Rows the ledger says the store owed that the file no longer holds."""

    count: int
    first_seq: int | None
    last_seq: int | None
    """Store sequence numbers (row numbers, not packet seqs); None when the ledger kept only
    a count (a very fragmented backlog)."""
    cause: str

    def as_dict(self) -> LostReport:
        return {
            "count": self.count,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "cause": self.cause,
        }

    def words(self) -> str:
        where = (
            f" (store seqs {self.first_seq}-{self.last_seq})" if self.first_seq is not None else ""
        )
        return f"{self.count} packets lost{where}: {self.cause}"


@dataclass(frozen=True)
class Backlog:
    """What a store held when it was opened."""

    count: int
    bytes: int
    next_seq: int
    quarantined: Path | None
    """Where an unreadable file was moved, if one was."""
    lost: Loss | None = None
    """Rows the ledger owed that are not in the file."""
    note: str = ""
    """Why the open could not check for lost rows (no ledger, an unreadable one), or ""."""
    set_aside: int = 0
    """Packets of rows moved to the quarantine table at open: their seq ranges overlapped
    the rows before them, or were not the packets they held (changed by hand). Packets
    settled out of such a row before (the `settled` table) are not among them."""
    set_aside_why: str = ""


@dataclass(frozen=True)
class _Opened:
    store_id: str
    ledger_gen: int
    """The generation of the ledger write that the file's last commit matches."""
    created: bool
    migrated: bool
    """From an older format, which had no ledger."""
    runs: list[Run]
    count: int
    bytes: int
    high: int
    batch_rows: list[Run]
    """The seq ranges of the rows holding several packets."""
    cut: set[int]
    """The first seqs of the rows some packets were settled out of."""
    set_aside: list[Run]
    """The seq ranges of the rows moved to the quarantine table at open (overlapping)."""
    set_aside_count: int
    """The packets they took: their ranges less what had settled out of them."""
    kept_in_place: list[Run]
    """Of those, the seqs taken by the rows set aside at their own seqs (only `last` was
    wrong; less what had settled out of them): what the ledger owes there is accounted for,
    quarantined, not missing."""


class DurableStore:
    """The SQLite file of one durable inbox; every method runs on the inbox's own thread."""

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous
        self.real = path
        """The file itself, every symlink resolved; what is opened, locked and moved."""
        self._db: sqlite3.Connection | None = None
        self._cursor_seq = 0
        """The highest seq already handed to the inbox's memory (read or kept there)."""
        self._lock: StoreLock | None = None
        self._ledger: Ledger | None = None
        self._owed = Owed()
        """The packets the file holds and has not settled: what the ledger says it owes."""
        self._rows = RowIndex()
        """The rows of several packets in the file (one-packet rows are not indexed)."""
        self._cut: set[int] = set()
        """Rows (by first seq) with packets settled out of them: ranges in `settled`."""
        self._high = 0
        self._store_id = ""
        self._ledger_stale = False
        """The last ledger write after a commit failed: the ledger is not yet the file's."""
        self._read_row: tuple[int, list[bytes]] | None = None
        """(first seq, packets) of the batch row `read` checked last, kept for its next
        reads: a small window reads a row a few packets at a time."""

    # -- opening ----------------------------------------------------------------------------

    def open(self) -> Backlog:
        """Open (or create) the file, check it against its ledger; quarantine it and start
        empty if it is unreadable."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuntimeStartError(
                f"cannot create the directory of durable store {str(self.path)!r}: {exc}; "
                "fix the permissions or choose another `inbox.durable.path`"
            ) from exc
        self.real = real_path(self.path)
        self._lock = StoreLock(self.real, self.path)
        self._lock.acquire()
        self._remove_stale_shm()
        ledger = Ledger(self.real.with_name(self.real.name + LEDGER_SUFFIX))
        self._ledger = ledger
        note = ""
        try:
            owed = ledger.read()
        except (LedgerUnreadable, OSError) as exc:
            owed, note = None, f"{exc}: this open could not check the store for lost packets"
        quarantined = None
        try:
            opened = self._open_file()
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                if isinstance(exc, sqlite3.OperationalError):
                    raise self._readonly_or(exc) from exc
                raise self._open_error(exc) from exc
            self._close_quietly()
            quarantined = self._quarantine()
            opened = self._open_file()
        same = owed is not None and owed.store_id == opened.store_id
        if owed is not None and same and owed.generation < opened.ledger_gen:
            note = (
                f"ledger {str(ledger.path)!r} is older than the store file (its last writes "
                "were lost, as in a power loss): this open could not check the store for "
                "lost packets"
            )
            owed = None
        lost = self._compare(owed, opened, quarantined)
        if owed is None and not note and not opened.created and not opened.migrated:
            note = (
                f"ledger {str(ledger.path)!r} is missing: this open could not check the "
                "store for lost packets"
            )
        self._owed = Owed(opened.runs)
        self._rows = RowIndex(opened.batch_rows)
        self._cut = opened.cut
        self._store_id = opened.store_id
        self._high = max(opened.high, owed.high_seq if same and owed else 0)
        ledger.skip_to(opened.ledger_gen)
        try:
            ledger.open()
            ledger.write(self._state())
            ledger.flush()
        except OSError as exc:
            raise RuntimeStartError(
                f"cannot write the ledger {str(ledger.path)!r} of durable store "
                f"{str(self.path)!r}: {exc}; the store's directory and files must be "
                "writable by this user"
            ) from exc
        self._cursor_seq = 0
        self._read_row = None
        aside, why = _set_aside_words(opened.set_aside, opened.set_aside_count)
        return Backlog(
            opened.count, opened.bytes, self._high + 1, quarantined, lost, note, aside, why
        )

    def _remove_stale_shm(self) -> None:
        """A -shm file without its -wal (the WAL deleted after a kill -9) only indexes a WAL
        that is gone; SQLite would fail on it with a disk I/O error. The store lock is held,
        so no other run uses it: remove it, and the open then reports what the WAL held as
        lost."""
        shm = self.real.with_name(self.real.name + "-shm")
        wal = self.real.with_name(self.real.name + "-wal")
        if shm.exists() and not wal.exists():
            try:
                shm.unlink()
            except OSError as exc:
                raise RuntimeStartError(
                    f"durable store {str(self.path)!r} has a stale {str(shm)!r} (its -wal "
                    f"file is gone) that cannot be removed: {exc}; delete it by hand, then "
                    "start again"
                ) from exc

    def _open_error(self, exc: Exception) -> RuntimeStartError:
        code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
        if code == _SQLITE_FULL or "disk is full" in str(exc).lower():
            return RuntimeStartError(
                f"cannot open durable store {str(self.path)!r}: {exc}; the file system "
                f"holding {str(self.real.parent)!r} is full: free space there (the store "
                "needs room for its -wal file), or choose another `inbox.durable.path`"
            )
        if code == _SQLITE_BUSY:
            return RuntimeStartError(
                f"cannot open durable store {str(self.path)!r}: {exc}; another program has it "
                "open (an sqlite3 shell, a backup tool?): close that program, then start again"
            )
        return RuntimeStartError(
            f"cannot open durable store {str(self.path)!r}: {exc}; check that the file and "
            "its directory are readable and writable by this user"
        )

    def _open_file(self) -> _Opened:
        db = sqlite3.connect(self.real, isolation_level=None, check_same_thread=False)
        self._db = db
        db.execute("PRAGMA cell_size_check=ON")  # a damaged page fails, never misreads
        app_id, version = self._identify(db)  # before any write: the file may not be ours
        if app_id not in (0, APPLICATION_ID):
            raise sqlite3.DatabaseError("file is a SQLite database of another application")
        if version > FORMAT_VERSION:
            raise RuntimeStartError(
                f"durable store {str(self.path)!r} was written by a newer schnitzel (format "
                f"{version}, this one reads {FORMAT_VERSION}); run that version to drain it"
            )
        created = app_id == 0
        if created:  # nothing owed yet: written without a sync per step, synced once below
            db.execute("PRAGMA synchronous=OFF")
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            raise self._readonly_or(exc) from exc
        if str(mode).lower() != "wal":
            raise RuntimeStartError(
                f"durable store {str(self.path)!r} cannot use WAL mode ({mode}); check that "
                "its directory is writable by this user"
            )
        db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed: {check}")
        try:  # also the proof that this user can write the file: refused here, not later
            self._first_writes(db, created, version)
        except sqlite3.OperationalError as exc:
            raise self._readonly_or(exc) from exc
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        store_id, ledger_gen = str(meta["store_id"]), int(meta.get("ledger_gen", 0))
        batch_rows, set_aside, kept_in_place, aside_count = self._batch_rows(db)
        # A batch row's body holds its packets and a newline between two: the bytes counted
        # are the packets', as the inbox counts them at put (they leave its count so).
        rows, count, size, low, top_seq = db.execute(
            "SELECT count(*), coalesce(sum(coalesce(last, seq) - seq + 1), 0), "
            "coalesce(sum(length(body) - coalesce(last - seq, 0)), 0), min(seq), "
            "max(coalesce(last, seq)) FROM packets"
        ).fetchone()
        if not rows:
            runs = []
        elif top_seq - low + 1 == count:  # one run, the common case: no second pass
            runs = [(low, top_seq)]
        else:
            runs = [(first, last) for first, last in db.execute(_RUNS_SQL)]
        settled = settled_runs(db)
        cut: set[int] = set()
        if settled:
            runs = missing(runs, settled)
            count = sum(last - first + 1 for first, last in runs)  # a range no row holds
            index = RowIndex(batch_rows)  # (its row set aside at open) takes nothing off
            for first, last in settled:
                size -= self._settled_bytes(db, index, first, last, cut)
        # Seqs are never reused in a file, even when its ledger is gone: a parked or
        # quarantined row keeps the seq it had (listings and loss reports name it), and the
        # `settled` ranges of a row set aside at open stay (a new packet under one of their
        # seqs would be taken for settled).
        top = db.execute(
            "SELECT max(coalesce((SELECT max(coalesce(last, seq)) FROM quarantine), 0), "
            "coalesce((SELECT max(packet_seq) FROM parked), 0))"
        ).fetchone()[0]
        high = max(top_seq or 0, top, settled[-1][1] if settled else 0)
        migrated = not created and version < FORMAT_VERSION
        return _Opened(
            store_id,
            ledger_gen,
            created,
            migrated,
            runs,
            count,
            size,
            high,
            batch_rows,
            cut,
            set_aside,
            aside_count,
            kept_in_place,
        )

    def _first_writes(self, db: sqlite3.Connection, created: bool, version: int) -> None:
        """Create or migrate the file and note the time of this open; then the store's own
        `synchronous` for its commits."""
        if created:
            self._create(db)
            if self._lock is not None:  # the file itself through the lock's descriptor
                self._lock.sync_store_file()
            _fsync_files(self.real.with_name(self.real.name + "-wal"))
        else:
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            if version < FORMAT_VERSION:
                self._migrate(db, version)
            # The time of this open owes nothing: its WAL frames wait for the first commit's
            # sync (NORMAL keeps the WAL consistent, SQLite's docs: a power loss loses the
            # time, nothing else).
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('opened', ?)", (str(time.time()),))
        db.execute(f"PRAGMA synchronous={self.synchronous}")

    def _batch_rows(self, db: sqlite3.Connection) -> tuple[list[Run], list[Run], list[Run], int]:
        """The seq ranges of the file's batch rows, and of the rows set aside because their
        range is not the packets their sizes hold (it ends before it starts, or was raised)
        or overlaps a row before it (a file changed by hand: moved to quarantine, whole), and
        of the seqs the first of those took (set aside at their own seqs); and how many
        packets the rows set aside took."""
        rows = db.execute(
            "SELECT seq, last, coalesce(length(CAST(sizes AS BLOB)), 0) / 4 FROM packets "
            "WHERE last IS NOT NULL ORDER BY seq"
        ).fetchall()
        batch_rows: list[Run] = [(first, last) for first, last, n in rows if last - first + 1 == n]
        if len(batch_rows) < len(rows):  # no account of the file can trust such a range: the
            # row goes as the packets it holds (counted so), before it overlaps another
            mismatched = [
                self._packets_held(db, first, n) for first, last, n in rows if last - first + 1 != n
            ]
            kept = self._set_aside(db, mismatched)
        else:
            mismatched, kept = [], []
        taken = sum(last - first + 1 for first, last in kept)
        if not may_overlap(db, batch_rows):
            return batch_rows, mismatched, kept, taken
        batch_rows, set_aside = overlapping(db.execute(_RANGES_SQL).fetchall())
        if set_aside:
            taken += sum(last - first + 1 for first, last in self._set_aside(db, set_aside))
        return batch_rows, sorted(mismatched + set_aside), kept, taken

    @staticmethod
    def _packets_held(db: sqlite3.Connection, first: int, n: int) -> Run:
        """The seqs of a row whose `last` is not the packets its `sizes` hold (`n`): the
        `n` from `first` on when the row matches its checksum so (only `last` was changed);
        otherwise its sizes cannot be trusted either, and it holds as many as they or its
        newlines (one between two packets) say, the more of the two, so that none of its
        packets is taken for lost."""
        body, sizes, stored = db.execute(
            "SELECT body, sizes, checksum FROM packets WHERE seq = ?", (first,)
        ).fetchone()
        if n and row_intact(first, first + n - 1, body, sizes, stored):
            return first, first + n - 1
        if isinstance(body, str):  # an edit with sqlite3's text functions leaves text
            body = body.encode()
        lines = body.count(b"\n") + 1 if isinstance(body, bytes) else 1
        return first, first + max(n, lines) - 1

    def _set_aside(self, db: sqlite3.Connection, rows: list[Run]) -> list[Run]:
        """Move whole rows to the quarantine table (at open, before anything reads them),
        each as holding the seq range given less the packets settled out of it (the `settled`
        table: they were delivered, and the table is right by seq even when the row's sizes
        are not); return the seqs they took.

        The entry keeps the row as found (`row_seq` its first seq) and says which seqs it
        took (`held`): an operator exporting it gets those packets, not the settled ones."""
        why = (
            f"moved aside at open: its seq range overlaps the rows before it, or is not the "
            f"packets it holds, in {self.path} (changed by hand?)"
        )
        now = time.time()
        settled = settled_runs(db)
        entries: list[tuple[object, ...]] = []
        taken: list[Run] = []
        for first, last in rows:
            held = missing([(first, last)], settled)
            start, end = (held[0][0], held[-1][1]) if held else (first, last)
            count = sum(b - a + 1 for a, b in held)
            entries.append((start, why, now, end, count, held_text(held), first))
            taken.extend(held)
        # The ledger read at this open still owes these rows until `open` writes it anew (the
        # generation after the one read): a crash before that must not leave it trusted (the
        # next open would report them lost), so the file says it matches that write.
        read = self._ledger.generation if self._ledger is not None else 0
        db.execute("BEGIN IMMEDIATE")
        try:
            add_whole_row_columns(db)
            db.execute(
                "UPDATE meta SET value = max(CAST(value AS INTEGER), ?) WHERE key = 'ledger_gen'",
                (read + 1,),
            )
            db.executemany(
                "INSERT INTO quarantine (seq, enqueued, body, checksum, reason, at, last, sizes, "
                "packets, held, row_seq) SELECT ?, enqueued, body, checksum, ?, ?, ?, sizes, ?, "
                "?, seq FROM packets WHERE seq = ?",
                entries,
            )
            db.executemany("DELETE FROM packets WHERE seq = ?", [(first,) for first, _ in rows])
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        return taken

    @staticmethod
    def _settled_bytes(
        db: sqlite3.Connection, index: RowIndex, first: int, last: int, cut: set[int]
    ) -> int:
        """The bytes of the packets first..last settled out of their rows (noted in `cut`)."""
        total = 0
        seq = first
        while seq <= last:
            i = index.row_of(seq)
            if i is None:  # seqs no row holds (a file changed by hand): nothing to count
                later = bisect.bisect_left(index.firsts, seq)
                if later == len(index.firsts):
                    break
                seq = index.firsts[later]
                continue
            row_first, row_last = index.firsts[i], index.lasts[i]
            cut.add(row_first)
            found = db.execute(
                "SELECT body, sizes FROM packets WHERE seq = ?", (row_first,)
            ).fetchone()
            if found is not None:
                body = found[0]
                size = len(body) if isinstance(body, bytes | str) else 0
                sizes = packet_sizes(row_first, row_last, size, found[1])
                end = min(last, row_last)
                total += sum(sizes[seq - row_first : end - row_first + 1])
            seq = row_last + 1
        return total

    def _readonly_or(self, exc: sqlite3.OperationalError) -> RuntimeStartError:
        code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
        if code == _SQLITE_READONLY or "readonly" in str(exc).lower():
            return RuntimeStartError(
                f"durable store {str(self.path)!r} cannot be written by this user "
                f"(uid {os.getuid()}): {exc}; a run could deliver its backlog but never "
                "delete it. Make the file, its -wal and -shm files and its directory "
                "writable by this user, or choose another `inbox.durable.path`"
            )
        return self._open_error(exc)

    @staticmethod
    def _identify(db: sqlite3.Connection) -> tuple[int, int]:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if app_id != APPLICATION_ID:  # new, or a database that is not ours
            tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables or version:
                return app_id or -1, version
            return 0, 0
        return app_id, version

    @staticmethod
    def _create(db: sqlite3.Connection) -> None:
        """The tables of a new, empty file, and the time of this open, in one transaction,
        written with `synchronous=OFF` (set before the switch to WAL, itself a transaction):
        SQLite would sync its journal, the directory, the file and then the new WAL around
        each step; the caller syncs the file and its WAL once, before the store is used. A
        power loss before that can leave a file SQLite cannot read, moved aside at the next
        open as any other: nothing was in it."""
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # before the first table, or no effect
        db.execute("BEGIN IMMEDIATE")
        # The tables as the migrations leave them, created whole (an ALTER TABLE per added
        # column parses the schema again: about 1 ms of CPU per new store).
        db.execute(
            "CREATE TABLE packets (seq INTEGER PRIMARY KEY, enqueued REAL NOT NULL, "
            "body BLOB NOT NULL, checksum INTEGER NOT NULL DEFAULT -1, last INTEGER, "
            "sizes BLOB)"
        )
        db.execute(
            "CREATE TABLE quarantine (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, "
            "enqueued REAL NOT NULL, body BLOB, checksum INTEGER, reason TEXT NOT NULL, "
            "at REAL NOT NULL, last INTEGER, sizes BLOB, packets INTEGER NOT NULL DEFAULT 1, "
            "row_seq INTEGER, held TEXT)"
        )
        _create_meta_table(db)
        create_parked_table(db)
        create_settled_table(db)
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        db.execute(f"PRAGMA user_version={FORMAT_VERSION}")
        db.execute("INSERT INTO meta VALUES ('opened', ?)", (str(time.time()),))
        db.execute("COMMIT")

    @staticmethod
    def _migrate(db: sqlite3.Connection, version: int) -> None:
        """To the current format, in one transaction: checksum every row (from 1), add the
        tables a format lacks."""
        db.create_function("schnitzel_checksum", 1, _checksum, deterministic=True)
        db.execute("BEGIN IMMEDIATE")
        if version < 2:
            db.execute("ALTER TABLE packets ADD COLUMN checksum INTEGER NOT NULL DEFAULT -1")
            db.execute("UPDATE packets SET checksum = schnitzel_checksum(body)")
            _create_v2_tables(db)
        if version < 3:
            create_parked_table(db)
        if version < 4:
            _add_batch_rows(db)
        # 4 -> 5: nothing to rewrite; rows keep the checksums they were written with.
        add_whole_row_columns(db)  # within 5 (quarantine_table.py): as a new store has them
        db.execute(f"PRAGMA user_version={FORMAT_VERSION}")
        db.execute("COMMIT")

    def _compare(
        self, owed: LedgerState | None, opened: _Opened, quarantined: Path | None
    ) -> Loss | None:
        """What the ledger owes that the file does not hold."""
        if owed is None or not owed.owed_count:
            return None
        same = owed.store_id == opened.store_id
        present = merged_runs(sorted(opened.runs + opened.kept_in_place)) if same else []
        expected = owed.runs
        pending = owed.pending
        if pending is not None and missing([pending], present) != [pending]:
            pending = None  # some of its rows are here: that commit happened
        if expected is None:  # only the count was kept
            count = owed.owed_count - (pending[1] - pending[0] + 1 if pending else 0)
            held = opened.count + sum(b - a + 1 for a, b in opened.kept_in_place)
            count = max(count - (held if same else 0), 0)
            first = last = None
        else:
            if pending is not None:
                ledger = Owed(expected)
                ledger.remove(*pending)
                expected = ledger.runs()
            gaps = missing(expected, present)
            count = sum(b - a + 1 for a, b in gaps)
            first, last = (gaps[0][0], gaps[-1][1]) if gaps else (None, None)
        if not count:
            return None
        if quarantined is not None:
            cause = (
                f"the store file was unreadable and was moved to {str(quarantined)!r}; "
                "what it held may still be read from there"
            )
        elif opened.created:
            cause = "the store file was missing or empty (deleted or truncated while stopped)"
        elif not same:
            cause = "the store file is another store (replaced while stopped)"
        else:
            cause = (
                "rows are missing from the store file (its WAL was damaged or deleted, or "
                "the file was rolled back)"
            )
        return Loss(count, first, last, cause)

    def _quarantine(self) -> Path:
        """Move the unreadable file (and its WAL) aside; return its new name."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.real.with_name(f"{self.real.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.real.with_name(f"{self.real.name}.corrupt-{stamp}-{n}")
        try:
            os.rename(self.real, target)
            for suffix in ("-wal", "-shm"):
                side = self.real.with_name(self.real.name + suffix)
                if side.exists():
                    os.rename(side, target.with_name(target.name + suffix))
        except OSError as exc:
            raise RuntimeStartError(
                f"durable store {str(self.path)!r} is unreadable and could not be moved "
                f"aside ({exc}); move it away by hand, then start again"
            ) from exc
        _fsync_directory(self.real.parent)
        if self._lock is not None:  # the lock held the moved file; take the new one's
            self._lock.lock_store_file()
        return target

    # -- writing ----------------------------------------------------------------------------

    def commit(
        self,
        rows: list[NewRow] | NewRows,
        deletes: list[tuple[int, int]],
        cursor: int,
        extra: Extra | None = None,
        restored: list[StoreRow] | None = None,
    ) -> None:
        """Insert `rows` (in seq order; batch rows of up to ROW_MAX_PACKETS) and delete the
        seq ranges `deletes` in one transaction, with `extra`'s writes (another module's
        tables) first when given. `restored` are packets that come back with the checksum
        they had (a requeue), after `rows`, each in a row of its own. `cursor`, when above
        the current one, marks rows up to it as already in memory (not to be read back). On
        failure nothing of it is kept; DiskFull for space or I/O errors."""
        self._transact(rows, restored or [], deletes, extra)
        self._cursor_seq = max(self._cursor_seq, cursor)

    def move_out(
        self, seqs: list[int], copy: Callable[[sqlite3.Connection, list[Run]], None]
    ) -> None:
        """Take the packets `seqs` out of the backlog in one transaction: `copy(db, runs)`
        first writes them where they go (a table of its own in this file; `packets()` reads
        them), then they are settled out of their rows and are no longer owed. Neither lost
        nor settled: moved (quarantine, parking)."""
        runs = seq_runs(seqs)
        self._transact([], [], runs, lambda db: copy(db, runs))

    def packets(self, seqs: list[int]) -> dict[int, tuple[float, bytes, int]]:
        """The packets `seqs` the store holds (not settled): seq -> (enqueued, encoded
        packet, the Adler-32 of it). A packet of a damaged row has checksum -1."""
        found: dict[int, tuple[float, bytes, int]] = {}
        for row, wanted in self._rows_of(seqs):
            first, at, body, _stored, last, sizes = row
            if not isinstance(body, bytes):
                continue
            parts = self._verified(row)
            intact = parts is not None
            if parts is None:  # its own bytes as they are now, when the sizes still fit
                parts = unpack(first, last, body, sizes if isinstance(sizes, bytes) else None)
            for seq in wanted:
                part = body if parts is None else parts[seq - first]
                found[seq] = (at, part, checksum(part) if intact else -1)
        return found

    def quarantine(self, rows: list[tuple[int, str]]) -> None:
        """Move the packets (seq, why) to the quarantine table: kept aside, never delivered.
        A packet of an intact row goes alone; the packets of a damaged row go as one entry
        holding the whole row as found (`row_seq` its first seq), `held` and `packets` the
        seqs of it moved and how many (its packets settled before are not among them)."""
        why = dict(rows)
        now = time.time()

        def copy(db: sqlite3.Connection, _runs: list[Run]) -> None:
            entries: list[tuple[object, ...]] = []
            for row, wanted in self._rows_of(list(why)):
                first, at, body, stored, _last, sizes = row
                parts = self._verified(row)
                if parts is not None:
                    for seq in wanted:
                        part = parts[seq - first]
                        entries.append((seq, at, part, checksum(part), why[seq], now, *_ALONE))
                else:
                    entries.append(
                        (
                            wanted[0],
                            at,
                            body,
                            stored,
                            why[wanted[0]],
                            now,
                            wanted[-1],
                            sizes,
                            len(wanted),
                            first,
                            held_text(seq_runs(wanted)),
                        )
                    )
            add_whole_row_columns(db)
            db.executemany(
                "INSERT INTO quarantine (seq, enqueued, body, checksum, reason, at, last, "
                "sizes, packets, row_seq, held) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                entries,
            )

        self.move_out(list(why), copy)

    def _rows_of(self, seqs: list[int]) -> list[tuple[FetchedRow, list[int]]]:
        """The rows holding the owed packets among `seqs`, each with those seqs (sorted)."""
        db = self._db
        assert db is not None, "read before open"
        by_row: dict[int, list[int]] = {}
        for seq in sorted(set(seqs)):
            if self._owed.any_within(seq, seq):
                i = self._rows.row_of(seq)
                by_row.setdefault(seq if i is None else self._rows.firsts[i], []).append(seq)
        out: list[tuple[FetchedRow, list[int]]] = []
        for first, wanted in by_row.items():
            row = db.execute(f"{_ROW_SQL} WHERE seq = ?", (first,)).fetchone()
            if row is not None:
                out.append((row, wanted))
        return out

    def _read_parts(self, row: FetchedRow) -> list[bytes] | None:
        """`_verified` for `read`: a batch row is checked and split once and its packets
        kept for the reads after (the store never rewrites a row and never reuses a seq)."""
        kept = self._read_row
        if kept is not None and kept[0] == row[0]:
            return kept[1]
        parts = self._verified(row)
        self._read_row = None if parts is None or row[4] is None else (row[0], parts)
        return parts

    @staticmethod
    def _verified(row: FetchedRow) -> list[bytes] | None:
        """The packets of a row whose checksum matches, or None (a damaged row)."""
        first, _at, body, stored, last, sizes = row
        if not isinstance(body, bytes) or not row_intact(first, last, body, sizes, stored):
            return None
        return unpack(first, last, body, sizes if isinstance(sizes, bytes) else None)

    def _transact(
        self,
        rows: list[NewRow] | NewRows,
        restored: list[StoreRow],
        deletes: list[Run],
        extra: Extra | None,
    ) -> None:
        """The one way the packets table changes: one transaction, the ledger in step."""
        db, ledger = self._db, self._ledger
        assert db is not None and ledger is not None, "write before open"
        after = self._owed.copy()
        for first, last in deletes:
            after.remove(first, last)
        plan = self._plan_deletes(deletes, after) if deletes else None
        packed = _packed(rows)
        packed.extend(
            (seq, at, body, sealed(sums, seq, None) if sums >= 0 else -1, None, None)
            for seq, at, body, sums in restored
        )
        inserted = _inserted_runs(rows, restored)
        for first, last in inserted:
            after.add(first, last)
        high = max(self._high, inserted[-1][1]) if inserted else self._high
        pending = (inserted[0][0], inserted[-1][1]) if inserted else None
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                if extra is not None:
                    extra(db)
                if plan is not None:
                    plan.write(db)
                if packed:
                    db.executemany("INSERT INTO packets VALUES (?, ?, ?, ?, ?, ?)", packed)
                # The file says which ledger write it matches (a ledger a power loss left
                # behind is then recognised), and the ledger is written before COMMIT, so it
                # is never behind a commit that happened.
                db.execute(
                    "UPDATE meta SET value = ? WHERE key = 'ledger_gen'", (ledger.next_generation,)
                )
                ledger.write(self._state(after, high, pending))
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                self._rewrite_ledger()
                raise
        except sqlite3.OperationalError as exc:
            raise _write_error(self.path, exc) from exc
        except OSError as exc:
            raise _ledger_error(ledger.path, exc) from exc
        self._owed, self._high = after, high
        if plan is not None:
            self._rows.remove(plan.emptied)
            self._cut.difference_update(plan.uncut)
            self._cut.update(plan.cut)
        for row in packed:
            if row[4] is not None:
                self._rows.append(row[0], row[4])
        self._ledger_stale = False  # the write inside the transaction was the whole state
        if pending is not None:  # and marked the new rows pending: written again without
            self._rewrite_ledger()
        with contextlib.suppress(OSError):
            ledger.flush(unless_recent=True)

    def _plan_deletes(self, deletes: list[Run], after: Owed) -> _DeletePlan:
        """What settling `deletes` does to the file: a batch row none of whose packets is
        owed `after` is deleted (with its `settled` ranges); one still holding some has the
        packets settled now recorded in `settled`; one-packet rows go by their seq."""
        index, before = self._rows, self._owed
        touched: set[int] = set()
        for first, last in deletes:
            touched.update(index.overlapping(first, last))
        plan = _DeletePlan()
        keep: list[int] = []  # rows cut now whose first seq lies inside a deleted range
        for i in sorted(touched):
            first, last = index.firsts[i], index.lasts[i]
            if after.any_within(first, last):
                settled = missing(before.within(first, last), after.within(first, last))
                plan.settle.extend(settled)
                plan.cut.append(first)
                keep.append(first)
            else:
                plan.emptied.append(i)
                plan.rows.append((first, first))
                if first in self._cut:
                    plan.uncut.append(first)
                    plan.unsettle.append((first, last))
        plan.rows.extend(missing(deletes, [(seq, seq) for seq in keep]))
        return plan

    def _rewrite_ledger(self) -> None:
        """Write the ledger as the file now is (after a commit, or a failed one). When that
        fails (a full disk) the ledger still names the last commit's rows as pending or its
        deletes as done: right as long as the file survives, short of a loss report when it
        does not. So it is written again at the next commit, and at close."""
        assert self._ledger is not None
        try:
            self._ledger.write(self._state())
        except OSError:
            self._ledger_stale = True
        else:
            self._ledger_stale = False

    def _state(
        self, owed: Owed | None = None, high: int | None = None, pending: Run | None = None
    ) -> LedgerState:
        owed = self._owed if owed is None else owed
        return LedgerState(
            self._store_id,
            self._high if high is None else high,
            owed.count,
            owed.runs(),
            pending,
        )

    def query(self, read: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run a read-only `read(connection)` (the parked table's listings and totals)."""
        assert self._db is not None, "query before open"
        return read(self._db)

    def read(self, limit: int) -> tuple[list[ReadRow], list[Damaged]]:
        """The next `limit` packets not yet in memory, oldest first; a row whose checksum
        does not match has every packet it still holds moved to the quarantine table (as one
        entry, even those beyond `limit`) and returned apart, one item each (an operator is
        told how many packets a damaged row held)."""
        wanted = self._owed.take(self._cursor_seq, limit)
        if not wanted:
            return [], []
        good: list[ReadRow] = []
        damaged: list[Damaged] = []
        cursor = wanted[-1][1]
        for row in self._fetch(wanted[0][0], cursor):
            first, at, body, _stored, last, sizes = row
            end = first if last is None else last
            seqs = _seqs_within(wanted, first, end)
            if not seqs:
                continue
            parts = self._read_parts(row)
            if parts is not None:
                good.extend((seq, at, parts[seq - first]) for seq in seqs)
                continue
            # All of it that is still queued goes now, in one quarantine entry, not a part
            # per read when the read's limit cuts the row.
            seqs = _seqs_within(self._owed.within(seqs[0], end), first, end)
            cursor = max(cursor, seqs[-1])
            size = len(body) if isinstance(body, bytes | str) else 0
            shares = packet_sizes(first, last, size, sizes)
            where = f"row {first}" if last is None else f"row {first}-{last}"
            held = (
                "" if last is None else f"; the {len(seqs)} packets it still held are quarantined"
            )
            why = f"{where} of {self.path}: it does not match its checksum (changed on disk){held}"
            damaged.extend((seq, at, shares[seq - first], why) for seq in seqs)
        self._cursor_seq = cursor
        if damaged:
            try:
                self.quarantine([(seq, why) for seq, _at, _size, why in damaged])
            except StoreError as exc:  # still never delivered; the next run moves them
                damaged = [(s, a, n, f"{why} (left in place: {exc})") for s, a, n, why in damaged]
        return good, damaged

    def _fetch(self, first: int, last: int) -> list[FetchedRow]:
        """The rows holding any seq of first..last, in seq order; the body of the row whose
        packets `read` kept is not read again (NULL)."""
        db = self._db
        assert db is not None, "read before open"
        i = self._rows.row_of(first)
        start = first if i is None else self._rows.firsts[i]
        kept = -1 if self._read_row is None else self._read_row[0]
        return db.execute(
            "SELECT seq, enqueued, CASE seq WHEN ? THEN NULL ELSE body END, checksum, last, "
            "sizes FROM packets WHERE seq BETWEEN ? AND ? ORDER BY seq",
            (kept, start, last),
        ).fetchall()

    def displace(self, limit: int) -> tuple[int, int, list[Run]]:
        """Delete the next `limit` packets not yet in memory (overflow `drop_oldest`);
        return how many, their bytes and their seqs (as runs)."""
        wanted = self._owed.take(self._cursor_seq, limit)
        if not wanted:
            return 0, 0, []
        count = size = 0
        db = self._db
        assert db is not None, "displace before open"
        i = self._rows.row_of(wanted[0][0])
        start = wanted[0][0] if i is None else self._rows.firsts[i]
        for first, body_size, last, sizes in db.execute(
            "SELECT seq, length(body), last, sizes FROM packets WHERE seq BETWEEN ? AND ?",
            (start, wanted[-1][1]),
        ):
            seqs = _seqs_within(wanted, first, first if last is None else last)
            shares = packet_sizes(first, last, body_size or 0, sizes)
            count += len(seqs)
            size += sum(shares[seq - first] for seq in seqs if seq - first < len(shares))
        last_seq = wanted[-1][1]
        self._transact([], [], [(self._cursor_seq + 1, last_seq)], None)
        self._cursor_seq = last_seq
        return count, size, wanted

    def bodies_naming(self, key: bytes) -> list[tuple[int, bytes]]:
        """(seq, encoded packet) of every packet held whose encoding contains `key`, in seq
        order; a damaged row names nothing (it is quarantined when read)."""
        db = self._db
        assert db is not None, "query before open"
        found: list[tuple[int, bytes]] = []
        for row in db.execute(f"{_ROW_SQL} WHERE instr(body, ?) > 0 ORDER BY seq", (key,)):
            first, last, body, sizes = row[0], row[0] if row[4] is None else row[4], row[2], row[5]
            readable = isinstance(body, bytes) and (sizes is None or isinstance(sizes, bytes))
            parts = unpack(first, row[4], body, sizes) if readable else None
            if parts is None:
                continue
            for run_first, run_last in self._owed.within(first, last):
                for seq in range(run_first, run_last + 1):
                    if key in parts[seq - first]:
                        found.append((seq, parts[seq - first]))
        return found

    def vacuum_if_empty(self) -> None:
        """Give the pages of a drained backlog back to the file system."""
        db = self._db
        assert db is not None
        if db.execute("SELECT 1 FROM packets LIMIT 1").fetchone() is not None:
            return
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        if free >= VACUUM_FREE_PAGES:
            with contextlib.suppress(sqlite3.OperationalError):
                db.execute("PRAGMA incremental_vacuum")
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        if self._ledger_stale:
            self._rewrite_ledger()
        # Closing the last connection checkpoints the WAL into the file (synced) and
        # deletes it: no checkpoint of our own first (a truncate of the WAL before its
        # delete, for nothing).
        self._close_quietly()
        if self._ledger is not None:
            with contextlib.suppress(OSError):  # the next open then says it could not check
                self._ledger.close()
        if self._lock is not None:
            self._lock.release()

    def _close_quietly(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None


def _create_v2_tables(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE quarantine (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, "
        "enqueued REAL NOT NULL, body BLOB, checksum INTEGER, reason TEXT NOT NULL, "
        "at REAL NOT NULL)"
    )
    _create_meta_table(db)


def _create_meta_table(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('store_id', ?)", (uuid.uuid4().hex,))
    db.execute("INSERT INTO meta VALUES ('ledger_gen', '0')")


def _add_batch_rows(db: sqlite3.Connection) -> None:
    """Format 4: rows of several packets (schnitzel/durable/rows.py). The rows already there
    are one-packet rows of it as they are (`last` and `sizes` NULL)."""
    for table, column in (
        ("packets", "last INTEGER"),
        ("packets", "sizes BLOB"),
        ("quarantine", "last INTEGER"),
        ("quarantine", "sizes BLOB"),
        ("quarantine", "packets INTEGER NOT NULL DEFAULT 1"),
    ):
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column.split()[0] not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
    create_settled_table(db)


def _set_aside_words(rows: list[Run], count: int) -> tuple[int, str]:
    """How many packets the rows set aside at open took (`count`), and what to tell the
    operator."""
    if not count:
        return 0, ""
    named = ", ".join(f"{first}-{last}" for first, last in rows[:5])
    more = ", ..." if len(rows) > 5 else ""
    return count, (
        f"{count} packets of rows whose seq ranges overlap the rows before them, or are not "
        f"the packets they hold (rows {named}{more}: changed by hand?) moved to its "
        "quarantine table, not delivered"
    )


def _checksum(body: object) -> int:
    return checksum(body) if isinstance(body, bytes) else -1


def _inserted_runs(rows: list[NewRow] | NewRows, restored: list[StoreRow]) -> list[Run]:
    """The seqs of new rows (in seq order, each once: the primary key refuses a repeat) as
    runs; the common case, one run, is seen from the first and last row alone."""
    if isinstance(rows, NewRows):
        seqs = range(rows.first, rows.first + len(rows.bodies))
        if not restored:
            return [(seqs[0], seqs[-1])] if seqs else []
        return seq_runs([*seqs, *(row[0] for row in restored)])
    if not restored and rows:
        first, last = rows[0][0], rows[-1][0]
        if last - first + 1 == len(rows):
            return [(first, last)]
    return seq_runs([row[0] for row in rows] + [row[0] for row in restored])


def _seqs_within(runs: list[Run], first: int, last: int) -> list[int]:
    """The seqs of `runs` (sorted) within first..last."""
    out: list[int] = []
    for a, b in runs:
        if b < first:
            continue
        if a > last:
            break
        out.extend(range(max(a, first), min(b, last) + 1))
    return out


_body = itemgetter(2)
"""Of a new row (seq, enqueued, body)."""
_enqueued = itemgetter(1)


def _packed(rows: list[NewRow] | NewRows) -> list[PackedRow]:
    """New packets as rows: each run of consecutive seqs cut into rows of up to
    ROW_MAX_PACKETS packets and about ROW_MAX_BYTES."""
    if isinstance(rows, NewRows):  # a time given as an int is one time, not one per packet
        return _packed_run(rows.first, float(rows.enqueued), rows.bodies)
    out: list[PackedRow] = []
    start, n = 0, len(rows)
    while start < n:  # one run at a time (one in all, but where a caller left gaps)
        first, end = rows[start][0], n
        if rows[end - 1][0] - first != end - 1 - start:
            end = start + 1
            while end < n and rows[end][0] == first + end - start:
                end += 1
        run = rows[start:end]
        out += _packed_run(first, list(map(_enqueued, run)), list(map(_body, run)))
        start = end
    return out


def _packed_run(
    first: int, enqueued: float | Sequence[float], bodies: Sequence[bytes]
) -> list[PackedRow]:
    """The packets of consecutive seqs from `first` as rows of up to ROW_MAX_PACKETS packets
    and about ROW_MAX_BYTES; each row enqueued at `enqueued`, or, given one per packet, at
    its first packet's."""
    out: list[PackedRow] = []
    start, n = 0, len(bodies)
    while start < n:
        end = min(start + ROW_MAX_PACKETS, n)
        chunk = bodies[start:end]
        if sum(map(len, chunk)) > ROW_MAX_BYTES:  # rare: C loops for the common case
            over = bisect.bisect_right(list(accumulate(map(len, chunk))), ROW_MAX_BYTES)
            end = start + max(over, 1)  # a packet larger than a row gets a row of its own
            chunk = chunk[: end - start]
        at = enqueued if isinstance(enqueued, float) else enqueued[start]
        out.append(pack(range(first + start, first + end), at, chunk))
        start = end
    return out


@dataclass
class _DeletePlan:
    """The statements that settle packets (DurableStore._plan_deletes)."""

    rows: list[Run] = field(default_factory=list)
    """Seq ranges of rows to delete (a range may hold seqs of no row)."""
    settle: list[Run] = field(default_factory=list)
    """Packets settled out of rows that stay: into `settled`."""
    unsettle: list[Run] = field(default_factory=list)
    """The seq ranges of deleted rows that had `settled` ranges: those go too."""
    emptied: list[int] = field(default_factory=list)
    """Indexes (RowIndex) of the batch rows deleted."""
    cut: list[int] = field(default_factory=list)
    uncut: list[int] = field(default_factory=list)

    def write(self, db: sqlite3.Connection) -> None:
        if self.rows:
            db.executemany("DELETE FROM packets WHERE seq BETWEEN ? AND ?", self.rows)
        if self.unsettle:
            db.executemany("DELETE FROM settled WHERE first BETWEEN ? AND ?", self.unsettle)
        if self.settle:
            db.executemany("INSERT INTO settled VALUES (?, ?)", self.settle)


def seq_runs(seqs: list[int]) -> list[Run]:
    """Seqs as sorted inclusive runs of consecutive numbers."""
    if not seqs:
        return []
    first, last = seqs[0], seqs[-1]
    if last - first + 1 == len(seqs) and seqs == list(range(first, last + 1)):
        return [(first, last)]  # the common case, settled in order: no set, no sort
    ordered = sorted(set(seqs))
    if ordered[-1] - ordered[0] + 1 == len(ordered):  # the common case: one run
        return [(ordered[0], ordered[-1])]
    runs: list[Run] = []
    first = last = ordered[0]
    for seq in ordered[1:]:
        if seq == last + 1:
            last = seq
        else:
            runs.append((first, last))
            first = last = seq
    runs.append((first, last))
    return runs


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return True
    message = str(exc).lower()
    return any(
        words in message
        for words in ("not a database", "malformed", "another application", "corrupt")
    )


def _write_error(path: Path, exc: sqlite3.OperationalError) -> StoreError:
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    if code == _SQLITE_FULL or "full" in str(exc).lower():
        return DiskFull(
            f"cannot write durable store {str(path)!r}: {exc} (the file system holding "
            f"{str(path.parent)!r} is full: free space there)"
        )
    if code == _SQLITE_IOERR:
        return DiskFull(
            f"cannot write durable store {str(path)!r}: {exc} (check the disk, and that "
            "the store's files and directory are writable by this user)"
        )
    return StoreError(f"cannot write durable store {str(path)!r}: {exc}")


def _ledger_error(path: Path, exc: OSError) -> StoreError:
    if exc.errno in (errno.ENOSPC, errno.EIO, errno.EDQUOT):
        return DiskFull(f"cannot write the ledger {str(path)!r}: {exc}")
    return StoreError(f"cannot write the ledger {str(path)!r}: {exc}")


def _fsync_files(*paths: Path) -> None:
    """Sync new files SQLite wrote without syncing (those that exist), then their directory
    entries."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_directory(paths[0].parent)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` survive a power loss."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
