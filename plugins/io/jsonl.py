"""`jsonl` source: reads a JSON Lines file, one packet per object."""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from pydantic import Field, StrictBool

from schnitzel.contract.codec import is_encoded_packet, packet_from_dict
from schnitzel.contract.kinds import PayloadProfile
from schnitzel.contract.packet import StreamPacket
from schnitzel.durable.checkpoint_file import CheckpointFile
from schnitzel.registry.config_types import PacketKind
from schnitzel.registry.plugin import (
    ANY_KIND,
    CheckContext,
    EnvironmentProblem,
    PluginConfig,
    Source,
)

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


class JsonlSource(Source):
    """Reads a JSON Lines file: each object becomes a packet (seq = zero-based line number).

    With `resume` (the default) it checkpoints, in the state dir, the position after the last
    line the runtime reported safe downstream, and the next run starts there; line numbers
    (and so `seq` and idempotency keys) stay those of the file.
    """

    name: ClassVar[str] = "jsonl"
    Config: ClassVar[type[PluginConfig]] = JsonlSourceConfig
    emits = ANY_KIND  # restored packets keep the kind they were written with
    emits_profile = PayloadProfile.JSON_PORTABLE
    blocking: ClassVar[bool] = True  # file reads run in the node's thread

    _checkpoint: CheckpointFile | None = None

    async def open(self) -> None:
        self._file_path = self.context.resolve(self.config.path)
        self._start = Position(0, 0)
        self._emitted: deque[tuple[str, Position]] = deque()
        """(packet id, position after its line) of packets not yet checkpointed."""
        if not self.config.resume:
            return
        self._checkpoint = CheckpointFile.for_node(self.context, str(self._file_path.resolve()))
        saved, warning = self._checkpoint.load()
        if warning:
            self.context.logger.warning("%s", warning)
        if saved is None:
            return
        start, why_not = _usable(saved, self._file_path)
        if why_not:
            self.context.logger.warning(
                "%s changed since its checkpoint (%s): reading from the first line",
                self._file_path,
                why_not,
            )
            return
        self._start = start
        self.context.logger.info(
            "resuming %s at line %d (byte %d)", self._file_path, start.line + 1, start.offset
        )

    def packets(self) -> Iterator[StreamPacket]:
        path = self._file_path
        kind, source_id = self.config.kind, self.context.node_id
        emitted = self._emitted
        offset, number = self._start
        with path.open("rb") as lines:
            lines.seek(offset)
            for raw in lines:
                offset += len(raw)
                number += 1
                if not raw.strip():
                    continue
                packet = _line_to_packet(raw, number - 1, kind, source_id, path.name)
                if self._checkpoint is not None:
                    emitted.append((packet.packet_id, Position(offset, number)))
                yield packet

    def checkpoint(self, upto: StreamPacket) -> None:
        """Persist the position after `upto`'s line: the next run starts there."""
        if self._checkpoint is None:
            return
        emitted, position = self._emitted, None
        while emitted:
            packet_id, after = emitted.popleft()
            position = after
            if packet_id == upto.packet_id:
                break
        if position is None:
            return
        self._checkpoint.save(_checkpoint_record(self._file_path, position))

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


class Position(NamedTuple):
    """A place in the input file: byte offset and zero-based line number."""

    offset: int
    line: int


_TAIL_BYTES = 64
"""Bytes before the checkpoint whose hash tells the same file from a replaced one."""


def _checkpoint_record(path: Path, position: Position) -> dict[str, Any]:
    stat = path.stat()
    return {
        "version": 1,
        "path": str(path),
        "offset": position.offset,
        "line": position.line,
        "inode": stat.st_ino,
        "tail_sha256": _tail_digest(path, position.offset),
    }


def _usable(saved: dict[str, Any], path: Path) -> tuple[Position, str | None]:
    """The saved position, or why it no longer fits the file."""
    try:
        position = Position(int(saved["offset"]), int(saved["line"]))
        tail, inode = saved["tail_sha256"], saved["inode"]
    except (KeyError, TypeError, ValueError) as exc:
        return Position(0, 0), f"checkpoint unreadable: {exc!r}"
    stat = path.stat()
    if stat.st_size < position.offset:
        return position, f"it is now shorter ({stat.st_size} bytes) than the checkpoint"
    if _tail_digest(path, position.offset) != tail:
        replaced = "a different file" if stat.st_ino != inode else "rewritten"
        return position, f"the bytes before the checkpoint differ: {replaced}"
    return position, None


def _tail_digest(path: Path, offset: int) -> str:
    with path.open("rb") as file:
        file.seek(max(offset - _TAIL_BYTES, 0))
        return hashlib.sha256(file.read(min(offset, _TAIL_BYTES))).hexdigest()


def _line_to_packet(raw: bytes, number: int, kind: str, source_id: str, name: str) -> StreamPacket:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{name} line {number + 1} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} line {number + 1} is not a JSON object")
    if is_encoded_packet(value):
        return packet_from_dict(value)
    return StreamPacket.new(kind, source_id, number, value)
