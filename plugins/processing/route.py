"""`route`: sends each packet to the first output port whose expression is true."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, StrictInt, model_validator

from schnitzel import NodeContext, PluginConfig, Routed, StreamPacket, Transform
from schnitzel_plugins.processing.expressions import (
    DEFAULT_MAX_WORK,
    MAX_WORK_DESCRIPTION,
    ExpressionError,
    ExpressionText,
    check_work,
    compile_expression,
)

__all__ = ["DEFAULT_PORT", "Route", "RouteConfig"]

DEFAULT_PORT = "default"
_PORT = re.compile(r"^[a-z0-9_-]+$")


class RouteConfig(PluginConfig):
    """Options of `route`."""

    routes: dict[str, ExpressionText] = Field(
        description="Output ports in order, each with an expression: a packet goes to the "
        "first port whose expression is true (edges: `{from: NODE.PORT, to: ...}`).",
        min_length=1,
    )
    unmatched: Literal["default", "filter"] = Field(
        default="default",
        description="What becomes of a packet no expression matched: `default` sends it to "
        "the port `default` (the first port: an edge without a port takes it); `filter` "
        "filters it out (counted).",
    )
    max_work: StrictInt = Field(default=DEFAULT_MAX_WORK, ge=1, description=MAX_WORK_DESCRIPTION)

    @model_validator(mode="after")
    def _ports_are_names(self) -> RouteConfig:
        bad = [port for port in self.routes if not _PORT.match(port)]
        if bad:
            raise ValueError(f"port names are [a-z0-9_-]: {', '.join(map(repr, bad))}")
        if DEFAULT_PORT in self.routes:
            raise ValueError(f"{DEFAULT_PORT!r} is the port of unmatched packets; rename the route")
        check_work({f"routes.{port}": text for port, text in self.routes.items()}, self.max_work)
        return self


class Route(Transform):
    """Sends each packet to the first port in `routes` whose expression is true, else `default`."""

    name: ClassVar[str] = "route"
    Config: ClassVar[type[PluginConfig]] = RouteConfig
    outputs: ClassVar[tuple[str, ...]] = (DEFAULT_PORT,)

    @classmethod
    def output_ports(cls, config: Any) -> tuple[str, ...]:
        """`default` first, then the ports named in `routes`."""
        return (DEFAULT_PORT, *config.routes)

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self.outputs = self.output_ports(config)  # type: ignore[misc]
        self._routes = [
            (port, compile_expression(text, config.max_work))
            for port, text in config.routes.items()
        ]
        self._filter_unmatched = config.unmatched == "filter"
        self.routed: dict[str, int] = dict.fromkeys(self.outputs, 0)

    # Processor.process's annotation omits Routed, which the runtime takes (plugins.md, Ports)
    def process(self, packet: StreamPacket) -> Routed | StreamPacket | None:  # type: ignore[override]
        for port, expression in self._routes:
            verdict = expression.evaluate(packet)
            if verdict is True:
                self.routed[port] += 1
                return Routed(port, packet)
            if verdict is not False:
                raise ExpressionError(
                    f"route {port!r}: {expression.source!r} gave {verdict!r}, not true or false"
                )
        if self._filter_unmatched:
            return None
        self.routed[DEFAULT_PORT] += 1
        return packet

    def stats(self) -> dict[str, Any]:
        """Packets sent to each port."""
        return {"routed": dict(self.routed)}
