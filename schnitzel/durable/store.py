"""The SQLite file behind one durable inbox.

One table of encoded packets keyed by a sequence number that only grows, so replay order is
arrival order; each row carries a checksum (Adler-32) of its body, checked when it is read
back. The file is in WAL mode; every write is one transaction (a group commit of many
packets and deletes). A `DurableStore` is used from one thread only: the inbox runs every
call on its own single-thread executor, so calls run in the order they were made.

Damage is never a healthy empty store (docs/contracts/delivery.md, "Damage a store detects"):

- a file SQLite cannot read is renamed beside itself (`.corrupt-<UTC time>`) and a new,
  empty store takes its place: never emptied in place, never deleted;
- the ledger (`<store>.ledger`, schnitzel/durable/ledger.py) says which rows the store owes;
  rows it owes that the file no longer holds are reported as lost at open (`Backlog.lost`);
- a row whose body no longer matches its checksum, or no longer decodes, is moved to the
  `quarantine` table of the same file, counted, and never delivered.

Every change to the `packets` table goes through `_transact`, which keeps the ledger in step.
Another module may add its own table to the file and move rows in or out in the same
transaction: `commit(..., extra=...)` (rows in: new seqs above every owed one, each with its
`checksum`; rows out: their seqs among the deletes, copied by `extra` first) and
`move_out(seqs, copy)` (rows out, neither lost nor settled) are that seam. The `parked`
table (schnitzel/durable/parking.py) is one: its rows keep their checksum, are not owed, and
a requeue inserts them again as new rows.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

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
from schnitzel.errors import RuntimeStartError, SchnitzelError

__all__ = [
    "Backlog",
    "Damaged",
    "DiskFull",
    "DurableStore",
    "Loss",
    "ReadRow",
    "StoreError",
    "StoreRow",
    "checksum",
    "seq_runs",
]

APPLICATION_ID = 0x53434E5A  # "SCNZ": marks a file as a schnitzel store
FORMAT_VERSION = 3
"""1: packets(seq, enqueued, body). 2: + packets.checksum, quarantine, meta. 3: + parked
(schnitzel/durable/parking.py). An older store is migrated in place at open."""
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

StoreRow = tuple[int, float, bytes, int]
"""(seq, enqueued at [unix seconds], encoded packet, its `checksum`)."""
ReadRow = tuple[int, float, bytes]
"""(seq, enqueued at, encoded packet) read back, its checksum verified."""
Damaged = tuple[int, float, int, str]
"""(seq, enqueued at, size, why): a row moved to the quarantine table instead of delivered."""
Extra = Callable[[sqlite3.Connection], None]
"""More writes of another module's tables, run inside a store transaction."""

checksum = zlib.adler32
"""The checksum stored with each row, of its encoded packet: the inbox computes it in the
loop that admits the packet (no extra pass). Adler-32 rather than CRC-32 for cost: it runs
under the GIL for every packet (about 0.4 us against 1 us for CRC-32 on a 150-byte packet on
the reference machine). Any single changed byte changes it; damage to several bytes of a
short body slips through more often than with CRC-32. It guards against accidents, not
against someone forging rows."""

_RUNS_SQL = (
    "SELECT min(seq), max(seq) FROM "
    "(SELECT seq, seq - row_number() OVER (ORDER BY seq) AS run FROM packets) "
    "GROUP BY run ORDER BY 1"
)
"""The seqs in the file as runs of consecutive numbers (only asked when there are gaps)."""


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
        self._high = 0
        self._store_id = ""
        self._ledger_stale = False
        """The last ledger write after a commit failed: the ledger is not yet the file's."""

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
        return Backlog(opened.count, opened.bytes, self._high + 1, quarantined, lost, note)

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
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            raise self._readonly_or(exc) from exc
        if str(mode).lower() != "wal":
            raise RuntimeStartError(
                f"durable store {str(self.path)!r} cannot use WAL mode ({mode}); check that "
                "its directory is writable by this user"
            )
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        created = app_id == 0
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed: {check}")
        try:  # also the proof that this user can write the file: refused here, not later
            if created:
                self._create(db)
            elif version < FORMAT_VERSION:
                self._migrate(db, version)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('opened', ?)", (str(time.time()),))
        except sqlite3.OperationalError as exc:
            raise self._readonly_or(exc) from exc
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        store_id, ledger_gen = str(meta["store_id"]), int(meta.get("ledger_gen", 0))
        count, size, low, top_seq = db.execute(
            "SELECT count(*), coalesce(sum(length(body)), 0), min(seq), max(seq) FROM packets"
        ).fetchone()
        if not count:
            runs = []
        elif top_seq - low + 1 == count:  # one run, the common case: no second pass
            runs = [(low, top_seq)]
        else:
            runs = [(first, last) for first, last in db.execute(_RUNS_SQL)]
        # Seqs are never reused in a file, even when its ledger is gone: a parked or
        # quarantined row keeps the seq it had (listings and loss reports name it).
        top = db.execute(
            "SELECT max(coalesce((SELECT max(seq) FROM quarantine), 0), "
            "coalesce((SELECT max(packet_seq) FROM parked), 0))"
        ).fetchone()[0]
        high = max(runs[-1][1] if runs else 0, top)
        migrated = not created and version < FORMAT_VERSION
        return _Opened(store_id, ledger_gen, created, migrated, runs, count, size, high)

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
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # before the first table, or no effect
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "CREATE TABLE packets (seq INTEGER PRIMARY KEY, enqueued REAL NOT NULL, "
            "body BLOB NOT NULL, checksum INTEGER NOT NULL DEFAULT -1)"
        )
        _create_v2_tables(db)
        create_parked_table(db)
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        db.execute(f"PRAGMA user_version={FORMAT_VERSION}")
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
        db.execute(f"PRAGMA user_version={FORMAT_VERSION}")
        db.execute("COMMIT")

    def _compare(
        self, owed: LedgerState | None, opened: _Opened, quarantined: Path | None
    ) -> Loss | None:
        """What the ledger owes that the file does not hold."""
        if owed is None or not owed.owed_count:
            return None
        same = owed.store_id == opened.store_id
        present = opened.runs if same else []
        expected = owed.runs
        pending = owed.pending
        if pending is not None and missing([pending], present) != [pending]:
            pending = None  # some of its rows are here: that commit happened
        if expected is None:  # only the count was kept
            count = owed.owed_count - (pending[1] - pending[0] + 1 if pending else 0)
            count = max(count - (opened.count if same else 0), 0)
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
        rows: list[StoreRow],
        deletes: list[tuple[int, int]],
        cursor: int,
        extra: Extra | None = None,
    ) -> None:
        """Insert `rows` (in seq order) and delete the seq ranges `deletes` in one
        transaction, with `extra`'s writes (another module's tables) first when given.
        `cursor`, when above the current one, marks rows up to it as already in memory (not
        to be read back). On failure nothing of it is kept; DiskFull for space or I/O
        errors."""
        self._transact(rows, deletes, extra)
        self._cursor_seq = max(self._cursor_seq, cursor)

    def move_out(
        self, seqs: list[int], copy: Callable[[sqlite3.Connection, list[Run]], None]
    ) -> None:
        """Take the rows `seqs` out of the backlog in one transaction: `copy(db, runs)` first
        writes them where they go (a table of its own in this file), then they are deleted
        and are no longer owed. Neither lost nor settled: moved (quarantine, parking)."""
        runs = seq_runs(seqs)
        self._transact([], runs, lambda db: copy(db, runs))

    def quarantine(self, rows: list[tuple[int, str]]) -> None:
        """Move the rows (seq, why) to the quarantine table: kept aside, never delivered."""
        why = dict(rows)
        now = time.time()

        def copy(db: sqlite3.Connection, _runs: list[Run]) -> None:
            db.executemany(
                "INSERT INTO quarantine (seq, enqueued, body, checksum, reason, at) "
                "SELECT seq, enqueued, body, checksum, ?, ? FROM packets WHERE seq = ?",
                [(reason, now, seq) for seq, reason in why.items()],
            )

        self.move_out(list(why), copy)

    def _transact(self, rows: list[StoreRow], deletes: list[Run], extra: Extra | None) -> None:
        """The one way the packets table changes: one transaction, the ledger in step."""
        db, ledger = self._db, self._ledger
        assert db is not None and ledger is not None, "write before open"
        after = self._owed.copy()
        for first, last in deletes:
            after.remove(first, last)
        inserted = _inserted_runs(rows)
        for first, last in inserted:
            after.add(first, last)
        high = max(self._high, inserted[-1][1]) if inserted else self._high
        pending = (inserted[0][0], inserted[-1][1]) if inserted else None
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                if extra is not None:
                    extra(db)
                if deletes:
                    db.executemany("DELETE FROM packets WHERE seq BETWEEN ? AND ?", deletes)
                if rows:
                    db.executemany("INSERT INTO packets VALUES (?, ?, ?, ?)", rows)
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
        self._ledger_stale = False  # the write inside the transaction was the whole state
        if pending is not None:  # and marked the new rows pending: written again without
            self._rewrite_ledger()
        with contextlib.suppress(OSError):
            ledger.flush(unless_recent=True)

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
        """The next `limit` rows not yet in memory, oldest first; rows whose body does not
        match its checksum are moved to the quarantine table and returned apart."""
        db = self._db
        assert db is not None, "read before open"
        found = db.execute(
            "SELECT seq, enqueued, body, checksum FROM packets WHERE seq > ? ORDER BY seq LIMIT ?",
            (self._cursor_seq, limit),
        ).fetchall()
        good: list[ReadRow] = []
        damaged: list[Damaged] = []
        for seq, at, body, stored in found:
            if isinstance(body, bytes) and checksum(body) == stored:
                good.append((seq, at, body))
                continue
            size = len(body) if isinstance(body, bytes | str) else 0
            why = (
                f"row {seq} of {self.path}: its body does not match its checksum (changed on disk)"
            )
            damaged.append((seq, at, size, why))
        if found:
            self._cursor_seq = found[-1][0]
        if damaged:
            try:
                self.quarantine([(seq, why) for seq, _at, _size, why in damaged])
            except StoreError as exc:  # still never delivered; the next run moves them
                damaged = [(s, a, n, f"{why} (left in place: {exc})") for s, a, n, why in damaged]
        return good, damaged

    def displace(self, limit: int) -> tuple[int, int]:
        """Delete the next `limit` rows not yet in memory (overflow `drop_oldest`); return
        how many and their bytes."""
        db = self._db
        assert db is not None, "displace before open"
        found = db.execute(
            "SELECT max(seq), count(*), coalesce(sum(length(body)), 0) FROM "
            "(SELECT seq, body FROM packets WHERE seq > ? ORDER BY seq LIMIT ?)",
            (self._cursor_seq, limit),
        ).fetchone()
        last, count, size = found
        if not count:
            return 0, 0
        self._transact([], [(self._cursor_seq + 1, last)], None)
        self._cursor_seq = last
        return count, size

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
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
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
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('store_id', ?)", (uuid.uuid4().hex,))
    db.execute("INSERT INTO meta VALUES ('ledger_gen', '0')")


def _checksum(body: object) -> int:
    return checksum(body) if isinstance(body, bytes) else -1


def _inserted_runs(rows: list[StoreRow]) -> list[Run]:
    """The seqs of new rows (in seq order, each once: the primary key refuses a repeat) as
    runs; the common case, one run, is seen from the first and last row alone."""
    if not rows:
        return []
    first, last = rows[0][0], rows[-1][0]
    if last - first + 1 == len(rows):
        return [(first, last)]
    return seq_runs([row[0] for row in rows])


def seq_runs(seqs: list[int]) -> list[Run]:
    """Seqs as sorted inclusive runs of consecutive numbers."""
    if not seqs:
        return []
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
