"""`deadband`: passes a reading only when it moved by more than `delta` (absolute, or percent
of the last reading passed) since the last one passed for its key."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar, Literal

from pydantic import Field, StrictFloat, StrictInt

from schnitzel import NodeContext, PluginConfig, Policy, StreamPacket
from schnitzel_plugins.processing.fields import (
    FIELD_PATTERN,
    KEY_PATTERN,
    key_reader,
    number_reader,
)
from schnitzel_plugins.processing.handover import own_state, tagged

__all__ = ["Deadband", "DeadbandConfig"]


class DeadbandConfig(PluginConfig):
    """Options of `deadband`."""

    field: str = Field(
        default="value", pattern=FIELD_PATTERN, description="Payload field with the reading."
    )
    delta: StrictFloat = Field(gt=0, description="How far a reading must move to pass.")
    mode: Literal["absolute", "percent"] = Field(
        default="absolute",
        description="`absolute`: |v - last| > delta; `percent`: > delta % of |last|.",
    )
    by: str | None = Field(
        default="source_id",
        pattern=KEY_PATTERN,
        description="One reference per value of: source_id, kind, payload.<f>, meta.<f>; "
        "null: one for all.",
    )
    max_keys: StrictInt = Field(
        default=100_000, ge=1, description="Keys remembered (the least recently seen forgotten)."
    )


class Deadband(Policy):
    """Passes a reading only when it moved by more than `delta` (absolute or percent), per key.

    The reference is the last reading passed for the key; the first of each key passes."""

    name: ClassVar[str] = "deadband"
    Config: ClassVar[type[PluginConfig]] = DeadbandConfig

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self._read = number_reader(config.field)
        self._key = key_reader(config.by)
        self._percent = config.mode == "percent"
        self._last: OrderedDict[Any, float] = OrderedDict()

    def process(self, packet: StreamPacket) -> StreamPacket | None:
        value = self._read(packet)
        key = self._key(packet)
        last = self._last.get(key)
        if last is not None:
            self._last.move_to_end(key)
            band = self.config.delta * abs(last) / 100 if self._percent else self.config.delta
            if abs(value - last) <= band:
                return None
        self._last[key] = value
        if len(self._last) > self.config.max_keys:
            self._last.popitem(last=False)
        return packet

    def stats(self) -> dict[str, Any]:
        """Keys remembered."""
        return {"keys": len(self._last)}

    def export_state(self) -> Any:
        """The last reading passed per key."""
        return tagged(self.name, {"field": self.config.field, "last": self._last})

    def import_state(self, state: Any) -> None:
        """Take a deadband's references when it watched the same field."""
        mine = own_state(self.name, state, self.context)
        if mine is None or mine["field"] != self.config.field:
            return
        last: OrderedDict[Any, float] = OrderedDict(mine["last"])  # a copy: see rate_limit
        while len(last) > self.config.max_keys:
            last.popitem(last=False)
        self._last = last
