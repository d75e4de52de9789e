"""The tracker alone (no runtime): ids stay with their objects through crossings and a 10-frame
occlusion, on boxes with known ground truth and on a real detector's boxes of a real photograph."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from schnitzel_plugins.vision import sessions
from schnitzel_plugins.vision.detector import Detector, DetectorSettings
from schnitzel_plugins.vision.tracker import Box, Tracker, TrackerSettings, iou_matrix
from tests.vision.scenes import occluded_walk


def box_at(cx: float, cy: float, w: float = 40, h: float = 80) -> Box:
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def run(tracker: Tracker, frames: list[list[tuple[str, Box, int]]]) -> dict[str, set[int]]:
    """Feed frames of (truth name, box, class); return the ids each true object was given."""
    ids: dict[str, set[int]] = {}
    for objects in frames:
        live, _ = tracker.update(
            [b for _, b, _ in objects], [c for _, _, c in objects], [0.9] * len(objects)
        )
        for t in live:
            if t.detection is not None:
                ids.setdefault(objects[t.detection][0], set()).add(t.track_id)
    return ids


def test_iou_matrix_matches_the_definition() -> None:
    a = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], float)
    b = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [5, 0, 15, 10]], float)
    assert np.allclose(iou_matrix(a, b), [[1, 0, 50 / 150], [25 / 175, 0, 50 / 150]])


def test_two_objects_crossing_keep_their_ids() -> None:
    frames = []
    for n in range(60):
        frames.append([("a", box_at(50 + 8 * n, 200), 0), ("b", box_at(530 - 8 * n, 210), 0)])
    ids = run(Tracker(TrackerSettings(min_hits=1)), frames)
    assert ids["a"] != ids["b"]
    assert len(ids["a"]) == len(ids["b"]) == 1, ids


def test_an_id_survives_a_ten_frame_occlusion() -> None:
    frames = []
    for n in range(50):
        visible = not 20 <= n < 30
        frames.append([("a", box_at(40 + 6 * n, 100), 0)] if visible else [])
    tracker = Tracker(TrackerSettings(max_age=15))
    ids = run(tracker, frames)
    assert ids == {"a": {1}}


def test_a_track_ends_after_max_age_missed_frames_and_its_id_is_never_reused() -> None:
    tracker = Tracker(TrackerSettings(max_age=5, min_hits=1))
    for n in range(5):
        tracker.update([box_at(100 + n, 100)], [0], [0.8])
    ended_at = None
    for n in range(10):
        _, gone = tracker.update([], [], [])
        if gone:
            assert [t.track_id for t in gone] == [1] and ended_at is None
            ended_at = n
    assert ended_at == 5  # the sixth missed frame is past max_age
    live, _ = tracker.update([box_at(104, 100)], [0], [0.8])
    assert [t.track_id for t in live] == [2]


def test_min_hits_hides_a_one_frame_false_positive() -> None:
    tracker = Tracker(TrackerSettings(min_hits=3))
    live, _ = tracker.update([box_at(300, 300)], [0], [0.5])
    assert live == []
    for _ in range(5):
        live, gone = tracker.update([], [], [])
        assert live == [] and gone == []
    seen = []
    for n in range(4):
        live, _ = tracker.update([box_at(100 + 5 * n, 100)], [0], [0.9])
        seen.append([t.track_id for t in live])
    assert seen == [[], [], [2], [2]]


def test_per_class_matching_never_gives_a_track_another_class() -> None:
    frames = [[("person", box_at(100 + 2 * n, 100), 0), ("car", box_at(104 + 2 * n, 102), 2)]
              for n in range(20)]  # fmt: skip
    tracker = Tracker(TrackerSettings(min_hits=1, per_class=True))
    ids = run(tracker, frames)
    assert len(ids["person"]) == len(ids["car"]) == 1 and ids["person"] != ids["car"]
    assert {t.class_id for t in tracker.tracks()} == {0, 2}


def test_twenty_objects_keep_twenty_ids() -> None:
    rng = random.Random(16)
    objects = [
        (rng.uniform(50, 1800), rng.uniform(50, 1000), rng.uniform(-4, 4), rng.uniform(-3, 3))
        for _ in range(20)
    ]
    frames = []
    for n in range(100):
        frames.append(
            [(str(i), box_at(x + vx * n, y + vy * n, 30, 60), 0)
             for i, (x, y, vx, vy) in enumerate(objects)]
        )  # fmt: skip
    ids = run(Tracker(TrackerSettings(min_hits=1)), frames)
    assert len(ids) == 20
    switched = {name: found for name, found in ids.items() if len(found) != 1}
    assert not switched, f"ids switched: {switched}"


@pytest.mark.slow  # the real detector on every frame of the scene
def test_a_real_detectors_face_keeps_one_id_through_a_ten_frame_occlusion(
    model_path: Path,
) -> None:
    scene = occluded_walk(frames=40, hidden=range(15, 25))
    session = sessions.acquire(model_path, ("CPUExecutionProvider",), None)
    try:
        detector = Detector(
            session, DetectorSettings(classes=("FACE_FEMALE",)), None, model_path.name
        )
        found = [detector.detect([image])[0] for image in scene.images]
    finally:
        sessions.release(model_path, ("CPUExecutionProvider",), None)
    tracker = Tracker(TrackerSettings(max_age=15, min_hits=3))
    ids: set[int] = set()
    matched_frames = 0
    for n, detections in enumerate(found):
        live, gone = tracker.update(
            [d.bbox for d in detections],
            [d.class_id for d in detections],
            [d.confidence for d in detections],
        )
        assert gone == []
        for t in live:
            ids.add(t.track_id)
            if t.detection is not None:
                matched_frames += 1
                assert scene.faces[n] is not None, f"frame {n} is hidden yet matched"
    visible = sum(1 for f in scene.faces if f is not None)
    assert ids == {1}, f"the face got ids {ids}"
    assert matched_frames >= 0.8 * visible
