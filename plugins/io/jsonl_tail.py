"""Reading a file line by line while it is appended to, rotated and truncated, like `tail -F`.

`FileTail` reads complete lines of the file at a path, each tagged with the file it came
from (`FileId`) and the byte offset after it, so a checkpoint names one file and one offset.
At the end of what is there it looks at the path again:

- the path now names another file (`mv in.jsonl in.jsonl.1` and a new `in.jsonl`): the old
  file is read to its end first (its last line even without a newline), then any file rotated
  away after it (`in.jsonl.2`: named like it and last written after it; two rotations before
  the tail looked again), oldest first, then the new one from its first line;
- the same file is shorter than what was read, or starts differently (`copytruncate`): the
  rest of the old content is read from the copy beside it (`in.jsonl*` with the same first
  line), then the file from its first line; without a copy that rest is reported as unread;
- nothing changed: without `follow` that is the end; with it, it waits `poll_s` and looks
  again (a partial last line waits for its newline).

Each change is told to the operator through `tell(level, message)`. Pure logic on files:
nothing here knows the runtime.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from schnitzel_plugins.io.jsonl_files import (
    COMPRESSED,
    FileId,
    find_rotated,
    head_digest,
    identify,
    rotated_after,
    rotated_since,
)

__all__ = ["CHUNK", "FileTail", "Line", "Resume"]

CHUNK = 1 << 16
"""Bytes read at once."""


class Line(NamedTuple):
    """One line of an input file."""

    raw: bytes
    """Without its newline."""
    number: int
    """Zero-based line number in its file."""
    end: int
    """Byte offset just after it (and its newline): where the next line starts."""
    file: FileId
    path: str
    """The name the file was read under."""
    may_grow: bool = False
    """A last line without a newline at the end of a run without `follow`: a writer may
    still be writing it."""
    cut: int = 0
    """Bytes of a line over the tail's `max_line_bytes` not kept in `raw` (which holds its
    first `max_line_bytes`); 0 for every other line."""


class Resume(NamedTuple):
    """Where a checkpoint says to go on: in which file, at which byte and line."""

    file: FileId
    offset: int
    line: int
    saved_ns: int | None = None
    """When the checkpoint was written (ns since the epoch): files rotated away at or after
    it hold lines not read, even when the checkpoint's own file is gone."""


class _Reading:
    """One open file being read: what was consumed, and an incomplete last line."""

    def __init__(self, path: Path, offset: int, line: int, at_path: bool) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        self.offset = self.read_to = offset
        self.line = line
        self.at_path = at_path
        """True for the file at the configured path (rotation is looked for from it)."""
        self.partial: list[bytes] = []
        """The chunks of an incomplete last line, joined once its newline comes (joining
        on every read would make one long line cost quadratic time)."""
        self.partial_bytes = 0
        """Bytes in `partial`; at most the tail's `max_line_bytes`."""
        self.cut = 0
        """Bytes of the incomplete line dropped past `max_line_bytes` (not in `partial`)."""
        self.file: FileId | None = None

    def identity(self, whole: bool = False) -> FileId:
        if self.file is None:
            self.file = identify(self.fd, whole)
            assert self.file is not None, "identified once a line is complete"
        return self.file

    def keep(self, piece: bytes, limit: int) -> None:
        """Add a piece of the incomplete line, keeping no more than `limit` bytes of it."""
        room = limit - self.partial_bytes
        if len(piece) > room:
            self.cut += len(piece) - max(room, 0)
            piece = piece[: max(room, 0)]
        if piece:
            self.partial.append(piece)
            self.partial_bytes += len(piece)

    def take(self) -> tuple[bytes, int]:
        """The incomplete line as kept, and how many of its bytes were dropped; then empty."""
        raw, cut = b"".join(self.partial), self.cut
        self.partial, self.partial_bytes, self.cut = [], 0, 0
        return raw, cut

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FileTail:
    """The lines of the file at `path`, through rotations and truncations (see the module)."""

    def __init__(
        self,
        path: Path,
        *,
        follow: bool,
        poll_s: float,
        stopping: threading.Event,
        tell: Callable[[str, str], None],
        max_line_bytes: int = 1 << 62,
    ) -> None:
        self.path = path
        self.max_line_bytes = max_line_bytes
        """Of a longer line only this much is kept in memory (`Line.cut` counts the rest)."""
        self.follow = follow
        self.poll_s = poll_s
        self.stopping = stopping
        self.tell = tell
        self._current: _Reading | None = None
        self._then: _Reading | None = None
        """The file at the path, read after the rotated-away file being finished."""
        self._between: deque[Path] = deque()
        """Files rotated away after the one being finished, read after it, before `_then`."""
        self.resumed = False
        """`start` went on where its `resume` said (in the same file, or in the file it was
        rotated to); False when it began a file from its first line."""

    def start(self, resume: Resume | None) -> None:
        """Open the file, at `resume` when it still names it; explain any other start."""
        path, name = self.path, self.path.name
        here = _Reading(path, 0, 0, at_path=True)
        if resume is None:
            self._current = here
            return
        stat = os.fstat(here.fd)
        size = stat.st_size
        now = identify(here.fd)
        if now == resume.file and size >= resume.offset:
            here.offset = here.read_to = resume.offset
            here.line, here.file = resume.line, now
            self._current = here
            self.resumed = True
            self.tell("info", f"resuming {name} at line {resume.line + 1} (byte {resume.offset})")
            return
        why = _why_not(resume, (stat.st_dev, stat.st_ino), now, size)
        rotated = find_rotated(path, resume.file, resume.offset)
        if rotated is None:
            then = "then "
            if resume.saved_ns is not None:
                known = {(stat.st_dev, stat.st_ino)}
                then = self._queue(rotated_since(path, resume.saved_ns, known), "the checkpoint")
            self._current = self._next_rotated() if self._between else here
            self._then = here if self._between else None
            self.tell(
                "warning",
                f"{name} {why} since the checkpoint, and no file beside it named {name}* "
                f"starts like the checkpoint's file: reading {then.removeprefix('then ')}"
                f"{name} from its first line; "
                f"lines of the old file after line {resume.line}, if it had any, were not read",
            )
            return
        self._current = _Reading(rotated, resume.offset, resume.line, at_path=False)
        self._then = here
        self.resumed = True
        then = self._queue_between(self._current, here)
        self.tell(
            "warning",
            f"{name} {why} since the checkpoint: finishing {rotated.name} from line "
            f"{resume.line + 1}, {then}reading {name} from its first line",
        )

    def first_file(self) -> tuple[FileId, str] | None:
        """The file `start` begins with, and its name then; None while its first line is
        incomplete (it has no identity yet)."""
        current = self._current
        assert current is not None, "start() first"
        if current.file is None:
            current.file = identify(current.fd)
        return None if current.file is None else (current.file, str(current.path))

    def lines(self) -> Iterator[Line | None]:
        """Lines as they come; None when there is nothing new yet (follow mode only): the
        caller hands on what it has, and the next call waits `poll_s` before looking again."""
        current = self._current
        assert current is not None, "start() first"
        read_first = True
        try:
            while True:
                if read_first:
                    yield from self._drain(current)
                after = self._successor(current)
                if after is not None:
                    successor, finish = after
                    if finish:
                        yield from self._drain(current)  # written just before the rename
                        yield from self._last_line(current)
                    current.close()
                    current = self._current = successor
                    read_first = True
                    continue
                if not read_first:  # nothing changed while waiting: read what arrived
                    read_first = True
                    continue
                if not self.follow:
                    yield from self._last_line(current, may_grow=True)
                    return
                yield None
                if self.stopping.wait(self.poll_s):
                    return
                # Look at the path before reading what arrived: after a truncation those
                # bytes belong to a new file whose first lines must not be skipped.
                read_first = False
        finally:
            self.close()

    def close(self) -> None:
        """Close the files still open."""
        for reading in (self._current, self._then):
            if reading is not None:
                reading.close()

    def _drain(self, reading: _Reading) -> Iterator[Line]:
        """The complete lines up to the end of what is there now."""
        fd, name, limit = reading.fd, str(reading.path), self.max_line_bytes
        while True:
            if reading.read_to and _truncated(reading, os.fstat(fd).st_size):
                return  # what follows is another file's: `_successor` deals with it
            chunk = os.pread(fd, CHUNK, reading.read_to)
            if not chunk:
                return
            reading.read_to += len(chunk)
            if b"\n" not in chunk:
                reading.keep(chunk, limit)
                continue
            pieces = chunk.split(b"\n")
            first_cut = 0
            if reading.partial or reading.cut:
                reading.keep(pieces[0], limit)
                pieces[0], first_cut = reading.take()
            reading.keep(pieces.pop(), limit)
            file = reading.identity()
            offset, line = reading.offset, reading.line
            for n, piece in enumerate(pieces):
                # a piece carried from the last read is cut already (first_cut); any other,
                # the first of a read that began a line too, is cut here
                cut = max(len(piece) - limit, 0)
                raw = piece[:limit] if cut else piece
                if n == 0:
                    cut += first_cut
                offset += len(raw) + cut + 1
                yield Line(raw, line, offset, file, name, cut=cut)
                line += 1
            reading.offset, reading.line = offset, line

    def _last_line(self, reading: _Reading, may_grow: bool = False) -> Iterator[Line]:
        """A last line without a newline: once no more will come to that file, or at the end
        of a run without `follow` (`may_grow`)."""
        if not reading.partial and not reading.cut:
            return
        raw, cut = reading.take()
        reading.offset += len(raw) + cut
        reading.line += 1
        file = reading.identity(whole=True)
        yield Line(raw, reading.line - 1, reading.offset, file, str(reading.path), may_grow, cut)

    def _queue_between(self, done: _Reading, then: _Reading) -> str:
        """Queue the files rotated away after `done` (two rotations before the tail looked
        again) to be read after it and before `then`; their names for the operator."""
        known = {(s.st_dev, s.st_ino) for s in (os.fstat(done.fd), os.fstat(then.fd))}
        return self._queue(rotated_after(self.path, os.fstat(done.fd), known), done.path.name)

    def _queue(self, between: list[Path], after: str) -> str:
        """Queue `between` (rotated away after `after`) to be read next, but for the
        compressed ones, which are named in a warning; their names for the operator."""
        compressed = [file.name for file in between if file.name.endswith(COMPRESSED)]
        if compressed:
            self.tell(
                "warning",
                f"{', '.join(compressed)} rotated after {after} and compressed: their "
                "lines are not read (keep the newest rotations uncompressed: delaycompress)",
            )
        readable = [file for file in between if not file.name.endswith(COMPRESSED)]
        self._between.extend(readable)
        return "then " + "".join(f"{file.name}, then " for file in readable)

    def _next_rotated(self) -> _Reading:
        """What comes after a file rotated away: a file rotated after it, else the file at
        the path."""
        while self._between:
            between = self._between.popleft()
            try:
                return _Reading(between, 0, 0, at_path=False)
            except OSError as exc:  # removed meanwhile: said, never silent
                self.tell("warning", f"cannot read {between.name} ({exc.strerror}): skipped")
        then, self._then = self._then, None
        return then if then is not None else _Reading(self.path, 0, 0, at_path=True)

    def _successor(self, reading: _Reading) -> tuple[_Reading, bool] | None:
        """The file to read next, and whether `reading` is to be finished first; None when
        `reading` is still the one (it may grow)."""
        if not reading.at_path:
            return self._next_rotated(), True
        name = self.path.name
        try:
            now = os.stat(self.path)
        except OSError:
            return None  # between a rename and the new file: wait for it
        mine = os.fstat(reading.fd)
        if (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
            try:
                fresh = _Reading(self.path, 0, 0, at_path=True)
            except OSError:
                return None
            then = self._queue_between(reading, fresh)
            self.tell(
                "info",
                f"{name} was rotated after line {reading.line}: finishing the old file, "
                f"{then}reading the new {name} from its first line",
            )
            self._then = fresh
            return self._next_rotated(), True
        if not _truncated(reading, mine.st_size):
            return None
        copy = None
        if reading.file is not None:
            copy = find_rotated(self.path, reading.file, reading.offset)
        fresh = _Reading(self.path, 0, 0, at_path=True)
        if copy is None:
            self.tell(
                "warning",
                f"{name} was truncated after line {reading.line}: reading it again from its "
                f"first line; lines written to it after line {reading.line} before the "
                f"truncation, if any, were not read (no copy named {name}* beside it)",
            )
            return fresh, False
        self._then = fresh
        self.tell(
            "info",
            f"{name} was truncated after line {reading.line} (copytruncate): reading the rest "
            f"from its copy {copy.name}, then {name} from its first line",
        )
        return _Reading(copy, reading.offset, reading.line, at_path=False), False


def _truncated(reading: _Reading, size: int) -> bool:
    """The file is shorter than what was read, or its head changed (truncated and written
    again past where reading stood)."""
    if size < reading.read_to:
        return True
    if reading.file is None:
        return False
    return head_digest(reading.fd) != reading.file.fingerprint


def _why_not(resume: Resume, inode: tuple[int, int], now: FileId | None, size: int) -> str:
    """Why the file at the path is not where the checkpoint says to resume."""
    if inode != (resume.file.device, resume.file.inode):
        return "was rotated or replaced"
    if now is not None and now.fingerprint != resume.file.fingerprint:
        return "was truncated and written again"
    return f"was truncated ({size} bytes, the checkpoint is at byte {resume.offset})"
