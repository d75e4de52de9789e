"""Which file is which: identities of input files that get rotated, truncated and replaced.

A file is named by its device, its inode and a fingerprint of its head (the first line, at
most `HEAD_BYTES`), the way log shippers tell files apart (Fluent Bit `tail` keeps the
inode; Vector `file` a checksum of the first line). The inode follows a file through a
rename (`mv in.jsonl in.jsonl.1`); the fingerprint tells a new file that got a recycled
inode, or the same inode truncated and written again, from the one a checkpoint names, and
it recognises a copy (`copytruncate`) as the file it was copied from.

Pure logic on files: nothing here knows the runtime.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "HEAD_BYTES",
    "FileId",
    "find_rotated",
    "head_digest",
    "identify",
    "rotated_after",
    "rotated_since",
]

HEAD_BYTES = 4096
"""The fingerprint covers the first line, or this many bytes of a longer first line."""
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip", ".Z")
"""Name endings of rotated files that were compressed: not read as lines."""


@dataclass(frozen=True, slots=True)
class FileId:
    """One input file: where it lives on disk and what it starts with."""

    device: int
    inode: int
    fingerprint: str
    """sha256 (hex) of the file's head: its first line, newline included."""
    key: str = field(init=False, compare=False)
    """12 hex digits naming the file in idempotency keys: the same for the same file
    whatever its name and across restarts, different for a new file."""

    def __post_init__(self) -> None:
        digest = hashlib.sha256(f"{self.inode}:{self.fingerprint}".encode()).hexdigest()
        object.__setattr__(self, "key", digest[:12])

    def as_record(self) -> dict[str, Any]:
        """For a checkpoint file."""
        return {"device": self.device, "inode": self.inode, "fingerprint": self.fingerprint}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> FileId:
        """From `as_record()`'s output; KeyError, TypeError or ValueError when it is not."""
        fingerprint = record["fingerprint"]
        if not isinstance(fingerprint, str):
            raise TypeError("fingerprint is not a string")
        return cls(int(record["device"]), int(record["inode"]), fingerprint)


def head_digest(fd: int, whole: bool = False) -> str | None:
    """The fingerprint of the file open as `fd`: the hash of its first line; of its first
    `HEAD_BYTES` when that line is longer. None while the first line is incomplete, unless
    `whole` (a last line without a newline that is read anyway): then all of it."""
    head = os.pread(fd, HEAD_BYTES, 0)
    end = head.find(b"\n")
    if end >= 0:
        head = head[: end + 1]
    elif len(head) < HEAD_BYTES and not (whole and head):
        return None
    return hashlib.sha256(head).hexdigest()


def identify(fd: int, whole: bool = False) -> FileId | None:
    """The identity of the file open as `fd` (None while its first line is incomplete)."""
    digest = head_digest(fd, whole)
    if digest is None:
        return None
    stat = os.fstat(fd)
    return FileId(stat.st_dev, stat.st_ino, digest)


def find_rotated(path: Path, wanted: FileId, offset: int) -> Path | None:
    """The file `wanted` names, now under another name beside `path` (`in.jsonl.1`,
    `in.jsonl-20261206`): the same device, inode and head (renamed away), else the same head
    and at least `offset` bytes (a `copytruncate` copy; the newest of them). None when there
    is none."""
    try:
        entries = [e for e in os.scandir(path.parent) if e.name.startswith(path.name)]
    except OSError:
        return None
    # The newest copy: where every file starts with the same header line, older copies look
    # like it too.
    copy: tuple[int, Path] | None = None
    for entry in sorted(entries, key=lambda e: e.name):
        if entry.name == path.name:
            continue
        try:
            stat = entry.stat()
            if not entry.is_file() or stat.st_size < offset:
                continue
            fd = os.open(entry.path, os.O_RDONLY)
        except OSError:
            continue
        try:
            digest = head_digest(fd, whole=True)
        finally:
            os.close(fd)
        if digest != wanted.fingerprint:
            continue
        if (stat.st_dev, stat.st_ino) == (wanted.device, wanted.inode):
            return Path(entry.path)
        if copy is None or stat.st_mtime_ns > copy[0]:
            copy = (stat.st_mtime_ns, Path(entry.path))
    return None if copy is None else copy[1]


def rotated_after(path: Path, done: os.stat_result, known: set[tuple[int, int]]) -> list[Path]:
    """Files beside `path` named like it (`in.jsonl.2`) last written after (or when) the file
    `done` (its `fstat`) was: rotated away after it, so never read; oldest first. `known`: (device,
    inode) of files accounted for (the one being finished, the one at `path`). A file
    rotated before `done` was written to last before it, and is left alone. Compressed ones
    (`COMPRESSED`) are among them: the caller cannot read them, and says so."""
    return _rotated_since(path, done.st_mtime_ns, (done.st_dev, done.st_ino), known)


def rotated_since(path: Path, since_ns: int, known: set[tuple[int, int]]) -> list[Path]:
    """Files beside `path` named like it last written at or after `since_ns` (a checkpoint's
    time, its file gone): oldest first, as `rotated_after`."""
    return _rotated_since(path, since_ns, None, known)


def _rotated_since(
    path: Path, since_ns: int, done: tuple[int, int] | None, known: set[tuple[int, int]]
) -> list[Path]:
    found: list[tuple[int, str, Path]] = []
    done_number: int | None = None
    try:
        entries = [e for e in os.scandir(path.parent) if e.name.startswith(path.name)]
    except OSError:
        return []
    for entry in entries:
        if entry.name == path.name:
            continue
        try:
            stat = entry.stat()
            if not entry.is_file():
                continue
        except OSError:
            continue
        if (stat.st_dev, stat.st_ino) == done:
            done_number = _rotation_number(entry.name, path.name)
        # The same time counts as after: file times tick coarsely (a few ms), and reading a
        # file twice costs duplicates where skipping it would lose it.
        if (stat.st_dev, stat.st_ino) in known or stat.st_mtime_ns < since_ns:
            continue
        found.append((stat.st_mtime_ns, entry.name, Path(entry.path)))
    found.sort()
    numbered = sorted(
        (number, file)
        for _mtime, name, file in found
        if (number := _rotation_number(name, path.name)) is not None
    )
    if done_number is not None and numbered and len(numbered) == len(found):
        # Numbered rotations written within one tick of the clock: their numbers say which
        # is older. All below the finished file's: logrotate's shifting, `.1` the newest;
        # all above it: the newest has the highest number.
        if numbered[-1][0] < done_number:
            return [file for _number, file in reversed(numbered)]
        if numbered[0][0] > done_number:
            return [file for _number, file in numbered]
    return [file for _mtime, _name, file in found]


def _rotation_number(name: str, base: str) -> int | None:
    """N of a numbered rotation `in.jsonl.N` (or `in.jsonl.N.gz`), else None."""
    suffix = name[len(base) :]
    for ending in COMPRESSED:
        suffix = suffix.removesuffix(ending)
    digits = suffix[1:]
    if suffix[:1] in (".", "-") and digits.isascii() and digits.isdigit():
        return int(digits)
    return None
