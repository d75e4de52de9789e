"""`pid`: a PID controller for feedback loops through a delay node.

A measurement packet (with `payload.<measurement_field>`, usually fed back through a delay
node) only updates what the controller knows, even when it also carries a set point; any
other packet with `payload.<setpoint_field>` is a set point and produces one control packet.
So the loop goes quiet when the set points stop.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, StrictFloat

from schnitzel import NodeContext, PayloadProfile, PluginConfig, StreamPacket, Transform

__all__ = ["Pid", "PidConfig"]


class PidConfig(PluginConfig):
    """Options of the PID controller."""

    kp: StrictFloat = Field(default=1.0, description="Proportional gain.")
    ki: StrictFloat = Field(default=0.0, description="Integral gain (per second).")
    kd: StrictFloat = Field(default=0.0, description="Derivative gain (seconds).")
    dt_s: StrictFloat = Field(default=0.1, gt=0, description="Time step of one set point.")
    setpoint_field: str = Field(default="target", min_length=1, description="Set-point key.")
    measurement_field: str = Field(default="value", min_length=1, description="Measured key.")
    output_min: StrictFloat = Field(default=-1e9, description="Lowest control output.")
    output_max: StrictFloat = Field(default=1e9, description="Highest control output.")


class Pid(Transform):
    """Emits a control output `u` for each set point, from the latest measurement."""

    name: ClassVar[str] = "pid"
    Config: ClassVar[type[PluginConfig]] = PidConfig
    emits_profile = PayloadProfile.JSON_PORTABLE

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self._measurement: float | None = None
        self._integral = 0.0
        self._last_error: float | None = None
        self._seq = 0

    def process(self, packet: StreamPacket) -> StreamPacket | None:
        config = self.config
        payload = packet.payload
        if not isinstance(payload, dict):
            raise ValueError("pid needs a JSON object payload")
        if config.measurement_field in payload:
            self._measurement = _number(payload, config.measurement_field)
            return None  # a measurement only updates the controller's state
        if config.setpoint_field not in payload:
            raise ValueError(
                f"packet has neither payload.{config.setpoint_field} (a set point) nor "
                f"payload.{config.measurement_field} (a measurement)"
            )
        if self._measurement is None:
            raise ValueError("set point before any measurement; start the loop with a delay")
        target = _number(payload, config.setpoint_field)
        error = target - self._measurement
        derivative = 0.0 if self._last_error is None else (error - self._last_error) / config.dt_s
        self._last_error = error
        unclamped = config.kp * error + config.ki * (self._integral + error * config.dt_s)
        unclamped += config.kd * derivative
        output = min(max(unclamped, config.output_min), config.output_max)
        if output == unclamped:  # anti-windup: integrate only while the output is not clamped
            self._integral += error * config.dt_s
        self._seq += 1
        return StreamPacket.new(
            packet.kind,
            self.context.node_id,
            self._seq - 1,
            {"u": output, config.setpoint_field: target, "error": error},
        )

    def export_state(self) -> Any:
        """The loop's memory (measurement, integral, last error, seq): retuning the gains
        with a swap does not kick the actuator."""
        return {
            "measurement": self._measurement,
            "integral": self._integral,
            "last_error": self._last_error,
            "seq": self._seq,
        }

    def import_state(self, state: Any) -> None:
        self._measurement = state["measurement"]
        self._integral = float(state["integral"])
        self._last_error = state["last_error"]
        self._seq = int(state["seq"])


def _number(payload: dict[str, Any], field: str) -> float:
    value = payload[field]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"payload.{field} must be a number, not {value!r}")
    return float(value)
