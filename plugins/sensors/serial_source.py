"""`serial` source: a line-oriented serial device (pyserial); reopened when it comes back.

Each line becomes a packet (text: `{"line": ...}`; json: the object). A device that goes
away (unplugged, the USB adapter reset) does not end the source: it reports the trouble,
waits (doubling from `reconnect_initial_s` up to `reconnect_max_s`) and opens `port` again,
so name the device by a path that stays the same (`/dev/serial/by-id/...`). What a device
sent while it was away is gone: a serial line has no replay, so there is no checkpoint.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from schnitzel import (
    BadRecord,
    CheckContext,
    EnvironmentProblem,
    NodeContext,
    PayloadProfile,
    PluginConfig,
    Source,
    StreamPacket,
    import_extra,
    read_json,
)
from schnitzel_plugins.sensors.configured_kind import KindFromConfig
from schnitzel_plugins.sensors.errors import SensorError
from schnitzel_plugins.sensors.line_reader import Line, LineSplitter
from schnitzel_plugins.sensors.serial_config import SerialConfig

if TYPE_CHECKING:
    from serial import Serial

__all__ = ["SerialConfig", "SerialSource"]

READ_TIMEOUT_S = 0.2
"""How long one read waits for a byte: also how soon a stop is noticed."""


class SerialSource(KindFromConfig, Source):
    """Reads lines from a serial device, one packet a line; reopens a device that comes back.

    A device that goes away is reported as trouble and reopened when it is back."""

    name: ClassVar[str] = "serial"
    Config: ClassVar[type[PluginConfig]] = SerialConfig
    emits = frozenset({"sensor"})
    emits_profile = PayloadProfile.JSON_PORTABLE
    blocking: ClassVar[bool] = True
    reports_bad_records: ClassVar[bool] = True

    config: SerialConfig

    def __init__(self, config: SerialConfig, context: NodeContext) -> None:
        super().__init__(config, context)
        self._device: Serial | None = None
        self._lines = LineSplitter(config.max_line_bytes)
        self._seq = 0
        self._run = secrets.token_hex(6)
        """Keys are `<node>:<run>:<seq>`: a line read in another run is another record."""
        self.reconnects = 0
        """Times the device was opened again after it went away."""

    def stats(self) -> dict[str, Any]:
        """Lines read, and how often the device was opened again."""
        return {"lines": self._seq, "reconnects": self.reconnects, "open": self._device is not None}

    async def open(self) -> None:
        import_extra(
            "serial",
            node_id=self.context.node_id,
            needed_by="the serial plugin",
            package="pyserial",
            extra="sensors",
            error=SensorError,
        )

    async def close(self) -> None:
        self._close_device()

    def packets(self) -> Iterator[StreamPacket | BadRecord | None]:
        stopping = self.context.stopping
        wait_s = self.config.reconnect_initial_s
        opened_before = False
        while not stopping.is_set():
            if self._device is None:
                if not self._open_device():
                    yield None
                    stopping.wait(wait_s)
                    wait_s = min(wait_s * 2, self.config.reconnect_max_s)
                    continue
                if opened_before:
                    self.reconnects += 1
                    self.context.event("info", f"{self.config.port}: open again")
                opened_before, wait_s = True, self.config.reconnect_initial_s
                self.context.report_recovered()
            data = self._read()
            if data is None:
                continue  # the device went away: reopened above
            if not data:
                yield None  # nothing within the read timeout: hand on what was read
                continue
            for line in self._lines.feed(data):
                if not line.raw.strip() and not line.cut:
                    continue
                yield self._item(line)

    def _open_device(self) -> bool:
        import serial

        try:
            self._device = serial.Serial(
                self.config.port, self.config.baudrate, timeout=READ_TIMEOUT_S
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            self.context.report_trouble(f"{self.config.port}: cannot open ({_why(exc)})")
            return False
        return True

    def _read(self) -> bytes | None:
        """What arrived (b"" when nothing did within the timeout); None: the device is gone."""
        import serial

        device = self._device
        assert device is not None
        try:
            data: bytes = device.read(1)
            if data and device.in_waiting:
                data += device.read(device.in_waiting)
        except (serial.SerialException, OSError) as exc:
            self.context.report_trouble(f"{self.config.port}: device gone ({_why(exc)})")
            self.context.event("warning", f"{self.config.port}: device gone, reopening")
            self._close_device()
            self._lines.reset()
            return None
        return data

    def _close_device(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            try:
                device.close()
            except OSError as exc:  # already gone: nothing more to release
                self.context.logger.debug("closing %s: %s", self.config.port, exc)

    def _item(self, line: Line) -> StreamPacket | BadRecord:
        config, node_id = self.config, self.context.node_id
        seq = self._seq
        self._seq += 1
        where = f"{config.port} line {seq + 1}"
        key = f"{node_id}:{self._run}:{seq}"
        if line.cut:
            return BadRecord(
                f"longer than max_line_bytes ({config.max_line_bytes}): the rest skipped",
                where=where,
                raw=line.raw,
                key=key,
            )
        try:
            text = line.raw.decode(config.encoding)
        except UnicodeDecodeError as exc:
            return BadRecord(
                f"not {config.encoding} ({exc.reason})", where=where, raw=line.raw, key=key
            )
        if config.format == "text":
            payload: Any = {"line": text}
        else:
            try:
                payload = read_json(text, strict=False)
            except ValueError as exc:  # not JSON, nested too deep, too many digits
                return BadRecord(f"not JSON ({exc})", where=where, raw=line.raw, key=key)
            if not isinstance(payload, dict):
                return BadRecord(
                    f"not a JSON object (a {type(payload).__name__})",
                    where=where,
                    raw=line.raw,
                    key=key,
                )
        return StreamPacket.new(config.kind, node_id, seq, payload, {"idempotency_key": key})

    @classmethod
    def check_environment(cls, config: Any, context: CheckContext) -> list[EnvironmentProblem]:
        if os.path.exists(config.port):
            return []
        return [
            EnvironmentProblem(
                f"serial device {config.port!r} does not exist (yet)",
                "plug the device in, or fix `port`; the source keeps trying to open it",
                config_key="port",
                severity="warning",
            )
        ]


def _why(exc: BaseException) -> str:
    """The short reason an operator reads, not an exception's repr."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
