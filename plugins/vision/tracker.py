"""Multi-object tracking, SORT-style: one camera's boxes from frame to frame get stable ids.

Pure logic (numpy and scipy, nothing from the runtime), so it is tested and benchmarked alone.

Each track predicts where its box will be with a constant-velocity alpha-beta filter on the
box's centre and size; the frame's detections are assigned to the predictions by the
Hungarian method (`scipy.optimize.linear_sum_assignment`) on 1 - IoU, only within a class
when `per_class`, and an assignment below `iou_threshold` is refused. A track that finds no
detection keeps moving on its prediction ("coasting") for up to `max_age` frames, which is
what carries an id through a short occlusion; it is reported once it has been matched in
`min_hits` frames (a one-frame false positive never gets an id the operator sees).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["Box", "TrackedBox", "Tracker", "TrackerSettings", "iou_matrix"]

Box = tuple[float, float, float, float]
"""x1, y1, x2, y2 in pixels."""

_REFUSED = 1e6
"""Cost of an assignment that may not happen (another class): never below the threshold."""


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """How the tracker matches and when it reports or forgets a track."""

    iou_threshold: float = 0.2
    """Least overlap between a prediction and a detection for them to be the same object."""
    max_age: int = 30
    """Frames a track coasts without a detection before it ends."""
    min_hits: int = 3
    """Frames with a detection before a track is reported (confirmed)."""
    per_class: bool = True
    """Match only detections of the track's class."""
    alpha: float = 0.6
    """Weight of a measurement against the prediction for position and size (0..1)."""
    beta: float = 0.3
    """Weight of a position's surprise in the velocity (0..1)."""


@dataclass(frozen=True, slots=True)
class TrackedBox:
    """A confirmed track as this frame sees it."""

    track_id: int
    bbox: Box
    """The detection's box when matched this frame; the prediction while coasting."""
    confidence: float
    """This frame's score (0 while coasting)."""
    class_id: int
    class_name: str
    hits: int
    """Frames with a detection so far."""
    age: int
    """Frames since the track began."""
    missed: int
    """Frames since its last detection (0: seen in this frame)."""
    detection: int | None
    """Index of its detection in this frame's list; None while coasting."""


@dataclass(slots=True)
class _Track:
    track_id: int
    state: np.ndarray  # cx, cy, w, h
    velocity: np.ndarray  # dcx, dcy per frame
    class_id: int
    class_name: str
    confidence: float
    hits: int = 1
    age: int = 1
    missed: int = 0
    detection: int | None = None
    measured: Box | None = None

    def predict(self) -> None:
        self.state[:2] += self.velocity
        self.age += 1
        self.missed += 1
        self.detection = None
        self.measured = None

    def correct(self, measured: np.ndarray, settings: TrackerSettings) -> None:
        surprise = measured - self.state
        self.state += settings.alpha * surprise
        self.velocity += settings.beta * surprise[:2]
        self.hits += 1
        self.missed = 0

    def box(self) -> Box:
        cx, cy, w, h = (float(v) for v in self.state)
        return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


@dataclass
class Tracker:
    """One camera's tracks. `update` once per frame, in frame order."""

    settings: TrackerSettings = field(default_factory=TrackerSettings)
    next_id: int = 1
    """The id the next new track gets (ids never repeat within a tracker)."""
    _tracks: list[_Track] = field(default_factory=list)

    def update(
        self,
        boxes: list[Box],
        class_ids: list[int],
        confidences: list[float],
        class_names: list[str] | None = None,
    ) -> tuple[list[TrackedBox], list[TrackedBox]]:
        """Take one frame's detections. Returns the confirmed tracks (matched or coasting),
        and the confirmed tracks that ended with this frame (coasted past `max_age`)."""
        settings = self.settings
        names = class_names or [str(c) for c in class_ids]
        for track in self._tracks:
            track.predict()
        matched, unmatched = self._assign(boxes, class_ids)
        for t, d in matched:
            track = self._tracks[t]
            track.correct(_centre_size(boxes[d]), settings)
            track.confidence = confidences[d]
            track.detection = d
            track.measured = boxes[d]
        for d in unmatched:
            cx, cy, w, h = _centre_size(boxes[d])
            self._tracks.append(
                _Track(
                    self.next_id,
                    np.array([cx, cy, w, h]),
                    np.zeros(2),
                    class_ids[d],
                    names[d],
                    confidences[d],
                    detection=d,
                    measured=boxes[d],
                )
            )
            self.next_id += 1
        ended = [t for t in self._tracks if t.missed > settings.max_age]
        self._tracks = [t for t in self._tracks if t.missed <= settings.max_age]
        live = [_view(t) for t in self._tracks if t.hits >= settings.min_hits]
        gone = [_view(t) for t in ended if t.hits >= settings.min_hits]
        return live, gone

    def _assign(
        self, boxes: list[Box], class_ids: list[int]
    ) -> tuple[list[tuple[int, int]], list[int]]:
        if not self._tracks or not boxes:
            return [], list(range(len(boxes)))
        predicted = np.array([t.box() for t in self._tracks])
        overlap = iou_matrix(predicted, np.asarray(boxes, dtype=float))
        cost = 1.0 - overlap
        if self.settings.per_class:
            track_classes = np.array([t.class_id for t in self._tracks])[:, None]
            cost[track_classes != np.asarray(class_ids)[None, :]] = _REFUSED
        rows, cols = linear_sum_assignment(cost)
        keep = cost[rows, cols] <= 1.0 - self.settings.iou_threshold
        matched = list(zip(rows[keep].tolist(), cols[keep].tolist(), strict=True))
        taken = set(cols[keep].tolist())
        return matched, [d for d in range(len(boxes)) if d not in taken]

    def tracks(self) -> list[TrackedBox]:
        """Every track held, confirmed or not (for the console and tests)."""
        return [_view(t) for t in self._tracks]

    def confirmed(self) -> list[TrackedBox]:
        """The tracks held that have been reported (`min_hits` reached)."""
        return [_view(t) for t in self._tracks if t.hits >= self.settings.min_hits]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` (N x 4) with every box of `b` (M x 4): N x M."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _centre_size(box: Box) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dtype=float)


def _view(track: _Track) -> TrackedBox:
    return TrackedBox(
        track.track_id,
        track.measured if track.measured is not None else track.box(),
        track.confidence if track.missed == 0 else 0.0,
        track.class_id,
        track.class_name,
        track.hits,
        track.age,
        track.missed,
        track.detection,
    )
