"""One checkpoint, one run: a kernel lock beside a source's checkpoint file.

Two runs of one graph with one state dir would both read the input and both write the one
checkpoint: every line read twice, and the checkpoint of each run overwriting the other's.
A durable store refuses a second run (schnitzel/durable/lock.py); a checkpoint now does too.
The lock is a flock() on `<checkpoint>.lock`, which holds the holder's pid for the message;
the kernel drops it when the process dies, and a child forked without exec does not keep it
(schnitzel's `LockFile`). Within one run the lock is shared, counted: a node swapped or
reloaded opens its new plugin while the old one still holds it. Another `Runtime` in the same
process is refused like another process.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from schnitzel import LockFile, SchnitzelError

__all__ = ["CheckpointInUse", "CheckpointLock"]

_held: dict[str, tuple[LockFile, int, str]] = {}
"""Lock file path -> (its lock, how many holders, the run holding it) in this process."""
_guard = threading.Lock()


def _forget_held_in_child() -> None:
    """A forked child holds none of its parent's locks (their descriptors are closed), and
    gets a fresh guard: another thread of the parent may have held it at the fork."""
    global _guard  # noqa: PLW0603 - a child must not inherit a guard held at the fork
    _guard = threading.Lock()
    _held.clear()


os.register_at_fork(after_in_child=_forget_held_in_child)


class CheckpointInUse(SchnitzelError):
    """Another running process or runtime holds the checkpoint a source would read and write."""


class CheckpointLock:
    """The lock of one checkpoint file, held from `acquire()` to `release()` by run `run_id`
    (`NodeContext.run_id`): within one run it is shared, counted."""

    def __init__(self, checkpoint: Path, node_id: str, run_id: str) -> None:
        self.path = checkpoint.with_name(checkpoint.name + ".lock")
        self.node_id = node_id
        self.run_id = run_id
        self._held = False

    def acquire(self) -> None:
        """Take the lock, or raise CheckpointInUse naming the holder."""
        key = str(self.path)
        with _guard:
            if key in _held:
                lock, count, run_id = _held[key]
                if run_id != self.run_id:
                    raise CheckpointInUse(
                        f"node {self.node_id!r}: its checkpoint is in use by another runtime "
                        f"in this process (run {run_id}, pid {os.getpid()}, holds {key!r}); "
                        "stop that runtime, or give this one its own state_dir"
                    )
                _held[key] = (lock, count + 1, run_id)
                self._held = True
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            while True:
                lock = LockFile(self.path)
                if not lock.try_lock():
                    who = f"pid {lock.holder}" if lock.holder else "another process"
                    raise CheckpointInUse(
                        f"node {self.node_id!r}: its checkpoint is in use by another running "
                        f"schnitzel ({who} holds {key!r}); stop that run, or give this run "
                        "its own --state-dir"
                    )
                if lock.still_at_path():
                    break
                lock.release()  # `schnitzel state prune` removed it meanwhile: make a new one
            _held[key] = (lock, 1, self.run_id)
            self._held = True

    def release(self) -> None:
        """Drop this holder's share; the last one closes the descriptor (the lock goes)."""
        if not self._held:
            return
        self._held = False
        key = str(self.path)
        with _guard:
            held = _held.get(key)
            if held is None:  # a forked child: the parent's lock was never its own
                return
            lock, count, run_id = held
            if count > 1:
                _held[key] = (lock, count - 1, run_id)
                return
            del _held[key]
            lock.release()
