"""`jsonl` source: reads a JSON Lines file, one packet per object."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import Field, StrictBool

from schnitzel.contract.codec import is_encoded_packet, packet_from_dict
from schnitzel.contract.kinds import PayloadProfile
from schnitzel.contract.packet import StreamPacket
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
