"""`dedup`: drops packets whose key was already seen within a window."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import Field, StrictFloat, StrictInt

from schnitzel import NodeContext, PluginConfig, Policy, StreamPacket

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

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self._seen: OrderedDict[Any, float] = OrderedDict()
        self._key = _key_function(config.key)

    def process(self, packet: StreamPacket) -> StreamPacket | None:
        key = self._key(packet)
        seen = self._seen
        now = time.monotonic()
        max_age = self.config.window_s
        if max_age is not None:
            while seen and now - next(iter(seen.values())) > max_age:
                seen.popitem(last=False)
        if key in seen:
            return None
        seen[key] = now
        if len(seen) > self.config.window:
            seen.popitem(last=False)
        return packet

    def export_state(self) -> Any:
        """The keys seen with when (monotonic): a swapped dedup keeps its memory. Handed
        over in the process, so the ordered dict itself goes across, without copying."""
        return {"seen": self._seen}

    def import_state(self, state: Any) -> None:
        """Take the keys of the dedup this one replaces (a narrower window keeps the newest)."""
        seen: OrderedDict[Any, float] = state["seen"]
        while len(seen) > self.config.window:
            seen.popitem(last=False)
        self._seen = seen


def _key_function(key: str) -> Callable[[StreamPacket], Any]:
    """How to read the configured key from a packet. A packet without the field is an error
    (the node's on_error policy applies); unhashable values are compared by their repr."""
    if key == "idempotency_key":
        return lambda packet: packet.idempotency_key
    if key == "packet_id":
        return lambda packet: packet.packet_id
    where, _, path = key.partition(".")
    parts = path.split(".")

    def read(packet: StreamPacket) -> Any:
        value: Any = packet.payload if where == "payload" else packet.meta
        for part in parts:
            if not isinstance(value, dict) or part not in value:
                raise ValueError(f"packet has no {key} to deduplicate by")
            value = value[part]
        try:
            hash(value)
        except TypeError:
            return repr(value)
        return (where, value)

    return read
