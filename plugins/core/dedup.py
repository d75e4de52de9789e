"""`dedup`: drops packets whose key was already seen within a window."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, StrictFloat, StrictInt

from schnitzel.registry.plugin import PluginConfig, Policy

__all__ = ["Dedup", "DedupConfig"]


class DedupConfig(PluginConfig):
    """Options of the dedup policy."""

    key: str = Field(
        default="idempotency_key",
        pattern=r"^(idempotency_key|packet_id|(payload|meta)\.[A-Za-z0-9_.-]+)$",
        description="What identifies a packet: idempotency_key, packet_id, payload.<field> "
        "or meta.<field>.",
    )
    window: StrictInt = Field(default=100_000, ge=1, description="Keys remembered (newest kept).")
    window_s: StrictFloat | None = Field(
        default=None, gt=0, description="Forget keys older than this many seconds."
    )


class Dedup(Policy):
    """Drops packets whose key was already seen within the window (counted as filtered)."""

    name: ClassVar[str] = "dedup"
    Config: ClassVar[type[PluginConfig]] = DedupConfig
