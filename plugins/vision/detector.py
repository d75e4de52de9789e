"""A YOLO-family detector over an onnxruntime session: letterbox, run, decode, NMS.

No runtime import: the `detect` node and `bench/bench_vision.py`'s bare loop call the same
`prepare`, `session.run` and `finish`, so the bench compares the node with the same work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from schnitzel import SchnitzelError
from schnitzel_plugins.vision.decoders import Layout, LayoutError, decode, guess_layout
from schnitzel_plugins.vision.frame import Detection
from schnitzel_plugins.vision.labels import labels_from_metadata
from schnitzel_plugins.vision.letterbox import Letterbox, Padding, letterbox, to_image_boxes
from schnitzel_plugins.vision.nms import batched_nms

__all__ = ["Detector", "DetectorSettings", "ModelError"]


class ModelError(SchnitzelError, ValueError):
    """The model cannot be used as configured; the message says what to set."""


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """How detections are filtered and how images are fed to the model."""

    confidence: float = 0.25
    iou: float = 0.45
    max_det: int = 100
    classes: tuple[int | str, ...] | None = None
    min_area: float = 0.0
    layout: Layout | None = None
    input_size: int | None = None
    padding: Padding = "center"
    pad_value: int = 114
    color: str = "rgb"
    normalize: bool = True


class Detector:
    """Finds objects in BGR images with one model session (thread-safe: no state per call)."""

    def __init__(
        self,
        session: Any,
        settings: DetectorSettings,
        labels: Sequence[str] | None = None,
        model_name: str = "model",
    ) -> None:
        self.session = session
        self.settings = settings
        self.model_name = model_name
        model_input = session.get_inputs()[0]
        self.input_name: str = model_input.name
        metadata: Mapping[str, str] = session.get_modelmeta().custom_metadata_map or {}
        self.input_size = _input_size(model_input.shape, metadata, settings.input_size)
        self.dynamic_batch = not isinstance(model_input.shape[0], int)
        output_shape = tuple(session.get_outputs()[0].shape)
        self.layout: Layout = settings.layout or guess_layout(
            output_shape, self.input_size, metadata
        )
        self.labels: list[str] = list(labels) if labels else labels_from_metadata(metadata) or []
        self.class_ids = self._class_filter(settings.classes)

    def _class_filter(self, classes: tuple[int | str, ...] | None) -> np.ndarray | None:
        if classes is None:
            return None
        ids = []
        for wanted in classes:
            if isinstance(wanted, int):
                ids.append(wanted)
            elif wanted in self.labels:
                ids.append(self.labels.index(wanted))
            else:
                known = ", ".join(self.labels) if self.labels else "none (give `labels`)"
                raise ModelError(
                    f"class {wanted!r} is not one of the model's classes; they are: {known}"
                )
        return np.asarray(sorted(set(ids)), dtype=np.int64)

    def class_name(self, class_id: int) -> str:
        """The class's name, or its id as text when the model has no names for it."""
        return self.labels[class_id] if 0 <= class_id < len(self.labels) else str(class_id)

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """One image as the model's input (CHW float32) and how it was placed."""
        s = self.settings
        canvas, placed = letterbox(image, self.input_size, s.padding, s.pad_value)
        if s.color == "rgb":
            canvas = canvas[:, :, ::-1]
        blob = canvas.transpose(2, 0, 1).astype(np.float32)
        if s.normalize:
            blob *= np.float32(1 / 255)
        return blob, placed

    def run(self, blobs: list[np.ndarray]) -> list[np.ndarray]:
        """Raw outputs, one per blob: batched in one call when the model's batch is dynamic."""
        if self.dynamic_batch and len(blobs) > 1:
            out = self.session.run(None, {self.input_name: np.stack(blobs)})[0]
            return list(out)
        return [self.session.run(None, {self.input_name: b[None]})[0][0] for b in blobs]

    def finish(self, output: np.ndarray, placed: Letterbox) -> tuple[Detection, ...]:
        """Decoded, filtered, NMS'd detections in the image's pixels, best first."""
        s = self.settings
        found = decode(output, self.layout, s.confidence, self.input_size)
        boxes, scores, class_ids = found
        if self.class_ids is not None:
            keep = np.isin(class_ids, self.class_ids)
            boxes, scores, class_ids = boxes[keep], scores[keep], class_ids[keep]
        kept = batched_nms(boxes, scores, class_ids, s.iou)[: s.max_det]
        pixel_boxes = to_image_boxes(boxes[kept], placed)
        detections = []
        for box, score, class_id in zip(pixel_boxes, scores[kept], class_ids[kept], strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            if (x2 - x1) * (y2 - y1) < s.min_area or x2 <= x1 or y2 <= y1:
                continue
            cid = int(class_id)
            detections.append(Detection((x1, y1, x2, y2), float(score), cid, self.class_name(cid)))
        return tuple(detections)

    def detect(self, images: list[np.ndarray]) -> list[tuple[Detection, ...]]:
        """Detections for each image."""
        prepared = [self.prepare(image) for image in images]
        outputs = self.run([blob for blob, _ in prepared])
        return [
            self.finish(out, placed) for out, (_, placed) in zip(outputs, prepared, strict=True)
        ]


def _input_size(
    shape: Sequence[Any], metadata: Mapping[str, str], configured: int | None
) -> tuple[int, int]:
    """(height, width) of the model's input: fixed by the model, else from the exporter's
    `imgsz` metadata, else `input_size` from the config."""
    if len(shape) != 4:
        raise ModelError(
            f"the model's input has shape {list(shape)}; a detector takes [batch, 3, height, width]"
        )
    h, w = shape[2], shape[3]
    if isinstance(h, int) and isinstance(w, int):
        if configured is not None and (h, w) != (configured, configured):
            raise ModelError(
                f"input_size {configured} does not match the model's fixed input {w}x{h}; "
                "drop input_size or export the model at that size"
            )
        return h, w
    if configured is not None:
        return configured, configured
    raw = metadata.get("imgsz")
    if raw:
        try:
            values = [int(v) for v in raw.strip("[]() ").split(",")]
        except ValueError:
            values = []
        if len(values) == 2:
            return values[0], values[1]
        if len(values) == 1:
            return values[0], values[0]
    raise ModelError(
        "the model's input size is dynamic and it does not say which it was trained at; "
        "set input_size (for example 640) in the node's config"
    )


__all__ += ["LayoutError"]
