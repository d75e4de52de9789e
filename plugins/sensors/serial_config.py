"""Options of the `serial` source."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictFloat, StrictInt, StrictStr, model_validator

from schnitzel import PacketKind, PluginConfig

__all__ = ["SerialConfig"]


class SerialConfig(PluginConfig):
    """Options of the serial source."""

    port: StrictStr = Field(
        min_length=1,
        description="The device: /dev/ttyUSB0, or better a stable name such as "
        "/dev/serial/by-id/... (the same after the device comes back).",
    )
    baudrate: StrictInt = Field(default=9600, gt=0, description="Line speed, bits per second.")
    format: Literal["text", "json"] = Field(
        default="text",
        description="text: each line is the payload {'line': ...}; json: each line a JSON "
        "object, the payload (a line that is not one is a bad record).",
    )
    encoding: StrictStr = Field(default="utf-8", description="How the lines are encoded.")
    kind: PacketKind = Field(default="sensor", description="Kind of the packets made.")
    max_line_bytes: StrictInt = Field(
        default=4096, ge=16, description="A longer line is a bad record (the rest skipped)."
    )
    reconnect_initial_s: StrictFloat = Field(
        default=0.2, gt=0, description="First wait before opening the device again."
    )
    reconnect_max_s: StrictFloat = Field(
        default=5.0, gt=0, description="Longest wait between attempts (doubling from initial)."
    )

    @model_validator(mode="after")
    def _waits(self) -> SerialConfig:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be at least reconnect_initial_s")
        return self
