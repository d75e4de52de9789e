"""`microphone` source: live audio from a sound card (sounddevice over PortAudio).

PortAudio calls back on its own thread with each block of `chunk_ms`; the block is copied
into a bounded queue and the source's thread turns it into an `audio` packet shaped like
`audio_file`'s. A microphone cannot be told to wait: when the graph falls behind by more than
`queue_chunks` chunks, the newest are lost, counted (`plugin_stats.overruns`) and reported as
trouble, never silently. sounddevice needs the PortAudio library from the system; the
environment check says so when it is missing.
"""

from __future__ import annotations

import queue
import secrets
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import Field, StrictInt, StrictStr

from schnitzel import (
    CheckContext,
    EnvironmentProblem,
    NodeContext,
    PacketKind,
    PayloadProfile,
    PluginConfig,
    Source,
    StreamPacket,
)
from schnitzel_plugins.sensors.audio_payload import audio_payload
from schnitzel_plugins.sensors.configured_kind import KindFromConfig
from schnitzel_plugins.sensors.errors import SensorError

__all__ = ["Microphone", "MicrophoneConfig", "portaudio_problem"]

GET_TIMEOUT_S = 0.2
"""How long the source waits for a block: also how soon a stop is noticed."""
NO_PORTAUDIO = (
    "install the PortAudio library (Debian/Ubuntu: apt-get install libportaudio2; "
    "Fedora: dnf install portaudio), then start again"
)


class MicrophoneConfig(PluginConfig):
    """Options of the microphone source."""

    device: StrictStr | StrictInt | None = Field(
        default=None,
        description="Input device: its index or (part of) its name as `python -m sounddevice` "
        "lists them; null: the system's default input.",
    )
    sample_rate: StrictInt = Field(default=16_000, ge=1000, le=384_000, description="Hz.")
    channels: StrictInt = Field(default=1, ge=1, le=32, description="Channels to record.")
    chunk_ms: StrictInt = Field(
        default=100, ge=5, le=10_000, description="Length of one packet's audio, milliseconds."
    )
    queue_chunks: StrictInt = Field(
        default=50,
        ge=1,
        description="Chunks recorded and not yet taken by the graph; beyond: lost, counted.",
    )
    kind: PacketKind = Field(default="audio", description="Kind of the packets made.")


class Microphone(KindFromConfig, Source):
    """Records from a sound card in chunks of `chunk_ms`: one `audio` packet per chunk."""

    name: ClassVar[str] = "microphone"
    Config: ClassVar[type[PluginConfig]] = MicrophoneConfig
    emits = frozenset({"audio"})
    emits_profile = PayloadProfile.JSON_PORTABLE
    blocking: ClassVar[bool] = True

    config: MicrophoneConfig

    def __init__(self, config: MicrophoneConfig, context: NodeContext) -> None:
        super().__init__(config, context)
        self._blocks: queue.Queue[Any] = queue.Queue(maxsize=config.queue_chunks)
        self._stream: Any = None
        self._run = secrets.token_hex(6)
        self.overruns = 0
        """Chunks lost because the graph was behind (or PortAudio reported an overflow)."""

    def stats(self) -> dict[str, Any]:
        """Chunks lost because the graph was behind."""
        return {"overruns": self.overruns}

    async def open(self) -> None:
        problem = portaudio_problem()
        if problem is not None:
            raise SensorError(f"node {self.context.node_id!r}: {problem.message}: {problem.hint}")
        import sounddevice

        config = self.config
        try:
            self._stream = sounddevice.InputStream(
                samplerate=config.sample_rate,
                channels=config.channels,
                blocksize=config.sample_rate * config.chunk_ms // 1000,
                device=config.device,
                dtype="float32",
                callback=self._recorded,
            )
            self._stream.start()
        except (sounddevice.PortAudioError, ValueError) as exc:
            raise SensorError(
                f"node {self.context.node_id!r}: cannot record from device "
                f"{_device_name(config)} ({exc}): "
                "list the inputs with `python -m sounddevice` and set `device`, "
                "`sample_rate` and `channels` to what it supports"
            ) from exc

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()

    def _recorded(self, block: Any, frames: int, time: Any, status: Any) -> None:
        """PortAudio's callback (its own thread): keep a copy, or count it lost."""
        if status and status.input_overflow:
            self.overruns += 1
            self.context.report_trouble("input overflow: the sound card dropped samples")
        try:
            self._blocks.put_nowait(block.copy())
        except queue.Full:
            self.overruns += 1
            self.context.report_trouble("the graph is behind the microphone: chunks lost")

    def packets(self) -> Iterator[StreamPacket | None]:
        config, node_id, stopping = self.config, self.context.node_id, self.context.stopping
        seq, frames = 0, 0
        while not stopping.is_set():
            try:
                block = self._blocks.get(timeout=GET_TIMEOUT_S)
            except queue.Empty:
                yield None
                continue
            yield StreamPacket.new(
                config.kind,
                node_id,
                seq,
                audio_payload(block, config.sample_rate, frames),
                {"idempotency_key": f"{node_id}:{self._run}:{seq}"},
            )
            seq, frames = seq + 1, frames + len(block)

    @classmethod
    def check_environment(cls, config: Any, context: CheckContext) -> list[EnvironmentProblem]:
        problem = portaudio_problem()
        if problem is not None:
            return [problem]
        import sounddevice

        try:
            sounddevice.query_devices(config.device, kind="input")
        except (sounddevice.PortAudioError, ValueError) as exc:
            return [
                EnvironmentProblem(
                    f"no input device {_device_name(config)} ({exc})",
                    "plug a microphone in, or list the inputs with `python -m sounddevice` "
                    "and set `device`",
                    config_key="device",
                )
            ]
        return []


def portaudio_problem() -> EnvironmentProblem | None:
    """Why sounddevice cannot run here (not installed, or no PortAudio library), or None."""
    try:
        import sounddevice  # noqa: F401 - importing it loads PortAudio
    except ImportError:
        return EnvironmentProblem(
            "the microphone plugin needs sounddevice",
            "install schnitzel[microphone] (and the PortAudio library it uses)",
        )
    except OSError as exc:  # sounddevice raises OSError when it finds no PortAudio library
        return EnvironmentProblem(f"PortAudio is missing ({exc})", NO_PORTAUDIO)
    return None


def _device_name(config: MicrophoneConfig) -> str:
    return "(the default input)" if config.device is None else repr(config.device)
