"""`plant`: a simulated first-order process (a room heating up, a motor spinning up)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, StrictFloat

from schnitzel import NodeContext, PayloadProfile, PluginConfig, StreamPacket, Transform

__all__ = ["PlantConfig", "SimulatedPlant"]


class PlantConfig(PluginConfig):
    """Options of the simulated plant: dx/dt = (gain * u - (x - ambient)) / tau."""

    initial: StrictFloat = Field(default=0.0, description="Value at start.")
    ambient: StrictFloat = Field(default=0.0, description="Value the plant settles to at u=0.")
    gain: StrictFloat = Field(default=1.0, description="Effect of the control input.")
    tau_s: StrictFloat = Field(default=1.0, gt=0, description="Time constant in seconds.")
    dt_s: StrictFloat = Field(default=0.1, gt=0, description="Time step of one control input.")


class SimulatedPlant(Transform):
    """Applies each control input `payload.u` for one step; emits the new `payload.value`."""

    name: ClassVar[str] = "plant"
    Config: ClassVar[type[PluginConfig]] = PlantConfig
    emits_profile = PayloadProfile.JSON_PORTABLE

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self._value = config.initial

    def process(self, packet: StreamPacket) -> StreamPacket:
        config = self.config
        payload = packet.payload
        u = payload.get("u") if isinstance(payload, dict) else None
        if isinstance(u, bool) or not isinstance(u, int | float):
            raise ValueError("plant needs a control input: a number in payload.u")
        step = (config.gain * u - (self._value - config.ambient)) / config.tau_s
        self._value += step * config.dt_s
        out = {"value": self._value, "u": u}
        if "target" in payload:
            out["target"] = payload["target"]
        return StreamPacket.new(packet.kind, self.context.node_id, packet.seq, out)
