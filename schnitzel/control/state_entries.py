"""What a state directory holds and which of it is stale: `schnitzel state list` and
`schnitzel state prune` (docs/operations.md#cleaning-up-the-state-directory).

The state dir gathers files for ever: each `jsonl` source's checkpoint (one per input file),
damaged checkpoints moved aside, the control sockets of runtimes that were killed. Stale, and
what `prune` removes:

- a **checkpoint** of an input file that is gone (no file at the path it names, nor one beside
  it that is a rotated copy of it or the file it was rotated from), not written for
  `older_than`; a checkpoint that names no input file, or names it by a relative path, or
  that a running source holds (its lock taken) stays;
- a **damaged checkpoint** moved aside (`*.json.corrupt-<time>`), or a checkpoint write a crash cut
  short (`.<name>.tmp`), not written for `older_than`;
- the **lock** beside a checkpoint (`<checkpoint>.lock`, plugins/io/checkpoint_lock.py) that no
  run holds, once its checkpoint is gone or stale, not written for `older_than`;
- a **control socket** nobody listens on, a minute old (its runtime is gone; a new run of its
  graph makes a new one).

Never removed: the audit log, log files, durable stores (a store holds packets not yet
delivered; it is its graph's, wherever it lives) and anything else.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from schnitzel.control.paths import CONTROL_DIR, socket_candidates

__all__ = ["StateEntry", "parse_age", "prune", "survey"]

SOCKET_GRACE_S = 60.0
"""A socket nobody listens on is stale once this old (a runtime starting may not listen yet)."""
_SQLITE_HEADER = b"SQLite format 3\x00"
_AGE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class StateEntry:
    """One file of a state directory."""

    path: Path
    kind: str
    """checkpoint, damaged-checkpoint, unfinished-write, socket, audit-log, log,
    durable-store or other."""
    size: int
    age_s: float
    """Since it was last written."""
    about: str
    """What it is about: the input file a checkpoint names, whether a socket answers."""
    stale: str | None
    """Why `prune` removes it; None: it stays."""

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "size": self.size,
            "age_s": round(self.age_s, 1),
            "about": self.about,
            "stale": self.stale,
        }


def parse_age(text: str) -> float:
    """`30d`, `12h`, `15m`, `90s` or a number of seconds, as seconds; ValueError otherwise."""
    text = text.strip().lower()
    unit = _AGE_UNITS.get(text[-1:])
    number = text[:-1] if unit is not None else text
    try:
        value = float(number) * (unit or 1.0)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{text!r} is not an age: write it as 30d, 12h, 15m, 90s or 0")
    return value


def survey(state_dir: Path, older_than_s: float, now: float | None = None) -> list[StateEntry]:
    """Every file of `state_dir` (and its sockets kept elsewhere), oldest first, each with
    whether `prune` removes it."""
    now = time.time() if now is None else now
    entries = [_entry(path, state_dir, older_than_s, now) for path in _files(state_dir)]
    entries.sort(key=lambda e: (-e.age_s, str(e.path)))
    return entries


def prune(entries: list[StateEntry]) -> tuple[list[StateEntry], list[str]]:
    """Remove the stale entries; those removed, and what could not be removed (one line
    each: path and why)."""
    removed: list[StateEntry] = []
    failed: list[str] = []
    for entry in entries:
        if entry.stale is None:
            continue
        try:
            if entry.kind == "socket":
                if not _still_dead(entry.path):
                    continue  # a runtime starting bound a new one there since the survey
                entry.path.unlink(missing_ok=True)
            elif entry.kind in ("checkpoint", "checkpoint-lock"):
                lock = entry.path if entry.kind == "checkpoint-lock" else _lock_of(entry.path)
                if not _unlink_unless_held(entry.path, lock):
                    continue  # a run took it since the survey: it stays
            else:
                entry.path.unlink(missing_ok=True)
        except OSError as exc:
            failed.append(f"{entry.path}: {exc.strerror or exc}")
            continue
        removed.append(entry)
    return removed, failed


def _still_dead(socket_path: Path) -> bool:
    """The socket is still one nobody listens on, past its grace (not one bound since)."""
    try:
        info = socket_path.lstat()
    except FileNotFoundError:
        return True
    age = time.time() - info.st_mtime
    return stat.S_ISSOCK(info.st_mode) and age >= SOCKET_GRACE_S and not _listening(socket_path)


def _lock_of(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".lock")


def _unlink_unless_held(path: Path, lock: Path) -> bool:
    """Remove `path` holding its checkpoint's `lock`, so that no run takes the lock between
    the look and the removal (a run that opened the lock file before it went finds it gone
    once it holds it, and makes a new one: plugins/io/checkpoint_lock.py). False when a run
    holds it now."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        path.unlink(missing_ok=True)
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def _files(state_dir: Path) -> Iterator[Path]:
    if state_dir.is_dir():
        for path in sorted(state_dir.rglob("*")):
            if not path.is_dir() or path.is_symlink():
                yield path
    for path in socket_candidates(state_dir):  # the ones kept outside it (a long state dir)
        if not path.is_relative_to(state_dir.absolute()):
            yield path


def _entry(path: Path, state_dir: Path, older_than_s: float, now: float) -> StateEntry:
    try:
        info = path.lstat()
    except FileNotFoundError:  # gone since the listing
        return StateEntry(path, "other", 0, 0.0, "gone", None)
    age = max(0.0, now - info.st_mtime)
    old = age >= older_than_s
    size = info.st_size
    where = path.relative_to(state_dir).parts if path.is_relative_to(state_dir) else ()
    if stat.S_ISSOCK(info.st_mode):
        if _listening(path):
            return StateEntry(path, "socket", 0, age, "a runtime listens", None)
        # a minute's grace: a runtime starting now may not listen yet
        stale = "nobody listens" if age >= SOCKET_GRACE_S else None
        return StateEntry(path, "socket", 0, age, "left by a runtime that is gone", stale)
    if where[:1] == ("checkpoints",) and stat.S_ISREG(info.st_mode):
        name = path.name
        if ".json.corrupt-" in name:  # not a store moved aside (`<store>.corrupt-<time>`)
            return StateEntry(path, "damaged-checkpoint", size, age, "moved aside", _if(old))
        if name.startswith(".") and name.endswith(".tmp"):
            return StateEntry(path, "unfinished-write", size, age, "cut short", _if(old))
        if name.endswith(".json"):
            return _checkpoint(path, size, age, old)
        if name.endswith(".json.lock"):
            checkpoint = path.with_name(name.removesuffix(".lock"))
            of = _entry(checkpoint, state_dir, older_than_s, now) if checkpoint.exists() else None
            return _checkpoint_lock(path, size, age, old, of)
    if where == ("audit.jsonl",):
        return StateEntry(path, "audit-log", size, age, "append-only, never pruned", None)
    if where[:1] == ("logs",):
        return StateEntry(path, "log", size, age, "rotate or delete it yourself", None)
    if where[:1] == (CONTROL_DIR,) and path.suffix == ".sock":
        return StateEntry(path, "other", size, age, "not a socket", None)
    if _is_store(path):
        about = "holds packets until delivered: never pruned"
        return StateEntry(path, "durable-store", size, age, about, None)
    return StateEntry(path, "other", size, age, "not schnitzel's, or unknown", None)


def _checkpoint(path: Path, size: int, age: float, old: bool) -> StateEntry:
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        named = saved.get("path") if isinstance(saved, dict) else None
    except (OSError, ValueError):
        named = None
    if not isinstance(named, str) or not named:
        return StateEntry(path, "checkpoint", size, age, "names no input file", None)
    input_file = Path(named)
    if not input_file.is_absolute():  # relative to the directory of the run that wrote it
        return StateEntry(path, "checkpoint", size, age, f"{input_file} (relative)", None)
    if _input_left(input_file):
        return StateEntry(path, "checkpoint", size, age, f"{input_file} (there)", None)
    lock = _lock_of(path)
    if lock.exists() and _locked(lock):  # a run reads it (a followed file deleted)
        return StateEntry(path, "checkpoint", size, age, f"{input_file} gone; a run holds it", None)
    stale = "its input file is gone" if old else None
    return StateEntry(path, "checkpoint", size, age, f"{input_file} gone", stale)


def _checkpoint_lock(
    path: Path, size: int, age: float, old: bool, checkpoint: StateEntry | None
) -> StateEntry:
    """A lock no run holds goes with its stale checkpoint, or once its checkpoint is gone."""
    if _locked(path):
        return StateEntry(path, "checkpoint-lock", size, age, "a run holds it", None)
    if checkpoint is None:
        return StateEntry(path, "checkpoint-lock", size, age, "its checkpoint is gone", _if(old))
    if checkpoint.stale is None:
        about = f"of {checkpoint.path.name}"
        return StateEntry(path, "checkpoint-lock", size, age, about, None)
    about = "of a stale checkpoint"
    return StateEntry(path, "checkpoint-lock", size, age, about, checkpoint.stale)


def _locked(path: Path) -> bool:
    """Whether a running source holds the lock (a flock that cannot be taken now)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # cannot look: keep it
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held (BlockingIOError), or cannot look: keep it
        return True
    finally:
        os.close(fd)  # closing drops a lock taken just now
    return False


def _input_left(input_file: Path) -> bool:
    """The file, or one beside it that is a rotated copy of it (`in.jsonl.1`) or the file it
    was rotated from (`in.jsonl` for `in.jsonl.1`)."""
    name = input_file.name
    try:
        return any(
            n.startswith(name) or name.startswith(n)
            for n in (p.name for p in input_file.parent.iterdir())
        )
    except FileNotFoundError:  # the whole directory is gone
        return False
    except OSError:  # cannot look (permissions, an unmounted drive): keep it
        return True


def _is_store(path: Path) -> bool:
    if path.name.endswith(("-wal", "-shm", "-journal")):
        return True
    if not path.is_file():  # opening a named pipe waits for a writer, for ever
        return False
    try:
        with path.open("rb") as file:
            return file.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER
    except OSError:
        return False


def _listening(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(5.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:  # not ours to judge (permissions, a slow runtime): it stays
        return True
    finally:
        probe.close()
    return True


def _if(old: bool) -> str | None:
    return "not written for longer than --older-than" if old else None
