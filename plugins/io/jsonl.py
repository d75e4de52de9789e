"""`jsonl` source: reads a JSON Lines file, one packet per object; can follow it like `tail -F`."""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, StrictBool, StrictFloat, StrictInt

from schnitzel import (
    ANY_KIND,
    BadRecord,
    CheckContext,
    CheckpointFile,
    EnvironmentProblem,
    PacketDecodeError,
    PacketKind,
    PayloadProfile,
    PluginConfig,
    Source,
    StreamPacket,
    is_encoded_packet,
    packet_from_dict,
    read_json,
)
from schnitzel_plugins.io.checkpoint_lock import CheckpointLock
from schnitzel_plugins.io.jsonl_files import FileId, identify
from schnitzel_plugins.io.jsonl_tail import FileTail, Line, Resume

__all__ = ["JsonlSource", "JsonlSourceConfig"]


class JsonlSourceConfig(PluginConfig):
    """Options of the jsonl source."""

    path: str = Field(min_length=1, description="File to read; relative to the graph file.")
    resume: StrictBool = Field(
        default=True, description="Continue after the last line accepted downstream."
    )
    kind: PacketKind = Field(
        default="event",
        description="Kind of packets made from plain objects (not for restored packets).",
    )
    follow: StrictBool = Field(
        default=False,
        description="Keep reading lines as they are appended, like `tail -F` (rotation and "
        "truncation followed); the source then ends only with the run.",
    )
    poll_interval_s: StrictFloat = Field(
        default=0.25,
        gt=0,
        le=60,
        description="With `follow`: how often to look for new lines, rotation and truncation.",
    )
    max_line_bytes: StrictInt = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="A longer line is a bad record; no more of it than this is held in memory.",
    )


class JsonlSource(Source):
    """Reads a JSON Lines file: each object becomes a packet (seq = zero-based line number).

    With `resume` (the default) it checkpoints, in the state dir, the file (device, inode,
    a hash of its first line) and the position after the last line the runtime reported
    safe downstream (and a file it begins from its first line there, at once, so a restart
    after a rotation knows which file to finish); the next run starts there, or says why it
    cannot. A line that is not a
    JSON object (or not UTF-8) is a bad record: the node's `on_error` decides (skip and
    count, dead-letter, or stop). Idempotency keys are `<node>:<file>:<line>`.
    """

    name: ClassVar[str] = "jsonl"
    Config: ClassVar[type[PluginConfig]] = JsonlSourceConfig
    emits = ANY_KIND  # restored packets keep the kind they were written with
    emits_profile = PayloadProfile.JSON_PORTABLE
    blocking: ClassVar[bool] = True  # file reads run in the node's thread
    reports_bad_records: ClassVar[bool] = True

    _checkpoint: CheckpointFile | None = None
    _tail: FileTail | None = None
    _lock: CheckpointLock | None = None
    _origin_unsaved = False
    """No checkpoint names the file this run began from its first line yet."""

    async def open(self) -> None:
        config, context = self.config, self.context
        # absolute: its checkpoint names it for `schnitzel state prune`, run from anywhere
        self._file_path = context.resolve(config.path).absolute()
        self._emitted: deque[tuple[StreamPacket | BadRecord, Line]] = deque()
        """What was yielded and not yet checkpointed, with its line (file, position after)."""
        self._tail = FileTail(
            self._file_path,
            follow=config.follow,
            poll_s=config.poll_interval_s,
            stopping=context.stopping,
            tell=context.event,
            max_line_bytes=config.max_line_bytes,
        )
        resume = None
        if config.resume:
            self._checkpoint = CheckpointFile.for_node(context, str(self._file_path.resolve()))
            self._lock = CheckpointLock(self._checkpoint.path, context.node_id, context.run_id)
            self._lock.acquire()  # before reading it: another run may be writing it
        try:  # the runtime closes no plugin whose open() failed: the lock must go here
            if self._checkpoint is not None:
                saved, warning = self._checkpoint.load()
                if warning:
                    context.event("warning", warning)
                if saved is not None:
                    resume = self._resume_from(saved)
                else:
                    self._tell_others_checkpoints()
            try:
                self._tail.start(resume)
            except OSError as exc:
                raise OSError(
                    f"cannot read input file {str(self._file_path)!r} ({exc.strerror}): "
                    "create it, or fix `path` (relative paths resolve against the graph file)"
                ) from exc
            self._origin_unsaved = self._checkpoint is not None and not self._tail.resumed
            if self._origin_unsaved:
                self._save_origin()
        except BaseException:
            await self.close()
            raise

    def _tell_others_checkpoints(self) -> None:
        """This node has no checkpoint of its file, but other node ids do: a node renamed in
        the graph reads the file again from its first line, which nothing else would say."""
        assert self._checkpoint is not None
        others = self._checkpoint.of_other_nodes()
        if others:
            names = ", ".join(repr(path.name) for path in others)
            self.context.event(
                "warning",
                f"no checkpoint of node {self.context.node_id!r} for {str(self._file_path)!r}, "
                f"but {names} in {str(self._checkpoint.path.parent)!r} is one of the same file "
                "under another node id: this run reads the file from its first line. If this "
                "node was renamed, stop the run and rename that file to "
                f"{self._checkpoint.path.name!r} to resume where it stopped",
            )

    async def close(self) -> None:
        if self._tail is not None:
            self._tail.close()
        if self._lock is not None:
            self._lock.release()

    def packets(self) -> Iterator[StreamPacket | BadRecord | None]:
        assert self._tail is not None
        kind, node_id = self.config.kind, self.context.node_id
        keep = self._emitted.append if self._checkpoint is not None else None
        decode, new = _DECODER.decode, StreamPacket.new
        for line in self._tail.lines():
            if line is None:
                yield None
                continue
            if self._origin_unsaved:  # its first line just became complete
                self._save_origin()
            if line.cut:
                if line.may_grow:  # still being written: judged once complete, next run
                    self._leave_incomplete(line)
                    return
                too_long = self._too_long(line)
                if keep is not None:
                    keep((too_long, line))
                yield too_long
                continue
            try:  # the common case inline: a line with a plain JSON object
                value = decode(line.raw.decode())
            except (ValueError, RecursionError):  # _record says what is wrong with it
                value = None
            if value.__class__ is dict and not line.may_grow and "v" not in value:
                key = f"{node_id}:{line.file.key}:{line.number}"
                item: StreamPacket | BadRecord = new(
                    kind, node_id, line.number, value, {"idempotency_key": key}
                )
            elif not line.raw.strip():
                continue  # a blank line: counted, not a record
            else:
                item = _record(line, kind, node_id)
                if line.may_grow and isinstance(item, BadRecord):
                    self._leave_incomplete(line)
                    return
            if keep is not None:
                keep((item, line))
            yield item

    def _leave_incomplete(self, line: Line) -> None:
        self.context.event(
            "warning",
            f"{Path(line.path).name} ends with an incomplete line {line.number + 1} "
            f"({len(line.raw) + line.cut} bytes, no newline): left for the next run, when it "
            "may be complete",
        )

    def _too_long(self, line: Line) -> BadRecord:
        limit, size = self.config.max_line_bytes, len(line.raw) + line.cut
        key = f"{self.context.node_id}:{line.file.key}:{line.number}"
        return _bad(line, key, f"longer than max_line_bytes ({limit}): {size} bytes")

    def checkpoint(self, upto: StreamPacket | BadRecord) -> None:
        """Persist the file and position after `upto`'s line: the next run starts there."""
        if self._checkpoint is None:
            return
        emitted, last = self._emitted, None
        while emitted:
            item, last = emitted.popleft()
            if item is upto:
                break
        if last is None:
            return
        self._checkpoint.save(  # one file, and the position after the line in that file
            {
                "version": 2,
                "path": last.path,
                **last.file.as_record(),
                "offset": last.end,
                "line": last.number + 1,
            }
        )

    def _save_origin(self) -> None:
        """Checkpoint the first line of the file this run begins from its first line, before
        anything of it is passed on. Until the first packet is safe downstream there is no
        other checkpoint: without this one, a restart after a rotation would not know which
        file the run was reading, begin the new file, and never read the rest of the old one
        (packets the run had committed to a durable inbox came back; the lines after them
        were lost, and nothing said so)."""
        assert self._tail is not None and self._checkpoint is not None
        first = self._tail.first_file()
        if first is None:
            return  # its first line is incomplete: saved once it is there
        file, path = first
        self._checkpoint.save(
            {"version": 2, "path": path, **file.as_record(), "offset": 0, "line": 0}
        )
        self._origin_unsaved = False

    def _resume_from(self, saved: dict[str, Any]) -> Resume | None:
        """The checkpoint as a place to resume, or None (said aloud) when it cannot be used."""
        try:
            if saved.get("version") == 1:
                resume = _resume_v1(saved, self._file_path)
                if resume is None:
                    self.context.event(
                        "warning",
                        f"{self._file_path.name} changed since its checkpoint (an older format "
                        "without the file's identity): reading it from its first line",
                    )
                return resume
            file, (offset, line) = FileId.from_record(saved), _position(saved)
            return Resume(file, offset, line, self._saved_ns())
        except (KeyError, TypeError, ValueError) as exc:
            self.context.event(
                "warning",
                f"checkpoint of {self._file_path.name} unreadable ({exc!r}): reading it from "
                "its first line (lines may be delivered twice, none is lost)",
            )
            return None

    def _saved_ns(self) -> int | None:
        """When the checkpoint was written: files rotated away since then hold unread lines."""
        assert self._checkpoint is not None
        try:
            return self._checkpoint.path.stat().st_mtime_ns
        except OSError:
            return None

    @classmethod
    def check_environment(cls, config: Any, context: CheckContext) -> list[EnvironmentProblem]:
        path = context.resolve(config.path)
        if not path.exists():
            return [
                EnvironmentProblem(
                    f"input file {str(path)!r} does not exist",
                    "create it, or fix `path` (relative paths resolve against the graph file)",
                    config_key="path",
                )
            ]
        if not path.is_file() or not os.access(path, os.R_OK):
            return [
                EnvironmentProblem(
                    f"input file {str(path)!r} is not a readable file",
                    "check the path and the file's permissions",
                    config_key="path",
                )
            ]
        return []


_DECODER = json.JSONDecoder()
"""`json.loads` without its per-call checks (same result for a str)."""


def _record(line: Line, kind: str, node_id: str) -> StreamPacket | BadRecord:
    """The packet a line makes, or the bad record it is."""
    number = line.number
    key = f"{node_id}:{line.file.key}:{number}"
    try:
        value = read_json(line.raw.decode("utf-8"), strict=False)
    except UnicodeDecodeError as exc:
        return _bad(line, key, f"not UTF-8 (byte {exc.start + 1} of the line)")
    except ValueError as exc:
        return _bad(line, key, f"not JSON ({exc})")
    if not isinstance(value, dict):
        return _bad(line, key, f"not a JSON object (a {type(value).__name__})")
    if is_encoded_packet(value):
        try:
            return packet_from_dict(value)
        except PacketDecodeError as exc:
            return _bad(line, key, f"not a valid encoded packet ({exc})")
    return StreamPacket.new(kind, node_id, number, value, {"idempotency_key": key})


def _bad(line: Line, key: str, reason: str) -> BadRecord:
    name = Path(line.path).name
    return BadRecord(
        reason,
        where=f"{name} line {line.number + 1}",
        raw=line.raw,
        details={"file": line.path, "line": line.number + 1},
        key=key,
    )


_V1_TAIL_BYTES = 64
"""Version 1 checkpoints kept a hash of the 64 bytes before their offset."""


def _position(saved: dict[str, Any]) -> tuple[int, int]:
    """A checkpoint's byte offset and line number; ValueError when either is negative."""
    offset, line = int(saved["offset"]), int(saved["line"])
    if offset < 0 or line < 0:
        raise ValueError(f"offset {offset} and line {line} must be 0 or more")
    return offset, line


def _resume_v1(saved: dict[str, Any], path: Path) -> Resume | None:
    """A checkpoint written before files were identified by their head: usable when the
    file has the same inode and the same bytes before the offset."""
    (offset, line), inode = _position(saved), int(saved["inode"])
    fd = os.open(path, os.O_RDONLY)
    try:
        stat = os.fstat(fd)
        tail = os.pread(fd, min(offset, _V1_TAIL_BYTES), max(offset - _V1_TAIL_BYTES, 0))
        file = identify(fd)
    finally:
        os.close(fd)
    same = stat.st_ino == inode and stat.st_size >= offset
    if not same or file is None or hashlib.sha256(tail).hexdigest() != saved["tail_sha256"]:
        return None
    return Resume(file, offset, line)
