"""WAV files with known content: tones of a given frequency and amplitude, and silence.

Run as a module to write the example graph's input:
`python -m tests.sensors.wav_maker graphs/data/tone.wav`.
"""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import numpy as np

__all__ = ["Segment", "write_wav"]

Segment = tuple[float, float, float]
"""(frequency Hz, amplitude 0..1, seconds); frequency 0 or amplitude 0: silence."""


def write_wav(
    path: Path, segments: list[Segment], sample_rate: int = 16_000, channels: int = 1
) -> None:
    """16-bit PCM: each segment a sine of its frequency and amplitude, phase 0 at its start."""
    parts = []
    for frequency, amplitude, seconds in segments:
        t = np.arange(round(seconds * sample_rate)) / sample_rate
        parts.append(amplitude * np.sin(2 * np.pi * frequency * t))
    mono = np.round(np.concatenate(parts) * 32767).astype("<i2")
    frames = np.repeat(mono[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(frames.tobytes())


if __name__ == "__main__":
    # the example: 0.5 s of 1 kHz (voice band), 0.5 s of 100 Hz hum, 0.5 s of silence
    write_wav(Path(sys.argv[1]), [(1000, 0.5, 0.5), (100, 0.5, 0.5), (0, 0, 0.5)], 8000)
