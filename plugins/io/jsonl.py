"""`jsonl`: JSON Lines files. As a source it reads objects; as a sink it appends packets."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import IO, Any, ClassVar

from pydantic import Field, StrictBool

from schnitzel.contract.codec import encode_packet, is_encoded_packet, packet_from_dict
from schnitzel.contract.kinds import PayloadProfile
from schnitzel.contract.packet import StreamPacket
from schnitzel.registry.config_types import PacketKind
from schnitzel.registry.plugin import (
    ANY_KIND,
    CheckContext,
    EnvironmentProblem,
    PluginConfig,
    Sink,
    Source,
)

__all__ = ["JsonlSink", "JsonlSinkConfig", "JsonlSource", "JsonlSourceConfig"]


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
    """Reads a JSON Lines file: each object becomes a packet (seq = zero-based line number)."""

    name: ClassVar[str] = "jsonl"
    Config: ClassVar[type[PluginConfig]] = JsonlSourceConfig
    emits = ANY_KIND  # restored packets keep the kind they were written with
    emits_profile = PayloadProfile.JSON_PORTABLE
    blocking: ClassVar[bool] = True  # file reads run in the node's thread

    async def open(self) -> None:
        if self.config.resume:  # said out loud: an option that silently did nothing would lie
            self.context.logger.warning(
                "resume is not implemented in this build (it comes with durable delivery): "
                "reading %s from the first line",
                self.config.path,
            )

    def packets(self) -> Iterator[StreamPacket]:
        path = self.context.resolve(self.config.path)
        kind, source_id = self.config.kind, self.context.node_id
        with path.open("rb") as lines:
            for number, raw in enumerate(lines):
                if not raw.strip():
                    continue
                yield _line_to_packet(raw, number, kind, source_id, path.name)

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


class JsonlSinkConfig(PluginConfig):
    """Options of the jsonl sink."""

    path: str = Field(min_length=1, description="File to append to; relative to the graph file.")


class JsonlSink(Sink):
    """Appends one packet per line in the portable JSON encoding."""

    name: ClassVar[str] = "jsonl"
    Config: ClassVar[type[PluginConfig]] = JsonlSinkConfig
    requires_portable: ClassVar[bool] = True
    blocking: ClassVar[bool] = True  # file writes run in the node's thread

    _file: IO[bytes] | None = None

    async def open(self) -> None:
        path = self.context.resolve(self.config.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")

    async def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def deliver(self, packet: StreamPacket) -> None:
        self.deliver_batch([packet])

    def deliver_batch(self, packets: list[StreamPacket]) -> None:
        # Encode everything before writing, so a packet that cannot be encoded writes nothing
        # and the per-packet retry pins the error on it.
        assert self._file is not None, "deliver before open"
        lines = "".join([encode_packet(packet) + "\n" for packet in packets]).encode()
        self._file.write(lines)
        self._file.flush()

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
