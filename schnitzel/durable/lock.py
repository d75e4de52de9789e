"""One store, one run: a kernel lock on a file named after the store's real path.

The lock file is `<real path>.lock`, where the real path has every symlink resolved, so a
second run that reaches the same SQLite file through a symlinked file or directory takes the
same lock and is refused. The holder writes its pid into the lock file, so the refusal can
name it. The kernel drops the lock when the process dies, so a `kill -9` never leaves a
store locked. The store file itself is flock()ed too, so deleting the side file does not let
a second run in (flock is independent of SQLite's own POSIX record locks on Linux; fcntl or
lockf on the store file would not be: closing such a descriptor drops SQLite's locks).
A hard link, another name for the same file that no path resolution reveals, gets its own
side file but not its own flock on the store file: it is refused too. A child forked without
exec does not keep either lock (schnitzel/durable/lock_file.py), and its copy of a
`StoreLock` released there closes nothing (the numbers it held may be the child's own files
by then). No process can unlock another's: a flock() is dropped only by closing the holder's
own descriptors, or by its death.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from schnitzel.durable.lock_file import (
    LockFile,
    close_in_forked_children,
    forget_in_forked_children,
    run_pid,
)
from schnitzel.errors import RuntimeStartError

__all__ = ["StoreInUse", "StoreLock", "real_path"]


DEAD_RUN_WAIT_S = 3.0
"""How long a lock whose run has ended is waited for: the kernel drops it when the last of
the run's processes (its stores' own, schnitzel/durable/store_process.py) has ended, which
on Linux follows the run's death at once."""


class StoreInUse(RuntimeStartError):
    """A durable store another running process holds (its lock, or a flock on its file)."""


def real_path(path: Path) -> Path:
    """`path` with every symlink resolved (of the file itself and of its directories)."""
    return Path(os.path.realpath(path))


class StoreLock:
    """The exclusive lock of one store file, held while a run has it open."""

    def __init__(self, real: Path, shown: Path) -> None:
        self.path = real.with_name(real.name + ".lock")
        self.shown = shown
        """The store's path as the graph gave it, for messages."""
        self._lock = LockFile(self.path)
        self._store = real
        self._store_fd: int | None = None
        self._store_pid = 0
        """The process that locked the store file: in a forked child its descriptor is
        already closed, and the number may be another file of the child's."""

    def acquire(self) -> None:
        """Take the lock, or raise RuntimeStartError (StoreInUse when another process holds
        it) naming the holder's pid."""
        deadline = time.monotonic() + DEAD_RUN_WAIT_S
        while True:
            try:
                taken = self._lock.try_lock()
            except OSError as exc:
                raise RuntimeStartError(
                    f"cannot create the lock file {str(self.path)!r} of durable store "
                    f"{str(self.shown)!r}: {exc}; the store's directory must be writable by "
                    "this user (fix its permissions or choose another `inbox.durable.path`)"
                ) from exc
            if taken or not _ended(self._lock.holder) or time.monotonic() > deadline:
                break
            time.sleep(0.02)  # a run that just died: its store's process is ending too
        if not taken:
            holder = self._lock.holder
            if holder == run_pid():  # two inboxes of one graph reach one store file
                raise RuntimeStartError(
                    f"durable store {str(self.shown)!r} is already in use by this run (this "
                    f"process, pid {holder}, holds {str(self.path)!r}): another durable inbox "
                    "names the same file through another path (a symbolic or hard link); give "
                    "each durable inbox its own `inbox.durable.path`"
                )
            who = f"pid {holder}" if holder else "another process"
            raise StoreInUse(
                f"durable store {str(self.shown)!r} is in use by another running schnitzel "
                f"({who} holds {str(self.path)!r}); stop that run, or give this graph its own "
                "`inbox.durable.path`"
            )
        try:
            self.lock_store_file()
        except BaseException:
            self.release()
            raise

    def lock_store_file(self) -> None:
        """flock() the store file itself (again, after it was moved aside and recreated).

        A file this user cannot open is left to SQLite, whose error then names the cause."""
        self._unlock_store_file()
        try:
            fd = os.open(self._store, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _flock_holder(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "a process"
            raise StoreInUse(
                f"durable store {str(self.shown)!r} is in use by another running schnitzel "
                f"({who} holds a lock on the store file itself; its lock file "
                f"{str(self.path)!r} was deleted or replaced); stop that run, or give this "
                "graph its own `inbox.durable.path`"
            ) from None
        self._store_fd, self._store_pid = fd, os.getpid()
        close_in_forked_children(fd)

    def sync_store_file(self) -> bool:
        """fsync() the store file through the locked descriptor; False when there is none.
        Another descriptor of the file would not do: closing it drops SQLite's own POSIX
        locks on the file, and then a connection of another process (an operator's `sqlite3`)
        closing could checkpoint and delete the WAL that this process still writes."""
        if self._store_fd is None:
            return False
        os.fsync(self._store_fd)
        return True

    def _unlock_store_file(self) -> None:
        fd, self._store_fd = self._store_fd, None
        if fd is not None and self._store_pid == os.getpid():  # as `LockFile.release`
            forget_in_forked_children(fd)
            os.close(fd)

    def release(self) -> None:
        """Drop both locks; call only after SQLite's connection to the store is closed."""
        self._unlock_store_file()
        self._lock.release()


def _flock_holder(fd: int) -> int | None:
    """The pid holding a flock() on the file open as `fd`, from /proc/locks (Linux)."""
    try:
        inode = os.fstat(fd).st_ino
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].endswith(f":{inode}"):
            return int(fields[4]) if fields[4].isdigit() else None
    return None


def _ended(pid: int | None) -> bool:
    """Whether `pid`, a lock's holder, is a run that no longer exists."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's)
        return False
    return False
