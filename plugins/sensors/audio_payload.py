"""The payload of an `audio` packet, the same from `audio_file` and `microphone`."""

from __future__ import annotations

from typing import Any

__all__ = ["audio_payload"]


def audio_payload(block: Any, sample_rate: int, start_frame: int) -> dict[str, Any]:
    """Samples shaped (frames, channels), floats in [-1, 1), as portable JSON: one list per
    channel, with the sample rate and where the block starts and how long it lasts."""
    return {
        "sample_rate": sample_rate,
        "channels": int(block.shape[1]),
        "start_s": start_frame / sample_rate,
        "duration_s": len(block) / sample_rate,
        "samples": block.T.tolist(),
    }
