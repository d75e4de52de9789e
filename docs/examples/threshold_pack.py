"""A complete third-party plugin pack: the `threshold` policy (worked example of docs/plugins.md).

`threshold` lets a sensor packet through only when a number in its payload leaves a band
(`value < below` or `value > above`). It shows the declarations the validator reads most:
a pydantic config (with a `JsonObject` option), the accepted packet kinds, and an
`output_shape` that depends on the config.

Try it without installing anything, from the repository root, with a graph whose node says
`plugin: threshold_pack:Threshold`:

    PYTHONPATH=docs/examples SCHNITZEL_ALLOW_MODULES=threshold_pack schnitzel validate GRAPH

Installed as a distribution, the pack registers through its pyproject.toml instead:

    [project.entry-points."schnitzel.plugins"]
    threshold = "threshold_pack:PACK"

At run time the runtime makes one `Threshold(config, context)` per node and calls
`process(packet)` for each packet: return a packet to pass it on, None to filter it out,
raise to report an error on that packet (the node's `on_error` decides what follows).
Run it with:

    PYTHONPATH=docs/examples SCHNITZEL_ALLOW_MODULES=threshold_pack schnitzel run GRAPH
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, StrictFloat, model_validator

from schnitzel import (
    JsonObject,
    PacketKind,
    PayloadProfile,
    PluginConfig,
    PluginPack,
    Policy,
    StreamPacket,
    StreamShape,
)

__all__ = ["PACK", "Threshold", "ThresholdConfig"]


class ThresholdConfig(PluginConfig):
    """Options of the threshold policy. Unknown keys are refused (PluginConfig forbids them)."""

    key: str = Field(
        default="value",
        pattern=r"^[A-Za-z0-9_]+$",
        description="Payload field holding the number to compare.",
    )
    above: StrictFloat | None = Field(default=None, description="Pass packets above this.")
    below: StrictFloat | None = Field(default=None, description="Pass packets below this.")
    alert_kind: PacketKind | None = Field(
        default=None, description="Kind of the packets that pass; null keeps their kind."
    )
    annotate: JsonObject = Field(
        default={}, description="Entries added to the meta of the packets that pass (JSON)."
    )

    @model_validator(mode="after")
    def _needs_a_bound(self) -> ThresholdConfig:
        # The message reaches the operator as a `bad-config` problem on this node.
        if self.above is None and self.below is None:
            raise ValueError("set `above`, `below` or both; without a bound nothing would pass")
        return self


class Threshold(Policy):
    """Passes sensor packets whose payload value leaves the band [below, above]."""

    name: ClassVar[str] = "threshold"
    Config: ClassVar[type[PluginConfig]] = ThresholdConfig
    accepts: ClassVar[frozenset[str] | None] = frozenset({"sensor"})
    # inputs ("in",), outputs ("out",), emits and emits_profile (SAME_AS_INPUT) keep the
    # defaults of the Policy base class.

    @classmethod
    def output_shape(cls, config: Any, incoming: StreamShape | None) -> StreamShape:
        """Packets keep their payload (so their profile), but may be renamed `alert_kind`."""
        profile = incoming.profile if incoming is not None else PayloadProfile.INPROC_ANY
        if config.alert_kind is not None:
            return StreamShape(frozenset({config.alert_kind}), profile)
        kinds = incoming.kinds if incoming is not None else cls.accepts
        return StreamShape(kinds, profile)

    def process(self, packet: StreamPacket) -> StreamPacket | None:
        """Pass the packet (renamed and annotated) when its value leaves the band."""
        config = self.config
        value = packet.payload.get(config.key) if isinstance(packet.payload, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"payload.{config.key} must be a number, not {value!r}")
        outside = (config.above is not None and value > config.above) or (
            config.below is not None and value < config.below
        )
        if not outside:
            return None  # counted as filtered: an intended outcome, not a loss
        changes: dict[str, Any] = {}
        if config.alert_kind is not None:
            changes["kind"] = config.alert_kind
        if config.annotate:
            changes["meta"] = {**packet.meta, **config.annotate}
        return packet.evolve(**changes) if changes else packet


PACK = PluginPack(
    name="threshold",
    plugins=(Threshold,),
    description="Threshold alerts on sensor values (the docs/plugins.md example).",
)
