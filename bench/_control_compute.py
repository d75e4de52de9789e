"""A blocking compute plugin for the control benchmark's swap of a threaded node.

Graphs name it `_control_compute:Digest` and allowlist the module in `runtime.allow_modules`.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from pydantic import Field, StrictInt

from schnitzel.contract import StreamPacket
from schnitzel.registry import Compute, PluginConfig
from schnitzel.registry.plugin import NodeContext

__all__ = ["Digest", "DigestConfig"]


class DigestConfig(PluginConfig):
    """Options of the digest compute."""

    rounds: StrictInt = Field(default=1, ge=1, le=1000, description="blake2b rounds per packet.")


class Digest(Compute):
    """Hashes each packet's seq `rounds` times on a thread (a small CPU-bound model)."""

    name: ClassVar[str] = "digest"
    Config: ClassVar[type[PluginConfig]] = DigestConfig

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self._rounds = config.rounds

    def process(self, packet: StreamPacket) -> StreamPacket:
        data = packet.seq.to_bytes(8, "little")
        for _ in range(self._rounds):
            data = hashlib.blake2b(data, digest_size=16).digest()
        return packet
