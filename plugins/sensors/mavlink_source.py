"""`mavlink` source: MAVLink telemetry from a drone or rover (pymavlink), over UDP or serial.

Each message received (HEARTBEAT, ATTITUDE, GLOBAL_POSITION_INT, ...) becomes a packet of
kind `kind` whose payload is the message's fields (`to_dict()`, with `mavpackettype` its
type) and whose meta names the sender (`system`, `component`) and the type (`mav_type`).
`types` keeps only some message types. Bytes that do not parse as MAVLink are bad records.
No ROS: pymavlink alone, imported when the node opens (the `mavlink` extra).
"""

from __future__ import annotations

import importlib
import os
import secrets
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import Field, StrictInt, StrictStr

from schnitzel import (
    BadRecord,
    CheckContext,
    EnvironmentProblem,
    NodeContext,
    PacketKind,
    PayloadProfile,
    PluginConfig,
    Source,
    StreamPacket,
    import_extra,
)
from schnitzel_plugins.sensors.configured_kind import KindFromConfig
from schnitzel_plugins.sensors.errors import SensorError

__all__ = ["MavlinkConfig", "MavlinkSource"]

RECV_TIMEOUT_S = 0.2
"""How long one receive waits: also how soon a stop is noticed."""


class MavlinkConfig(PluginConfig):
    """Options of the mavlink source."""

    url: StrictStr = Field(
        default="udpin:0.0.0.0:14550",
        min_length=1,
        description="A pymavlink connection string: udpin:HOST:PORT (listen), "
        "udpout:HOST:PORT, tcp:HOST:PORT, or a serial device /dev/ttyACM0.",
    )
    baudrate: StrictInt = Field(default=57600, gt=0, description="For a serial device.")
    dialect: StrictStr = Field(
        default="common",
        pattern=r"^[a-z0-9_]+$",
        description="The MAVLink dialect to parse (common, ardupilotmega, ...).",
    )
    types: list[StrictStr] | None = Field(
        default=None, min_length=1, description="Message types to keep (HEARTBEAT, ...); null: all."
    )
    kind: PacketKind = Field(default="telemetry", description="Kind of the packets made.")


class MavlinkSource(KindFromConfig, Source):
    """Receives MAVLink messages (pymavlink): each one a telemetry packet."""

    name: ClassVar[str] = "mavlink"
    Config: ClassVar[type[PluginConfig]] = MavlinkConfig
    emits = frozenset({"telemetry"})
    emits_profile = PayloadProfile.JSON_PORTABLE
    blocking: ClassVar[bool] = True
    reports_bad_records: ClassVar[bool] = True

    config: MavlinkConfig

    def __init__(self, config: MavlinkConfig, context: NodeContext) -> None:
        super().__init__(config, context)
        self._connection: Any = None
        self._seq = 0
        self._run = secrets.token_hex(6)
        """Keys are `<node>:<run>:<seq>`: MAVLink messages carry no id that survives a restart."""
        self.by_type: dict[str, int] = {}
        """Messages received per type (plugin_stats)."""

    def stats(self) -> dict[str, Any]:
        """Messages received per type."""
        return {"by_type": dict(sorted(self.by_type.items()))}

    @classmethod
    def check_environment(cls, config: Any, context: CheckContext) -> list[EnvironmentProblem]:
        """A name in `types` that no message of the dialect has (a typo, or another dialect's
        message): nothing would ever match it, and the source would keep nothing of what the
        graph asked for, silently. Not checked without pymavlink (the node's open names the
        extra) or for a dialect it does not have (the open names that)."""
        if not config.types:
            return []
        try:
            dialect = importlib.import_module(f"pymavlink.dialects.v20.{config.dialect}")
        except ImportError:
            return []
        known = {message.msgname for message in dialect.mavlink_map.values()}
        unknown = [name for name in config.types if name not in known]
        if not unknown:
            return []
        return [
            EnvironmentProblem(
                f"`types` names {', '.join(unknown)}, which dialect {config.dialect!r} has no "
                "message for",
                "fix the name (HEARTBEAT, GLOBAL_POSITION_INT, ...), or set the `dialect` that "
                "defines it (ardupilotmega for ArduPilot's own messages)",
                config_key="types",
            )
        ]

    async def open(self) -> None:
        config = self.config
        # pymavlink picks its wire version from MAVLINK20 when its dialect is first imported;
        # the MAVLink 2 parser also reads MAVLink 1, not the other way round.
        os.environ.setdefault("MAVLINK20", "1")
        import_extra(
            "pymavlink.mavutil",
            node_id=self.context.node_id,
            needed_by="the mavlink plugin",
            package="pymavlink",
            extra="mavlink",
            error=SensorError,
        )
        from pymavlink import mavutil

        try:
            self._connection = mavutil.mavlink_connection(
                config.url, baud=config.baudrate, dialect=config.dialect, source_system=255
            )
        except (OSError, ValueError, ImportError) as exc:
            raise SensorError(
                f"node {self.context.node_id!r}: cannot open MAVLink connection {config.url!r} "
                f"({exc}): check `url` (udpin:HOST:PORT to listen) and `dialect`"
            ) from exc

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def packets(self) -> Iterator[StreamPacket | BadRecord | None]:
        connection, stopping = self._connection, self.context.stopping
        wanted = set(self.config.types) if self.config.types else None
        while not stopping.is_set():
            message = connection.recv_match(blocking=True, timeout=RECV_TIMEOUT_S)
            if message is None:
                yield None  # nothing within the timeout: hand on what was received
                continue
            kind = message.get_type()
            if kind == "BAD_DATA":
                yield self._bad(message)
                continue
            if wanted is not None and kind not in wanted:
                continue
            self.by_type[kind] = self.by_type.get(kind, 0) + 1
            yield self._packet(message, kind)

    def _packet(self, message: Any, kind: str) -> StreamPacket:
        seq = self._seq
        self._seq += 1
        node_id = self.context.node_id
        meta = {
            "idempotency_key": f"{node_id}:{self._run}:{seq}",
            "system": message.get_srcSystem(),
            "component": message.get_srcComponent(),
            "mav_type": kind,
        }
        payload = {k: _portable(v) for k, v in message.to_dict().items()}
        return StreamPacket.new(self.config.kind, node_id, seq, payload, meta)

    def _bad(self, message: Any) -> BadRecord:
        seq = self._seq
        self._seq += 1
        raw = bytes(message.get_msgbuf() or b"")
        reason = getattr(message, "reason", "") or "not a MAVLink message"
        return BadRecord(
            str(reason),
            where=f"{self.config.url} message {seq + 1}",
            raw=raw,
            key=f"{self.context.node_id}:{self._run}:{seq}",
        )


def _portable(value: Any) -> Any:
    """A field value as JSON: bytes as hex, sequences as lists."""
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_portable(v) for v in value]
    return value
