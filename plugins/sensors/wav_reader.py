"""Chunks of a WAV file as float samples: pure logic on the standard library's `wave`.

PCM WAV with 8-bit (unsigned), 16-, 24- or 32-bit (signed) samples, any number of channels.
Samples come out as float32 in [-1, 1), one row per frame, one column per channel.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["WavChunk", "WavInfo", "read_chunks", "wav_info"]


@dataclass(frozen=True)
class WavInfo:
    """What a WAV file holds."""

    sample_rate: int
    channels: int
    sample_bytes: int
    frames: int


@dataclass(frozen=True)
class WavChunk:
    """`frames` consecutive frames starting at frame `start`."""

    index: int
    start: int
    samples: npt.NDArray[np.float32]
    """Shape (frames, channels), values in [-1, 1)."""


def wav_info(path: Path) -> WavInfo:
    """The file's format; wave.Error or EOFError when it is not a PCM WAV it can read."""
    with wave.open(str(path), "rb") as wav:
        info = WavInfo(wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes())
    if info.sample_bytes not in (1, 2, 3, 4):
        raise wave.Error(f"{info.sample_bytes * 8}-bit samples are not supported")
    return info


def read_chunks(path: Path, frames_per_chunk: int, start_chunk: int = 0) -> Iterator[WavChunk]:
    """The file in chunks of `frames_per_chunk` frames (the last one may be shorter)."""
    with wave.open(str(path), "rb") as wav:
        channels, width = wav.getnchannels(), wav.getsampwidth()
        wav.setpos(min(start_chunk * frames_per_chunk, wav.getnframes()))
        index = start_chunk
        while raw := wav.readframes(frames_per_chunk):
            samples = _floats(raw, width).reshape(-1, channels)
            yield WavChunk(index, index * frames_per_chunk, samples)
            index += 1


def _floats(raw: bytes, width: int) -> npt.NDArray[np.float32]:
    if width == 1:  # 8-bit WAV is unsigned, centred on 128
        return ((np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0).astype(
            np.float32
        )
    if width == 2:
        return (np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0).astype(np.float32)
    if width == 3:  # no numpy dtype: widen each little-endian triple to 32 bits
        triples = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        values = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        values = np.where(values >= 1 << 23, values - (1 << 24), values)
        return (values.astype(np.float32) / float(1 << 23)).astype(np.float32)
    return (np.frombuffer(raw, "<i4").astype(np.float64) / float(1 << 31)).astype(np.float32)
