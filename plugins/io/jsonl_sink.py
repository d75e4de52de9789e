"""`jsonl` sink: appends one packet per line in the portable JSON encoding."""

from __future__ import annotations

import os
from typing import IO, Any, ClassVar

from pydantic import Field

from schnitzel.contract.codec import encode_packet
from schnitzel.contract.packet import StreamPacket
from schnitzel.registry.plugin import CheckContext, EnvironmentProblem, PluginConfig, Sink

__all__ = ["JsonlSink", "JsonlSinkConfig"]


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
