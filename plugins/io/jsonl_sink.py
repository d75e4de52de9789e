"""`jsonl` sink: appends one packet per line in the portable JSON encoding.

What it promises (docs/operations.md, "The jsonl sink's files"):

- A batch is written whole or not at all: a failed write or fsync is truncated back to the
  size before the batch, so the file never holds a torn line after an error.
- With `fsync: batch` (the default) a batch counts as delivered only once it is on disk.
- Rotation renames the active file `out.jsonl` to `out.<UTC time>Z.jsonl` (for example
  `out.20261124T031500Z.jsonl`; a second rotation in the same second gets `.1`, `.2`, ...
  before the extension) and opens a fresh `out.jsonl`, so the active file keeps its name.
- On open, a last line torn by a crash (no final newline) is cut off with a warning.
- A full disk (ENOSPC, EDQUOT) fails the batch, or, when the node's inbox is durable, holds
  it and retries with backoff until it fits.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, StrictFloat, StrictInt, model_validator

from schnitzel import (
    CheckContext,
    EnvironmentProblem,
    NodeContext,
    PluginConfig,
    Sink,
    StreamPacket,
)

__all__ = ["DISK_FULL", "FsyncPolicy", "JsonlSink", "JsonlSinkConfig", "rotated_files"]

FsyncPolicy = Literal["batch", "interval", "never"]
"""When the sink asks the OS to put written lines on disk (fsync):

- `batch`: after every batch, before it counts as delivered. A delivered packet survives a
  crash or power loss, which the durable-delivery contract needs. Costs one disk flush per
  batch (the runtime batches up to 256 packets, so under load far fewer than one per packet).
- `interval`: at most every `fsync_interval_s`, after a write, and on rotation and close.
  Up to that long of delivered lines can be lost to a power cut (not to a crash of schnitzel
  alone: the OS still holds them).
- `never`: the OS writes back when it likes (on Linux typically within 30 s). Fastest; a
  power cut can lose any line delivered since, and a packet counted as delivered is gone.
"""

DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
"""Errors that mean "no room": the batch may fit later."""

BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
"""Retry delays on a full disk with a durable inbox: 0.1 s, doubling, at most 5 s."""

_STAMP = "%Y%m%dT%H%M%SZ"
_READ_BACK = 64 * 1024


class JsonlSinkConfig(PluginConfig):
    """Options of the jsonl sink."""

    path: str = Field(min_length=1, description="File to append to; relative to the graph file.")
    fsync: FsyncPolicy = Field(
        default="batch",
        description="When written lines are forced to disk: batch (before a batch counts as "
        "delivered), interval (every fsync_interval_s) or never (left to the OS).",
    )
    fsync_interval_s: StrictFloat = Field(
        default=1.0, gt=0, description="With `fsync: interval`: seconds between fsyncs, at most."
    )
    rotate_bytes: StrictInt | None = Field(
        default=None,
        ge=1024,
        description="Rotate before a batch would take the file past this size (bytes).",
    )
    rotate_s: StrictFloat | None = Field(
        default=None, gt=0, description="Rotate a file this many seconds old at the next batch."
    )
    keep: StrictInt | None = Field(
        default=None, ge=1, description="Rotated files kept (the oldest are deleted); null: all."
    )

    @model_validator(mode="after")
    def _options_apply(self) -> JsonlSinkConfig:
        if self.keep is not None and self.rotate_bytes is None and self.rotate_s is None:
            raise ValueError("keep counts rotated files: set rotate_bytes or rotate_s, or drop it")
        if "fsync_interval_s" in self.model_fields_set and self.fsync != "interval":
            raise ValueError(
                f"fsync_interval_s applies only to `fsync: interval` (fsync is {self.fsync!r}); "
                "drop it or set `fsync: interval`"
            )
        return self


class JsonlSink(Sink):
    """Appends one packet per line in the portable JSON encoding (fsync, rotation, repair)."""

    name: ClassVar[str] = "jsonl"
    Config: ClassVar[type[PluginConfig]] = JsonlSinkConfig
    requires_portable: ClassVar[bool] = True
    blocking: ClassVar[bool] = True  # file writes run in the node's thread

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self.clock: Callable[[], float] = time.monotonic
        """Monotonic seconds for file age and fsync intervals (a seam for tests)."""
        self.sleep: Callable[[float], None] = time.sleep
        """How the full-disk retry waits (a seam for tests)."""
        self.disk_full_outages = 0
        """Times the disk was found full while a durable inbox held the packets."""
        self.disk_full_retries = 0
        """Batch writes retried because the disk was full."""
        self._path = Path()
        self._fd: int | None = None
        self._regular = True  # /dev/stdout and the like can neither fsync nor rotate
        self._started = 0.0  # clock() when the active file began
        self._synced = 0.0  # clock() of the last fsync
        self._unsynced = False
        self._torn_at: int | None = None  # size to cut back to before the next write
        self._outage_since: float | None = None
        # with `concurrency` > 1 the runtime calls deliver_batch from several threads
        self._lock = threading.Lock()
        # here, not at the top: validating a graph must not import the codec (msgspec)
        from schnitzel import encode_packet

        self._encode = encode_packet

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        import asyncio  # here, not at the top: validating a graph must not import asyncio

        await asyncio.to_thread(self._open)

    async def close(self) -> None:
        import asyncio

        await asyncio.to_thread(self._close)

    def _open(self) -> None:
        self._path = path = self.context.resolve(self.config.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()
        self._ensure_open()
        if not self._regular and self._rotating:
            self._close()
            raise ValueError(
                f"{path} is not a regular file, so it cannot be rotated; "
                "drop rotate_bytes and rotate_s or write to a file"
            )

    def _close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is None:
                return
            try:
                if self._unsynced:
                    self._fsync(fd)
            finally:
                os.close(fd)

    # -- delivery ----------------------------------------------------------------------------

    def deliver(self, packet: StreamPacket) -> None:
        self.deliver_batch([packet])

    def deliver_batch(self, packets: list[StreamPacket]) -> None:
        # Encode everything before writing, so a packet that cannot be encoded writes nothing
        # and the per-packet retry pins the error on it.
        encode = self._encode
        data = "".join([encode(packet) + "\n" for packet in packets]).encode()
        with self._lock:
            if self.context.durable:
                self._write_until_it_fits(data, len(packets))
            else:
                self._write(data)

    def _write_until_it_fits(self, data: bytes, count: int) -> None:
        """Retry a batch the disk has no room for: the packets stay in the durable inbox until
        it is written, so waiting loses nothing. Logs once per outage, not per attempt."""
        delay = BACKOFF_FIRST_S
        while True:
            try:
                self._write(data)
            except OSError as exc:
                if exc.errno not in DISK_FULL:
                    raise
                self._note_disk_full(exc, count)
                self.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            if self._outage_since is not None:
                self.context.logger.info(
                    "%s: disk space is back after %.1f s; wrote the held batch of %d packets "
                    "(outage %d, %d retries so far)",
                    self._path,
                    self.clock() - self._outage_since,
                    count,
                    self.disk_full_outages,
                    self.disk_full_retries,
                )
                self._outage_since = None
            return

    def _note_disk_full(self, exc: OSError, count: int) -> None:
        self.disk_full_retries += 1
        if self._outage_since is not None:
            return
        self._outage_since = self.clock()
        self.disk_full_outages += 1
        self.context.logger.warning(
            "%s; holding a batch of %d packets and retrying every %g s up to %g s until it "
            "fits (the packets are safe in the durable inbox)",
            exc.strerror,
            count,
            BACKOFF_FIRST_S,
            BACKOFF_MAX_S,
        )

    def _write(self, data: bytes) -> None:
        """Rotate if due, then append `data` whole or not at all; fsync per the policy."""
        try:
            fd = self._ensure_open()
            if self._torn_at is not None:  # an earlier batch could not be cut back: try again
                os.ftruncate(fd, self._torn_at)
                self._torn_at = None
            size = os.fstat(fd).st_size
            if self._rotation_due(size, len(data)):
                self._rotate(fd)
                fd = self._ensure_open()
                size = 0
            self._append(fd, size, data)
        except OSError as exc:
            if exc.errno in DISK_FULL:
                hint = (
                    ""  # the caller waits for room
                    if self.context.durable
                    else "; the batch was not written (free space, or give the node a durable "
                    "inbox so that it waits for room)"
                )
                message = f"disk full writing {self._path}: {exc.strerror}{hint}"
                raise OSError(exc.errno, message) from exc
            raise

    def _append(self, fd: int, size: int, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            self._sync_after_write(fd)
        except OSError:
            self._cut_back(fd, size)
            raise

    def _cut_back(self, fd: int, size: int) -> None:
        """Remove what a failed write left after `size` bytes (a partial batch)."""
        try:
            if self._regular and os.fstat(fd).st_size > size:
                os.ftruncate(fd, size)
        except OSError as exc:
            self._torn_at = size
            self.context.logger.error(
                "%s: could not cut a failed batch back to %d bytes (%s); retrying before the "
                "next write",
                self._path,
                size,
                exc,
            )

    # -- fsync -------------------------------------------------------------------------------

    def _sync_after_write(self, fd: int) -> None:
        policy = self.config.fsync
        if policy == "batch":
            self._fsync(fd)
        elif policy == "interval":
            self._unsynced = True
            if self.clock() - self._synced >= self.config.fsync_interval_s:
                self._fsync(fd)

    def _fsync(self, fd: int) -> None:
        if self._regular and self.config.fsync != "never":
            os.fsync(fd)
        self._synced = self.clock()
        self._unsynced = False

    def _fsync_directory(self) -> None:
        """Make a created, renamed or deleted name survive a crash."""
        if self.config.fsync == "never":
            return
        fd = os.open(self._path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- the active file ---------------------------------------------------------------------

    def _ensure_open(self) -> int:
        """The active file's descriptor, creating the file if needed."""
        if self._fd is not None:
            return self._fd
        path = self._path
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        info = os.fstat(fd)
        self._regular = stat.S_ISREG(info.st_mode)
        now = self.clock()
        # A file found at start is at least as old as its last write; its creation time is
        # not portable to read, so rotate_s counts from there (it may rotate late, never early).
        age = 0.0 if created or info.st_size == 0 else max(time.time() - info.st_mtime, 0.0)
        self._fd, self._started, self._synced, self._unsynced = fd, now - age, now, False
        if created and self._regular:
            self._fsync_directory()
        return fd

    def _repair_torn_tail(self) -> None:
        """Cut a last line without its newline (a write torn by kill -9 or power loss). Its
        packets were never acknowledged, so a durable inbox upstream delivers them again."""
        path = self._path
        try:
            info = path.stat()
        except FileNotFoundError:
            return
        if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
            return
        with path.open("r+b") as file:
            end = info.st_size
            if os.pread(file.fileno(), 1, end - 1) == b"\n":
                return
            keep = _after_last_newline(file.fileno(), end)
            os.ftruncate(file.fileno(), keep)
            if self.config.fsync != "never":
                os.fsync(file.fileno())
        self.context.logger.warning(
            "%s did not end with a newline (a write torn by a crash): removed the last %d "
            "bytes; those packets were never acknowledged (a durable inbox delivers them again)",
            path,
            end - keep,
        )

    # -- rotation ----------------------------------------------------------------------------

    @property
    def _rotating(self) -> bool:
        return self.config.rotate_bytes is not None or self.config.rotate_s is not None

    def _rotation_due(self, size: int, incoming: int) -> bool:
        """A batch never straddles two files: an empty file takes a batch of any size."""
        if size == 0:
            return False
        limit, max_age = self.config.rotate_bytes, self.config.rotate_s
        if limit is not None and size + incoming > limit:
            return True
        return max_age is not None and self.clock() - self._started >= max_age

    def _rotate(self, fd: int) -> None:
        """Close the active file (on disk first), rename it to its timestamped sibling, and
        leave the next write to create a fresh active file."""
        if self._unsynced:
            self._fsync(fd)
        target = _free_rotated_name(self._path, time.strftime(_STAMP, time.gmtime()))
        os.rename(self._path, target)
        self._fd = None
        os.close(fd)
        self._fsync_directory()
        if self.config.keep is not None:
            self._prune(self.config.keep)

    def _prune(self, keep: int) -> None:
        """Delete the oldest rotated files beyond `keep`. A failure is logged, not raised: the
        batch has nothing to do with it."""
        for old in rotated_files(self._path)[:-keep]:
            try:
                old.unlink(missing_ok=True)
            except OSError as exc:
                self.context.logger.warning("could not delete rotated file %s: %s", old, exc)

    @classmethod
    def check_environment(cls, config: Any, context: CheckContext) -> list[EnvironmentProblem]:
        directory = context.resolve(config.path).parent
        if directory.exists() and not os.access(directory, os.W_OK):
            return [
                EnvironmentProblem(
                    f"cannot write to directory {str(directory)!r}",
                    "fix the directory's permissions or choose another `path`",
                    config_key="path",
                )
            ]
        return []


def rotated_files(active: Path) -> list[Path]:
    """The rotated siblings of the active file `active`, oldest first (by the time in their
    name, then their counter)."""
    return [path for _, _, path in sorted(_rotated(active))]


def _rotated(active: Path) -> list[tuple[str, int, Path]]:
    """(time, counter, path) of each rotated sibling of `active`; no counter counts as 0."""
    stem, suffix = _split_name(active)
    pattern = re.compile(rf"{re.escape(stem)}\.(\d{{8}}T\d{{6}}Z)(?:\.(\d+))?{re.escape(suffix)}")
    found = []
    for candidate in active.parent.iterdir():
        match = pattern.fullmatch(candidate.name)
        if match:
            found.append((match[1], int(match[2] or 0), candidate))
    return found


def _free_rotated_name(active: Path, stamp: str) -> Path:
    """`out.jsonl` -> `out.<stamp>.jsonl`, or `out.<stamp>.<n>.jsonl` after the highest `n`
    taken in that second. A name `keep` freed is not reused: it would sort as the oldest."""
    stem, suffix = _split_name(active)
    taken = [counter for time_, counter, _ in _rotated(active) if time_ == stamp]
    if not taken:
        return active.with_name(f"{stem}.{stamp}{suffix}")
    return active.with_name(f"{stem}.{stamp}.{max(taken) + 1}{suffix}")


def _split_name(active: Path) -> tuple[str, str]:
    """`out.jsonl` -> (`out`, `.jsonl`); a name without an extension keeps it empty."""
    suffix = active.suffix
    return active.name[: len(active.name) - len(suffix)], suffix


def _after_last_newline(fd: int, end: int) -> int:
    """The offset just after the last newline before `end` (0 if there is none)."""
    while end > 0:
        start = max(end - _READ_BACK, 0)
        chunk = os.pread(fd, end - start, start)
        found = chunk.rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0
