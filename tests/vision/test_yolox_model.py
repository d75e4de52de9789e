"""The YOLOX decoder on a real YOLOX export: ddddocr's `common_det.onnx` (MIT; raw output
`[1, 3549, 6]` at 416, one class) finds each character drawn on a card where it is drawn."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from schnitzel_plugins.vision import sessions
from schnitzel_plugins.vision.detector import Detector, DetectorSettings
from schnitzel_plugins.vision.model_path import resolve_model
from tests.vision.scenes import iou

MODEL = "package:ddddocr/common_det.onnx"


def card(text: str) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """White card with `text` in big dark glyphs, and each glyph's box."""
    image = np.full((120, 80 * len(text), 3), 255, np.uint8)
    boxes = []
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 2.2, 5
    for n, glyph in enumerate(text):
        x, baseline = 20 + n * 75, 85
        cv2.putText(image, glyph, (x, baseline), font, scale, (30, 30, 30), thickness)
        (w, h), _ = cv2.getTextSize(glyph, font, scale, thickness)
        boxes.append((float(x), float(baseline - h), float(x + w), float(baseline)))
    return image, boxes


def test_yolox_export_finds_every_character_where_it_is_drawn() -> None:
    path = resolve_model(MODEL, Path("."))
    session = sessions.acquire(path, ("CPUExecutionProvider",), None)
    try:
        # YOLOX's own preprocessing: padding right and down, BGR, pixels 0..255
        settings = DetectorSettings(padding="corner", color="bgr", normalize=False)
        detector = Detector(session, settings, ["char"], path.name)
        assert detector.layout == "yolox"  # chosen from the shapes: 3549 = 52^2 + 26^2 + 13^2
        image, glyphs = card("AB7KX")
        found = detector.detect([image])[0]
    finally:
        sessions.release(path, ("CPUExecutionProvider",), None)
    assert len(found) == len(glyphs)
    for glyph in glyphs:
        assert max(iou(d.bbox, glyph) for d in found) >= 0.5, (glyph, found)
    assert {d.class_name for d in found} == {"char"}
