"""`filter`: passes the packets for which an expression is true."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, StrictInt, model_validator

from schnitzel import NodeContext, PluginConfig, StreamPacket, Transform
from schnitzel_plugins.processing.expressions import (
    DEFAULT_MAX_WORK,
    MAX_WORK_DESCRIPTION,
    ExpressionError,
    ExpressionText,
    check_work,
    compile_expression,
)

__all__ = ["Filter", "FilterConfig"]


class FilterConfig(PluginConfig):
    """Options of `filter`."""

    condition: ExpressionText = Field(
        description="An expression (docs/processing.md); packets for which it is true pass."
    )
    max_work: StrictInt = Field(default=DEFAULT_MAX_WORK, ge=1, description=MAX_WORK_DESCRIPTION)

    @model_validator(mode="after")
    def _within_max_work(self) -> FilterConfig:
        check_work({"condition": self.condition}, self.max_work)
        return self


class Filter(Transform):
    """Passes the packets for which `condition` is true; the others are filtered (counted)."""

    name: ClassVar[str] = "filter"
    Config: ClassVar[type[PluginConfig]] = FilterConfig

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self._condition = compile_expression(config.condition, config.max_work)

    def process(self, packet: StreamPacket) -> StreamPacket | None:
        return packet if self._passes(packet) else None

    def process_batch(self, packets: list[StreamPacket]) -> list[StreamPacket]:
        """The batch's passing packets (one call per batch: the runtime's per-packet cost
        is then paid once). A failure makes the runtime pin it on its packet via `process`."""
        passes = self._passes
        return [packet for packet in packets if passes(packet)]

    def _passes(self, packet: StreamPacket) -> bool:
        verdict = self._condition.evaluate(packet)
        if verdict is True or verdict is False:
            return verdict
        raise ExpressionError(
            f"condition {self._condition.source!r} gave {verdict!r}, not true or false; "
            'compare it (`... > 0`, `... == "x"`) or wrap it in bool()'
        )
