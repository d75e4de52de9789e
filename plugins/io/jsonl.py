"""`jsonl`: JSON Lines files. As a source it reads objects; as a sink it appends packets."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from pydantic import Field, StrictBool

from schnitzel.contract.kinds import PayloadProfile
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


class JsonlSinkConfig(PluginConfig):
    """Options of the jsonl sink."""

    path: str = Field(min_length=1, description="File to append to; relative to the graph file.")


class JsonlSink(Sink):
    """Appends one packet per line in the portable JSON encoding."""

    name: ClassVar[str] = "jsonl"
    Config: ClassVar[type[PluginConfig]] = JsonlSinkConfig
    requires_portable: ClassVar[bool] = True

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
