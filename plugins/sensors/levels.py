"""Levels of a chunk of audio: RMS, peak, dBFS, band energies by FFT, a voice flag.

Pure numpy, no runtime. Channels are mixed down to mono (their mean) first. dBFS is the RMS
relative to full scale 1.0 (a full-scale square wave is 0 dBFS, a full-scale sine -3.01
dBFS), floored at `FLOOR_DBFS` for silence. Band energies
are each band's share of the chunk's spectral energy (0..1). The voice flag is deliberately
simple: loud enough (`vad_dbfs`) and most of the energy (`vad_ratio`) in the speech band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["FLOOR_DBFS", "Levels", "levels_of"]

FLOOR_DBFS = -120.0
"""The dBFS given to digital silence (the log of zero has no value)."""


@dataclass(frozen=True)
class Levels:
    """What `levels_of` measured in one chunk."""

    rms: float
    peak: float
    dbfs: float
    bands: dict[str, float]
    voice: bool

    def as_payload(self) -> dict[str, object]:
        return {
            "rms": self.rms,
            "peak": self.peak,
            "dbfs": self.dbfs,
            "bands": self.bands,
            "voice": self.voice,
        }


def levels_of(
    samples: npt.NDArray[np.float32],
    sample_rate: int,
    bands: list[tuple[float, float]],
    voice_band: tuple[float, float],
    vad_dbfs: float,
    vad_ratio: float,
) -> Levels:
    """The levels of `samples` (shape (frames,) or (frames, channels), values in [-1, 1])."""
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    mono = mono.astype(np.float64)
    if mono.size == 0:
        return Levels(0.0, 0.0, FLOOR_DBFS, {_band_name(b): 0.0 for b in bands}, False)
    rms = float(np.sqrt(np.mean(mono * mono)))
    peak = float(np.max(np.abs(mono)))
    dbfs = 20.0 * math.log10(rms) if rms > 0 else FLOOR_DBFS
    dbfs = max(dbfs, FLOOR_DBFS)
    power = np.abs(np.fft.rfft(mono)) ** 2
    freqs = np.fft.rfftfreq(mono.size, 1.0 / sample_rate)
    total = float(power.sum())

    def share(low: float, high: float) -> float:
        if total <= 0:
            return 0.0
        return float(power[(freqs >= low) & (freqs < high)].sum() / total)

    shares = {_band_name(band): share(*band) for band in bands}
    voice = dbfs >= vad_dbfs and share(*voice_band) >= vad_ratio
    return Levels(rms, peak, dbfs, shares, voice)


def _band_name(band: tuple[float, float]) -> str:
    low, high = band
    return f"{low:g}-{high:g}"
