"""`map`: sets payload fields from expressions, renames and drops fields, renames the kind."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import Field, StrictInt, model_validator

from schnitzel import NodeContext, PacketKind, PluginConfig, StreamPacket, StreamShape, Transform
from schnitzel_plugins.processing.expressions import (
    DEFAULT_MAX_WORK,
    MAX_WORK_DESCRIPTION,
    NESTED_TOO_DEEP,
    ExpressionError,
    ExpressionText,
    check_work,
    compile_expression,
)

__all__ = ["Map", "MapConfig"]

_COPIED = frozenset({list, tuple, dict})
"""Results `_plain` copies, item by item: charged to the expression's budget by their size."""

FIELD = r"^[A-Za-z0-9_-]+$"


class MapConfig(PluginConfig):
    """Options of `map`. Applied in this order: `set`, `rename`, `drop`, `kind`."""

    set: dict[str, ExpressionText] = Field(
        default={},
        description="Payload fields to set, each from an expression over the incoming packet.",
    )
    rename: dict[str, str] = Field(default={}, description="Payload fields to rename: old: new.")
    drop: list[str] = Field(default=[], description="Payload fields to remove.")
    kind: PacketKind | None = Field(default=None, description="New kind; null keeps the kind.")
    max_work: StrictInt = Field(default=DEFAULT_MAX_WORK, ge=1, description=MAX_WORK_DESCRIPTION)

    @model_validator(mode="after")
    def _does_something(self) -> MapConfig:
        names = [*self.set, *self.rename, *self.rename.values(), *self.drop]
        bad = [name for name in names if not _is_field(name)]
        if bad:
            raise ValueError(f"field names are letters, digits, _ and -: {', '.join(bad)}")
        if not (self.set or self.rename or self.drop or self.kind):
            raise ValueError(
                "set `set`, `rename`, `drop` or `kind`; without them map changes nothing"
            )
        check_work({f"set.{field}": text for field, text in self.set.items()}, self.max_work)
        return self


def _is_field(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "_-" for c in name)


class Map(Transform):
    """Sets payload fields from expressions, renames and drops fields, renames the kind."""

    name: ClassVar[str] = "map"
    Config: ClassVar[type[PluginConfig]] = MapConfig

    @classmethod
    def output_shape(cls, config: Any, incoming: StreamShape | None) -> StreamShape:
        """The input's kinds and profile, or `kind` when set (results are plain JSON)."""
        shape = super().output_shape(config, incoming)
        if config.kind is None:
            return shape
        return StreamShape(frozenset({config.kind}), shape.profile)

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self._set = [
            (field, compile_expression(text, config.max_work)) for field, text in config.set.items()
        ]
        self._rename = list(config.rename.items())
        self._drop = list(config.drop)

    def process(self, packet: StreamPacket) -> StreamPacket:
        payload = packet.payload
        if payload.__class__ is not dict:
            raise ExpressionError(
                f"map works on payloads that are JSON objects; this one is {type(payload).__name__}"
            )
        new = dict(payload)
        for field, expression in self._set:  # each reads the incoming packet, not `new`
            value = expression.evaluate(packet)
            if value.__class__ in _COPIED:  # `[payload.big, payload.big]` is cheap to build
                expression.charge(value)
            try:
                new[field] = _plain(value, expression.source)
            except RecursionError:
                raise ExpressionError(f"{expression.source!r}: {NESTED_TOO_DEEP}") from None
        for old, renamed in self._rename:
            if old in new:
                new[renamed] = new.pop(old)
        for field in self._drop:
            new.pop(field, None)
        if self.config.kind is not None:
            return packet.evolve(payload=new, kind=self.config.kind)
        return packet.evolve(payload=new)

    def process_batch(self, packets: list[StreamPacket]) -> list[StreamPacket]:
        """The batch mapped in one call (the runtime's per-packet cost paid once). A failure
        makes the runtime pin it on its packet via `process`."""
        process = self.process
        return [process(packet) for packet in packets]


def _plain(value: Any, source: str) -> Any:
    """An expression's result as plain JSON (tuples become lists), so a portable stream stays
    portable; NaN and infinities are refused."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise ExpressionError(f"{source!r} gave {value}, which JSON cannot hold")
        return value
    if kind is list or kind is tuple:
        return [_plain(item, source) for item in value]
    if kind is dict:
        return {str(key): _plain(item, source) for key, item in value.items()}
    raise ExpressionError(f"{source!r} gave a {kind.__name__}, which JSON cannot hold")
