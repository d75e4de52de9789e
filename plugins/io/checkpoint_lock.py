"""One checkpoint, one run: a kernel lock beside a source's checkpoint file.

Two runs of one graph with one state dir would both read the input and both write the one
checkpoint: every line read twice, and the checkpoint of each run overwriting the other's.
A durable store refuses a second run (schnitzel/durable/lock.py); a checkpoint now does too.
The lock is a flock() on `<checkpoint>.lock`, which holds the holder's pid for the message;
the kernel drops it when the process dies. Within one process the lock is shared, counted:
a node swapped or reloaded opens its new plugin while the old one still holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path

from schnitzel import SchnitzelError

__all__ = ["CheckpointInUse", "CheckpointLock"]

_held: dict[str, tuple[int, int]] = {}
"""Lock file path -> (its descriptor, how many holders in this process)."""
_guard = threading.Lock()


class CheckpointInUse(SchnitzelError):
    """Another running process holds the checkpoint a source would read and write."""


class CheckpointLock:
    """The lock of one checkpoint file, held from `acquire()` to `release()`."""

    def __init__(self, checkpoint: Path, node_id: str) -> None:
        self.path = checkpoint.with_name(checkpoint.name + ".lock")
        self.node_id = node_id
        self._held = False

    def acquire(self) -> None:
        """Take the lock, or raise CheckpointInUse naming the holder's pid."""
        key = str(self.path)
        with _guard:
            if key in _held:
                fd, count = _held[key]
                _held[key] = (fd, count + 1)
                self._held = True
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            while True:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = _read_pid(fd)
                    os.close(fd)
                    who = f"pid {holder}" if holder else "another process"
                    raise CheckpointInUse(
                        f"node {self.node_id!r}: its checkpoint is in use by another running "
                        f"schnitzel ({who} holds {key!r}); stop that run, or give this run "
                        "its own --state-dir"
                    ) from None
                if _still_at_path(fd, self.path):
                    break
                os.close(fd)  # `schnitzel state prune` removed it meanwhile: make a new one
            with contextlib.suppress(OSError):  # the pid is only for the message above
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            _held[key] = (fd, 1)
            self._held = True

    def release(self) -> None:
        """Drop this holder's share; the last one closes the descriptor (the lock goes)."""
        if not self._held:
            return
        self._held = False
        key = str(self.path)
        with _guard:
            fd, count = _held[key]
            if count > 1:
                _held[key] = (fd, count - 1)
                return
            del _held[key]
            os.close(fd)


def _still_at_path(fd: int, path: Path) -> bool:
    """Whether the file `fd` holds is still the one at `path` (not removed since opened)."""
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
