"""What a `detection` packet carries after `track` (and `zones`): the frame, its detections,
and the camera's confirmed tracks, each with its zones (pure, no imports).

`portable_view()` is what a sink or a durable inbox writes: the detection payload's fields
(frame metadata, model, detections) plus `tracks`, `ended` and `transitions`, no pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schnitzel_plugins.vision.frame import Detection, Frame

__all__ = ["FrameTracks", "TrackState", "ZoneTransition"]


@dataclass(frozen=True, slots=True)
class TrackState:
    """One confirmed track in one frame."""

    track_id: int
    bbox: tuple[float, float, float, float]
    confidence: float
    """This frame's score; 0 while the track coasts (no detection this frame)."""
    class_id: int
    class_name: str
    hits: int
    age: int
    missed: int
    """Frames since its last detection (0: detected in this frame)."""
    zones: tuple[str, ...] = ()
    """Zones the track is in (after inertia), written by `zones`."""
    dwell_s: dict[str, float] = field(default_factory=dict)
    """Seconds since it entered each zone it is in."""

    def to_json(self) -> dict[str, Any]:
        """The track as JSON."""
        return {
            "track_id": self.track_id,
            "bbox": [round(v, 1) for v in self.bbox],
            "confidence": round(self.confidence, 4),
            "class_id": self.class_id,
            "class_name": self.class_name,
            "hits": self.hits,
            "missed": self.missed,
            "zones": list(self.zones),
            "dwell_s": {k: round(v, 3) for k, v in self.dwell_s.items()},
        }


@dataclass(frozen=True, slots=True)
class ZoneTransition:
    """A track entered or left a zone, crossed a line, or has loitered past a zone's dwell."""

    track_id: int
    zone: str
    kind: str
    """`enter`, `leave`, `cross` or `loiter`."""
    direction: str | None = None
    """For `cross`: `in` or `out` (the side the line's normal points to is `in`)."""

    def to_json(self) -> dict[str, Any]:
        """The transition as JSON."""
        out: dict[str, Any] = {"track_id": self.track_id, "zone": self.zone, "kind": self.kind}
        if self.direction is not None:
            out["direction"] = self.direction
        return out


@dataclass(frozen=True, slots=True, eq=False)
class FrameTracks:
    """A frame's detections and the camera's tracks, frame still attached in process."""

    frame: Frame
    detections: tuple[Detection, ...]
    model: str
    tracks: tuple[TrackState, ...]
    ended: tuple[TrackState, ...] = ()
    """Tracks that ended with this frame (lost longer than `max_age`), last state."""
    transitions: tuple[ZoneTransition, ...] = ()
    """Zone transitions in this frame, written by `zones`."""

    @property
    def nbytes(self) -> int:
        """Bytes of pixels held (the frame's): what a byte-bounded inbox counts."""
        return self.frame.nbytes

    def portable_view(self) -> dict[str, Any]:
        """What leaves the process: metadata, detections, tracks and transitions, no pixels."""
        return {
            **self.frame.metadata(),
            "model": self.model,
            "detections": [d.to_json() for d in self.detections],
            "tracks": [t.to_json() for t in self.tracks],
            "ended": [t.to_json() for t in self.ended],
            "transitions": [t.to_json() for t in self.transitions],
        }
