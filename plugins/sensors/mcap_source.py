"""`mcap` source: replays a recorded robot log (an MCAP file) deterministically.

Messages come in log-time order (the `mcap` package's indexed reader), each a packet whose
`ts` is the message's log time, not the time of the replay, so a replay computes what the
robot saw when it saw it. `seq` is the message's place in that order and the key
`<node>:<file name>:<seq>`: the same file gives the same packets, keys and order every run.
A JSON message (`message_encoding: json`) becomes its object; any other encoding (ROS 2 CDR,
protobuf, ...) is passed on undecoded, base64, with its schema's name and encoding.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, StrictBool, StrictStr

from schnitzel import (
    BadRecord,
    CheckContext,
    EnvironmentProblem,
    PacketKind,
    PayloadProfile,
    PluginConfig,
    Source,
    StreamPacket,
    import_extra,
    read_json,
)
from schnitzel_plugins.sensors.configured_kind import KindFromConfig
from schnitzel_plugins.sensors.errors import SensorError

if TYPE_CHECKING:
    from mcap.records import Channel, Message, Schema

__all__ = ["McapConfig", "McapSource"]

NS = 1_000_000_000


class McapConfig(PluginConfig):
    """Options of the mcap source."""

    path: StrictStr = Field(min_length=1, description="MCAP file; relative to the graph file.")
    topics: list[StrictStr] | None = Field(
        default=None, min_length=1, description="Topics to replay; null: every topic."
    )
    realtime: StrictBool = Field(
        default=False,
        description="Keep the recording's pace (the gaps between log times) instead of "
        "replaying as fast as the graph takes the messages.",
    )
    kind: PacketKind = Field(default="telemetry", description="Kind of the packets made.")


class McapSource(KindFromConfig, Source):
    """Replays an MCAP file in log-time order; `ts` is each message's log time."""

    name: ClassVar[str] = "mcap"
    Config: ClassVar[type[PluginConfig]] = McapConfig
    emits = frozenset({"telemetry"})
    emits_profile = PayloadProfile.JSON_PORTABLE
    blocking: ClassVar[bool] = True  # file reads run in the node's thread
    reports_bad_records: ClassVar[bool] = True

    config: McapConfig

    async def open(self) -> None:
        import_extra(
            "mcap",
            node_id=self.context.node_id,
            needed_by="the mcap plugin",
            package="the mcap package",
            extra="sensors",
            error=SensorError,
        )
        self._path = self.context.resolve(self.config.path)
        problem = _unreadable(self._path)
        if problem is not None:
            raise SensorError(f"node {self.context.node_id!r}: {problem}")

    def packets(self) -> Iterator[StreamPacket | BadRecord | None]:
        from mcap.reader import make_reader

        config, node_id, name = self.config, self.context.node_id, self._path.name
        stopping = self.context.stopping
        first_log: int | None = None
        started = 0.0
        with self._path.open("rb") as file:
            reader = make_reader(file)
            self._tell_missing_topics(reader)
            messages = reader.iter_messages(topics=config.topics, log_time_order=True)
            for seq, (schema, channel, message) in enumerate(messages):
                if config.realtime:
                    if first_log is None:
                        first_log, started = message.log_time, time.monotonic()
                    due = started + (message.log_time - first_log) / NS
                    if due > time.monotonic():
                        yield None  # hand on what was read before waiting
                        if stopping.wait(due - time.monotonic()):
                            return
                yield self._item(seq, f"{node_id}:{name}:{seq}", schema, channel, message)

    def _tell_missing_topics(self, reader: Any) -> None:
        """Warn about each topic of `topics` the file has no channel for (validation warned
        too, but the file may have changed since)."""
        missing = _missing_topics(reader, self.config.topics, self._path.name)
        if missing:
            self.context.event("warning", missing)

    def _item(
        self, seq: int, key: str, schema: Schema | None, channel: Channel, message: Message
    ) -> StreamPacket | BadRecord:
        meta = {"idempotency_key": key, "topic": channel.topic}
        payload: Any
        if channel.message_encoding == "json":
            try:
                payload = read_json(message.data, strict=False)
            except ValueError as exc:  # not UTF-8, not JSON, nested too deep, too many digits
                return BadRecord(
                    f"a json message that is not JSON ({exc})",
                    where=f"{self._path.name} topic {channel.topic} log time {message.log_time}",
                    raw=message.data,
                    details={"topic": channel.topic, "log_time_ns": message.log_time},
                    key=key,
                )
        else:
            payload = {
                "encoding": channel.message_encoding,
                "schema": schema.name if schema is not None else None,
                "data_b64": base64.b64encode(message.data).decode("ascii"),
            }
        return StreamPacket.new(
            self.config.kind, self.context.node_id, seq, payload, meta, ts=message.log_time / NS
        )

    def rate_hz(self) -> float | None:
        return None  # `realtime` paces by log time itself: a rate cannot follow irregular gaps

    @classmethod
    def check_environment(cls, config: Any, context: CheckContext) -> list[EnvironmentProblem]:
        path = context.resolve(config.path)
        problem = _unreadable(path)
        if problem is not None:
            return [
                EnvironmentProblem(
                    problem,
                    "fix `path` (relative paths resolve against the graph file)",
                    config_key="path",
                )
            ]
        if not config.topics:
            return []
        try:
            from mcap.reader import make_reader

            with open(path, "rb") as file:
                missing = _missing_topics(make_reader(file), config.topics, path.name)
        except Exception:  # no mcap package (the open names the extra), a damaged summary
            return []
        if not missing:
            return []
        return [EnvironmentProblem(missing, "fix `topics`", "topics", severity="warning")]


MAGIC = b"\x89MCAP0\r\n"
"""How every MCAP file begins."""


def _unreadable(path: Any) -> str | None:
    """Why `path` is not an MCAP file to replay, or None."""
    try:
        with open(path, "rb") as file:
            head = file.read(len(MAGIC))
    except FileNotFoundError:
        return f"MCAP file {str(path)!r} does not exist"
    except OSError as exc:
        return f"MCAP file {str(path)!r} cannot be read ({exc.strerror})"
    if head != MAGIC:
        return f"{str(path)!r} is not an MCAP file (it does not start with the MCAP magic)"
    return None


def _missing_topics(reader: Any, wanted: list[str] | None, name: str) -> str:
    """What to say of the topics of `wanted` the file has no channel for: nothing of them is
    replayed (a typo, or a log recorded under other names), and without this no one would
    know; "" when none is missing, or the file has no summary (not indexed) to tell."""
    if not wanted:
        return ""
    summary = reader.get_summary()
    if summary is None:
        return ""
    present = {channel.topic for channel in summary.channels.values()}
    absent = [topic for topic in wanted if topic not in present]
    if not absent:
        return ""
    return (
        f"{name} has no topic {', '.join(absent)} of `topics`: nothing of "
        f"{'it' if len(absent) == 1 else 'them'} is replayed (it has "
        f"{', '.join(sorted(present)) or 'no topic'}); fix `topics`"
    )
