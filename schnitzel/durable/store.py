"""The SQLite file behind one durable inbox.

One table of encoded packets keyed by a sequence number that only grows, so replay order is
arrival order. The file is in WAL mode; every write is one transaction (a group commit of
many packets and deletes). A `DurableStore` is used from one thread only: the inbox runs
every call on its own single-thread executor, so calls run in the order they were made.

A file SQLite cannot read (not a database, malformed pages) is renamed beside itself with a
`.corrupt-<UTC time>` suffix and a new, empty store takes its place: never emptied in place,
never deleted (docs/contracts/delivery.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from schnitzel.durable.parking import ParkingChanges, create_parked_table
from schnitzel.errors import RuntimeStartError

_T = TypeVar("_T")

__all__ = ["Backlog", "DiskFull", "DurableStore", "StoreError", "StoreRow"]

APPLICATION_ID = 0x53434E5A  # "SCNZ": marks a file as a schnitzel store
FORMAT_VERSION = 1
WAL_LIMIT_BYTES = 64 << 20
"""The WAL file is truncated back to this size after a checkpoint."""
VACUUM_FREE_PAGES = 2048
"""Free pages (8 MiB at 4 KiB) an empty store gives back to the file system."""

_SQLITE_FULL = 13
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26

StoreRow = tuple[int, float, bytes]
"""(seq, enqueued at [unix seconds], encoded packet)."""


class StoreError(Exception):
    """The store cannot be written or read; the message names the file."""


class DiskFull(StoreError):
    """A write failed for lack of space (or an I/O error); nothing of it was kept."""


@dataclass(frozen=True)
class Backlog:
    """What a store held when it was opened."""

    count: int
    bytes: int
    next_seq: int
    quarantined: Path | None
    """Where an unreadable file was moved, if one was."""


class DurableStore:
    """The SQLite file of one durable inbox; every method runs on the inbox's own thread."""

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._db: sqlite3.Connection | None = None
        self._cursor_seq = 0
        """The highest seq already handed to the inbox's memory (read or kept there)."""
        self._lock_fd: int | None = None

    # -- opening ----------------------------------------------------------------------------

    def open(self) -> Backlog:
        """Open (or create) the file; quarantine it and start empty if it is unreadable."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuntimeStartError(
                f"cannot create the directory of durable store {str(self.path)!r}: {exc}; "
                "fix the permissions or choose another `inbox.durable.path`"
            ) from exc
        self._lock()
        quarantined = None
        try:
            backlog = self._open_file()
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise RuntimeStartError(
                    f"cannot open durable store {str(self.path)!r}: {exc}; check that the "
                    "file and its directory are readable and writable by this user"
                ) from exc
            self._close_quietly()
            quarantined = self._quarantine()
            backlog = self._open_file()
        return Backlog(backlog[0], backlog[1], backlog[2], quarantined)

    def _lock(self) -> None:
        """Hold `<store>.lock` while open: two runs sharing a store would hand each other's
        packets to the wrong process. The kernel drops the lock when the process dies."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeStartError(
                f"durable store {str(self.path)!r} is in use by another running schnitzel "
                f"(it holds {str(lock_path)!r}); stop that run, or give this graph its own "
                "`inbox.durable.path`"
            ) from None
        self._lock_fd = fd

    def _open_file(self) -> tuple[int, int, int]:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db = db
        app_id, version = self._identify(db)  # before any write: the file may not be ours
        if app_id not in (0, APPLICATION_ID):
            raise sqlite3.DatabaseError("file is a SQLite database of another application")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"durable store {str(self.path)!r} cannot use WAL mode ({mode})")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        if app_id == 0:
            self._create(db)
        elif app_id != APPLICATION_ID:
            raise sqlite3.DatabaseError("file is a SQLite database of another application")
        elif version > FORMAT_VERSION:
            raise RuntimeStartError(
                f"durable store {str(self.path)!r} was written by a newer schnitzel (format "
                f"{version}, this one reads {FORMAT_VERSION}); run that version to drain it"
            )
        create_parked_table(db)  # parked poison pills (schnitzel.durable.parking)
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed: {check}")
        count, size, last = db.execute(
            "SELECT count(*), coalesce(sum(length(body)), 0), coalesce(max(seq), 0) FROM packets"
        ).fetchone()
        self._cursor_seq = 0
        return count, size, last + 1

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
            "body BLOB NOT NULL)"
        )
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        db.execute(f"PRAGMA user_version={FORMAT_VERSION}")
        db.execute("COMMIT")

    def _quarantine(self) -> Path:
        """Move the unreadable file (and its WAL) aside; return its new name."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        try:
            os.rename(self.path, target)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    os.rename(side, target.with_name(target.name + suffix))
        except OSError as exc:
            raise RuntimeStartError(
                f"durable store {str(self.path)!r} is unreadable and could not be moved "
                f"aside ({exc}); move it away by hand, then start again"
            ) from exc
        _fsync_directory(self.path.parent)
        return target

    # -- writing ----------------------------------------------------------------------------

    def commit(
        self,
        rows: list[StoreRow],
        deletes: list[tuple[int, int]],
        cursor: int,
        parking: ParkingChanges | None = None,
    ) -> None:
        """Insert `rows` and delete the seq ranges `deletes` in one transaction, with the
        `parking` changes (parked rows move out of `packets` before the deletes). `cursor`,
        when above the current one, marks rows up to it as already in memory (not to be read
        back). On failure nothing of it is kept; DiskFull for space or I/O errors."""
        db = self._db
        assert db is not None, "commit before open"
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                if parking:
                    parking.apply(db)
                    rows = rows + parking.requeued_rows  # new rows too, above all of `rows`
                if deletes:
                    db.executemany("DELETE FROM packets WHERE seq BETWEEN ? AND ?", deletes)
                if rows:
                    db.executemany("INSERT INTO packets VALUES (?, ?, ?)", rows)
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            raise _write_error(self.path, exc) from exc
        self._cursor_seq = max(self._cursor_seq, cursor)

    def query(self, read: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run a read-only `read(connection)` (the parked table's listings)."""
        assert self._db is not None, "query before open"
        return read(self._db)

    def read(self, limit: int) -> list[StoreRow]:
        """The next `limit` rows not yet in memory, oldest first."""
        db = self._db
        assert db is not None, "read before open"
        rows = db.execute(
            "SELECT seq, enqueued, body FROM packets WHERE seq > ? ORDER BY seq LIMIT ?",
            (self._cursor_seq, limit),
        ).fetchall()
        if rows:
            self._cursor_seq = rows[-1][0]
        return rows

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
        try:
            db.execute("DELETE FROM packets WHERE seq > ? AND seq <= ?", (self._cursor_seq, last))
        except sqlite3.OperationalError as exc:
            raise _write_error(self.path, exc) from exc
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
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._close_quietly()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the lock
            self._lock_fd = None

    def _close_quietly(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None


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
    if code in (_SQLITE_FULL, _SQLITE_IOERR) or "full" in str(exc).lower():
        return DiskFull(f"cannot write durable store {str(path)!r}: {exc}")
    return StoreError(f"cannot write durable store {str(path)!r}: {exc}")


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
