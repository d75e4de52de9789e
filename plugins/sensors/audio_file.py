"""`audio_file` source: a WAV file in chunks of `chunk_ms`, as portable `audio` packets.

Each chunk is a packet whose payload holds the samples as floats in [-1, 1), one list per
channel, with the sample rate and where the chunk starts in the file. `seq` is the chunk's
index and its key `<node>:<file name>:<index>`: reading the same file again makes the same
keys (the file is read from its start each run; a `dedup` node drops what was delivered
before). WAV only, through the standard library's `wave` (PCM, 8/16/24/32-bit).
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import Field, StrictBool, StrictInt, StrictStr

from schnitzel import (
    CheckContext,
    EnvironmentProblem,
    PacketKind,
    PayloadProfile,
    PluginConfig,
    Source,
    StreamPacket,
)
from schnitzel_plugins.sensors.audio_payload import audio_payload
from schnitzel_plugins.sensors.configured_kind import KindFromConfig
from schnitzel_plugins.sensors.errors import SensorError

__all__ = ["AudioFile", "AudioFileConfig"]


class AudioFileConfig(PluginConfig):
    """Options of the audio_file source."""

    path: StrictStr = Field(min_length=1, description="WAV file; relative to the graph file.")
    chunk_ms: StrictInt = Field(
        default=100, ge=1, le=60_000, description="Length of one packet's audio, milliseconds."
    )
    realtime: StrictBool = Field(
        default=False,
        description="Pace packets to the audio's own time (one chunk per chunk_ms) instead of "
        "as fast as the graph takes them.",
    )
    kind: PacketKind = Field(default="audio", description="Kind of the packets made.")


class AudioFile(KindFromConfig, Source):
    """Reads a WAV file in chunks of `chunk_ms`: one `audio` packet per chunk."""

    name: ClassVar[str] = "audio_file"
    Config: ClassVar[type[PluginConfig]] = AudioFileConfig
    emits = frozenset({"audio"})
    emits_profile = PayloadProfile.JSON_PORTABLE
    blocking: ClassVar[bool] = True  # file reads run in the node's thread

    config: AudioFileConfig

    async def open(self) -> None:
        from schnitzel_plugins.sensors.wav_reader import wav_info  # numpy: only when used

        self._path = self.context.resolve(self.config.path)
        try:
            self._info = wav_info(self._path)
        except (OSError, wave.Error, EOFError) as exc:
            raise SensorError(
                f"node {self.context.node_id!r}: cannot read {str(self._path)!r} as a PCM WAV "
                f"file ({exc}): fix `path`, or convert the file (ffmpeg -i IN -c:a pcm_s16le "
                "OUT.wav)"
            ) from exc

    def rate_hz(self) -> float | None:
        return 1000.0 / self.config.chunk_ms if self.config.realtime else None

    def packets(self) -> Iterator[StreamPacket]:
        from schnitzel_plugins.sensors.wav_reader import read_chunks

        config, node_id, info = self.config, self.context.node_id, self._info
        frames = max(1, info.sample_rate * config.chunk_ms // 1000)
        name = self._path.name
        for chunk in read_chunks(self._path, frames):
            payload = audio_payload(chunk.samples, info.sample_rate, chunk.start)
            key = f"{node_id}:{name}:{chunk.index}"
            yield StreamPacket.new(
                config.kind, node_id, chunk.index, payload, {"idempotency_key": key}
            )

    @classmethod
    def check_environment(cls, config: Any, context: CheckContext) -> list[EnvironmentProblem]:
        from schnitzel_plugins.sensors.wav_reader import wav_info

        path = context.resolve(config.path)
        try:
            wav_info(path)
        except FileNotFoundError:
            return [
                EnvironmentProblem(
                    f"audio file {str(path)!r} does not exist",
                    "create it, or fix `path` (relative paths resolve against the graph file)",
                    config_key="path",
                )
            ]
        except (OSError, wave.Error, EOFError) as exc:
            return [
                EnvironmentProblem(
                    f"audio file {str(path)!r} is not a PCM WAV file this source reads ({exc})",
                    "convert it: ffmpeg -i IN -c:a pcm_s16le OUT.wav",
                    config_key="path",
                )
            ]
        return []
