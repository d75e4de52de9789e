"""A dynamic-batch model given frames of several cameras in one run finds what it finds in
each frame alone, in the same order."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from schnitzel_plugins.vision import sessions
from schnitzel_plugins.vision.detector import Detector, DetectorSettings
from tests.vision.scenes import astronaut


def test_one_batched_run_equals_one_run_per_frame(model_path: Path) -> None:
    photo = astronaut()
    frames = [
        photo,  # 512x512
        cv2.resize(photo, (640, 360)),  # another camera, another shape
        np.ascontiguousarray(photo[:, ::-1]),  # mirrored: the face elsewhere
    ]
    session = sessions.acquire(model_path, ("CPUExecutionProvider",), None)
    try:
        detector = Detector(session, DetectorSettings(), None, model_path.name)
        assert detector.dynamic_batch
        blobs, placed = zip(*(detector.prepare(f) for f in frames), strict=True)
        together = detector.run(list(blobs))
        alone = [detector.run([blob])[0] for blob in blobs]
    finally:
        sessions.release(model_path, ("CPUExecutionProvider",), None)
    for batched, single, where in zip(together, alone, placed, strict=True):
        assert np.allclose(batched, single, atol=1e-3)
        found_batched = detector.finish(batched, where)
        found_alone = detector.finish(single, where)
        assert [d.class_name for d in found_batched] == [d.class_name for d in found_alone]
        for a, b in zip(found_batched, found_alone, strict=True):
            assert a.bbox == pytest.approx(b.bbox, abs=0.5)
    assert any(d.class_name == "FACE_FEMALE" for d in detector.finish(together[2], placed[2]))
