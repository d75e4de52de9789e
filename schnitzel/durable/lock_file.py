"""A kernel lock on a file that names its holder: one run per durable store or checkpoint.

`LockFile` takes an exclusive flock() on a file without waiting and writes the holder's pid
into it, so whoever comes second can be told who holds it. The kernel drops the lock when the
process dies (a `kill -9` too), so a stale file never blocks a start.

A flock() belongs to the open file, which a child forked without exec shares: such a child
(multiprocessing's `fork`, a plugin's own `os.fork()`) kept the lock after its parent died,
and every later run was refused, naming the dead parent. Every descriptor passed to
`close_in_forked_children` is closed in such a child (exec closes them anyway: O_CLOEXEC);
the parent keeps its lock, which lasts while any of its holders has the file open.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path

__all__ = [
    "LockFile",
    "close_in_forked_children",
    "forget_in_forked_children",
    "run_pid",
    "serve_run",
]

_run_pid = 0
"""The run this process serves when it is not the run itself (a store's process,
schnitzel/durable/store_process.py): the pid its locks name."""
_held_fds: set[int] = set()
"""Lock descriptors this process holds, closed in a child forked from it."""
_guard = threading.Lock()


def serve_run(pid: int) -> None:
    """This process serves the run `pid` (a store's process): the locks it takes name that
    run, whose pid is the one an operator sees and stops."""
    global _run_pid  # noqa: PLW0603 - set once, at the start of a store's process
    _run_pid = pid


def run_pid() -> int:
    """The pid of the run this process is, or serves."""
    return _run_pid or os.getpid()


def close_in_forked_children(fd: int) -> None:
    """Close `fd` in every child this process forks from now on (until forgotten)."""
    with _guard:
        _held_fds.add(fd)


def forget_in_forked_children(fd: int) -> None:
    """`fd` is about to be closed here: a child forked later has nothing to close."""
    with _guard:
        _held_fds.discard(fd)


def _close_held_in_child() -> None:
    global _guard  # noqa: PLW0603 - a child must not inherit a guard held at the fork
    _guard = threading.Lock()  # another thread of the parent may have held it at the fork
    for fd in _held_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    _held_fds.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


class LockFile:
    """An exclusive flock() on `path`, held from a `try_lock()` that returned True to
    `release()`. The file holds the holder's pid (`holder` after a refusal)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        """The locked descriptor while held."""
        self.holder: int | None = None
        """After `try_lock()` returned False: the pid written by the holder, when readable."""
        self._pid = 0
        """The process that took it: in a forked child the descriptor is already closed."""

    def try_lock(self) -> bool:
        """Take the lock without waiting: True when taken (this pid written in), False when
        another open file holds it (`holder` names its pid). OSError when the file cannot be
        created or opened."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.holder = _read_pid(fd)
            os.close(fd)
            return False
        with contextlib.suppress(OSError):  # the pid is only for the refusal message
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{run_pid()}\n".encode(), 0)
        self.fd, self._pid = fd, os.getpid()
        close_in_forked_children(fd)
        return True

    def still_at_path(self) -> bool:
        """Whether the file locked is still the one at `path` (not removed since opened)."""
        assert self.fd is not None
        try:
            here = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(self.fd)
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        """Close the descriptor: the lock goes (unless a forked child still shares it)."""
        fd, self.fd = self.fd, None
        if fd is not None and self._pid == os.getpid():  # a child's copy was closed at fork
            forget_in_forked_children(fd)
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
