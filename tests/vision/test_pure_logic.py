"""The pack's pure logic against hand-made inputs: letterbox, decoders, NMS, labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from schnitzel_plugins.vision.decoders import (
    LayoutError,
    decode,
    guess_layout,
    yolox_grid,
)
from schnitzel_plugins.vision.labels import LabelsError, labels_from_file, labels_from_metadata
from schnitzel_plugins.vision.letterbox import letterbox, to_image_boxes
from schnitzel_plugins.vision.nms import batched_nms, nms


@pytest.mark.parametrize("padding", ["center", "corner"])
@pytest.mark.parametrize("shape", [(360, 640), (640, 360), (300, 300), (1080, 1920)])
def test_letterbox_maps_boxes_back_to_the_image(padding: str, shape: tuple[int, int]) -> None:
    image = np.zeros((*shape, 3), np.uint8)
    h, w = shape
    image[h // 4 : h // 2, w // 3 : w // 2] = 255  # a white box: find it in the canvas
    canvas, placed = letterbox(image, (320, 320), padding)  # type: ignore[arg-type]
    assert canvas.shape == (320, 320, 3)
    ys, xs = np.nonzero(canvas[:, :, 0] > 128)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    back = to_image_boxes(found, placed)[0]
    tolerance = 1.5 / placed.scale  # one input pixel of resampling, in image pixels
    assert np.allclose(back, [w // 3, h // 4, w // 2, h // 2], atol=tolerance)
    if padding == "corner":
        assert (placed.pad_x, placed.pad_y) == (0, 0)


def test_letterbox_never_touches_its_input() -> None:
    image = np.full((100, 200, 3), 7, np.uint8)
    image.flags.writeable = False
    canvas, _ = letterbox(image, (64, 64))
    assert canvas.flags.writeable and int(image.max()) == 7


def test_boxes_outside_the_image_are_clipped() -> None:
    _, placed = letterbox(np.zeros((100, 200, 3), np.uint8), (100, 100))
    back = to_image_boxes(np.array([[-50, -50, 500, 500]], np.float32), placed)[0]
    assert back.tolist() == [0, 0, 200, 100]


def yolov8_output(rows: list[tuple[float, float, float, float, int, float]], nc: int) -> np.ndarray:
    """[4+nc, N] with a box (cx, cy, w, h) scoring `score` for `class_id` per row."""
    out = np.zeros((4 + nc, len(rows)), np.float32)
    for i, (cx, cy, w, h, class_id, score) in enumerate(rows):
        out[:4, i] = (cx, cy, w, h)
        out[4 + class_id, i] = score
    return out


def test_yolov8_decoder_reads_centre_boxes_and_keeps_only_confident_ones() -> None:
    out = yolov8_output([(100, 50, 20, 10, 2, 0.9), (10, 10, 4, 4, 0, 0.1)], nc=3)
    found = decode(out, "yolov8", 0.25, (320, 320))
    assert found.boxes.tolist() == [[90, 45, 110, 55]]
    assert found.class_ids.tolist() == [2]
    assert found.scores.tolist() == pytest.approx([0.9])


def test_yolov5_decoder_multiplies_objectness_and_class_score() -> None:
    out = np.array([[50, 50, 10, 10, 0.5, 0.2, 0.8], [5, 5, 2, 2, 0.1, 0.9, 0.0]], np.float32)
    found = decode(out, "yolov5", 0.3, (320, 320))
    assert found.class_ids.tolist() == [1]
    assert found.scores.tolist() == pytest.approx([0.4])
    assert found.boxes.tolist() == [[45, 45, 55, 55]]


def test_yolox_decoder_places_boxes_on_their_grid_cell() -> None:
    grid = yolox_grid((64, 64))
    assert len(grid) == 8 * 8 + 4 * 4 + 2 * 2
    out = np.zeros((len(grid), 6), np.float32)
    cell = 8 * 8 + 5  # stride 16, the cell at x=1, y=1
    out[cell] = (0.5, 0.5, np.log(2), np.log(1), 1.0, 0.9)
    found = decode(out, "yolox", 0.5, (64, 64))
    # centre (1.5 * 16, 1.5 * 16) = (24, 24); size (2 * 16, 1 * 16)
    assert found.boxes.tolist() == [[8, 16, 40, 32]]


def test_layout_is_guessed_from_shapes_and_metadata() -> None:
    assert guess_layout((1, 84, 8400), (640, 640)) == "yolov8"
    assert guess_layout((1, 25200, 85), (640, 640)) == "yolov5"
    assert guess_layout((1, 8400, 85), (640, 640)) == "yolox"
    symbolic = (1, 22, "anchors")
    assert guess_layout(symbolic, (320, 320), {"author": "Ultralytics", "version": "8.2"}) == (
        "yolov8"
    )
    with pytest.raises(LayoutError, match="set `layout`"):
        guess_layout(symbolic, (320, 320))
    with pytest.raises(LayoutError, match=r"\[1, 4\+nc, N\]"):
        guess_layout((1, 100), (320, 320))


def test_nms_keeps_the_best_of_overlapping_boxes_per_class() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.6, 0.9, 0.7, 0.5], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1, 3]
    classes = np.array([0, 0, 1, 0])
    # box 2 overlaps box 1 but is of another class: it stays
    assert sorted(batched_nms(boxes, scores, classes, 0.5).tolist()) == [1, 2, 3]
    assert nms(np.empty((0, 4), np.float32), np.empty(0, np.float32), 0.5).tolist() == []


def test_labels_come_from_ultralytics_metadata_or_a_file(tmp_path: Path) -> None:
    assert labels_from_metadata({"names": "{0: 'person', 1: 'car'}"}) == ["person", "car"]
    assert labels_from_metadata({"names": '["a", "b"]'}) == ["a", "b"]
    assert labels_from_metadata({}) is None
    with pytest.raises(LabelsError, match="without gaps"):
        labels_from_metadata({"names": "{0: 'a', 2: 'c'}"})
    text = tmp_path / "labels.txt"
    text.write_text("# coco\nperson\n\ncar\n")
    assert labels_from_file(text) == ["person", "car"]
    with pytest.raises(LabelsError, match="cannot read labels file"):
        labels_from_file(tmp_path / "missing.txt")
