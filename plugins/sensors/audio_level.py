"""`audio_level` transform: levels of each `audio` packet (RMS, peak, dBFS, bands, voice)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, StrictFloat, model_validator

from schnitzel import (
    PacketKind,
    PayloadProfile,
    PluginConfig,
    StreamPacket,
    Transform,
    import_extra,
)
from schnitzel_plugins.sensors.configured_kind import KindFromConfig
from schnitzel_plugins.sensors.errors import SensorError

__all__ = ["AudioLevel", "AudioLevelConfig"]


class AudioLevelConfig(PluginConfig):
    """Options of the audio_level transform."""

    bands: list[tuple[StrictFloat, StrictFloat]] = Field(
        default=[(0.0, 300.0), (300.0, 3400.0), (3400.0, 8000.0)],
        min_length=1,
        description="Frequency bands [low, high) in Hz whose share of the energy is reported.",
    )
    voice_band: tuple[StrictFloat, StrictFloat] = Field(
        default=(300.0, 3400.0), description="The speech band [low, high) the voice flag uses."
    )
    vad_dbfs: StrictFloat = Field(
        default=-40.0, le=0, description="Voice: the chunk is at least this loud (dBFS)."
    )
    vad_ratio: StrictFloat = Field(
        default=0.5, ge=0, le=1, description="Voice: at least this share of energy in voice_band."
    )
    kind: PacketKind = Field(default="sensor", description="Kind of the packets made.")

    @model_validator(mode="after")
    def _ordered(self) -> AudioLevelConfig:
        for low, high in (*self.bands, self.voice_band):
            if not 0 <= low < high:
                raise ValueError(f"band [{low}, {high}]: need 0 <= low < high (Hz)")
        return self


class AudioLevel(KindFromConfig, Transform):
    """Measures each audio chunk: RMS, peak, dBFS, band energies (FFT), a voice-activity flag."""

    name: ClassVar[str] = "audio_level"
    Config: ClassVar[type[PluginConfig]] = AudioLevelConfig
    accepts = frozenset({"audio"})
    emits = frozenset({"sensor"})
    emits_profile = PayloadProfile.JSON_PORTABLE

    config: AudioLevelConfig

    async def open(self) -> None:
        import_extra(
            "numpy",
            node_id=self.context.node_id,
            needed_by="audio_level",
            package="numpy",
            extra="sensors",
            error=SensorError,
        )

    def process(self, packet: StreamPacket) -> StreamPacket:
        import numpy as np

        from schnitzel_plugins.sensors.levels import levels_of

        config, audio = self.config, packet.payload
        try:
            samples = np.asarray(audio["samples"], dtype=np.float32).T
            sample_rate = int(audio["sample_rate"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"not an audio payload ({exc!r}): audio_level takes the packets of audio_file "
                "or microphone (samples per channel, sample_rate)"
            ) from exc
        levels = levels_of(
            samples,
            sample_rate,
            list(config.bands),
            config.voice_band,
            config.vad_dbfs,
            config.vad_ratio,
        )
        payload = levels.as_payload()
        payload["start_s"] = audio.get("start_s")
        payload["duration_s"] = audio.get("duration_s")
        return packet.evolve(kind=config.kind, payload=payload)
