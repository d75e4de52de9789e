"""Decoders for the raw outputs of common YOLO exports (pure: numpy only, no runtime import).

Each decoder turns the model's first output into candidate boxes x1,y1,x2,y2 in model-input
pixels, their scores and class ids, keeping only scores >= `confidence`:

- `yolov8`, output `[1, 4+nc, N]`: rows cx, cy, w, h and nc class scores (YOLOv8, YOLO11);
- `yolov5`, output `[1, N, 5+nc]`: cx, cy, w, h, objectness, nc scores, in pixels (YOLOv5,
  YOLOX exported with decoding);
- `yolox`, output `[1, N, 5+nc]`: as yolov5, but the boxes are relative to grid cells of
  stride 8, 16 and 32 (YOLOX exported raw, `decode_in_inference=False`).

`guess_layout` picks one from the shapes (and the exporter's metadata when present).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple

import numpy as np

from schnitzel import SchnitzelError

__all__ = [
    "LAYOUTS",
    "Candidates",
    "Layout",
    "LayoutError",
    "decode",
    "guess_layout",
    "yolox_grid",
]

Layout = Literal["yolov8", "yolov5", "yolox"]
LAYOUTS: tuple[Layout, ...] = ("yolov8", "yolov5", "yolox")
YOLOX_STRIDES = (8, 16, 32)


class LayoutError(SchnitzelError, ValueError):
    """The model's output does not have a shape any decoder reads."""


class Candidates(NamedTuple):
    """Boxes (x1,y1,x2,y2, model-input pixels), scores and class ids above the threshold."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray


def guess_layout(
    output_shape: tuple[int | str | None, ...],
    input_size: tuple[int, int],
    metadata: Mapping[str, str] | None = None,
) -> Layout:
    """The layout of an output of `output_shape` for an input of `input_size` (h, w).

    Ultralytics exports say so in their metadata; otherwise the shape decides: the axis of
    boxes is the long one. `[1, N, 5+nc]` with N exactly the cells of a stride 8/16/32 grid
    is a raw YOLOX export; any other N is read as YOLOv5 (already in pixels).
    """
    if len(output_shape) != 3:
        raise LayoutError(
            f"the model's first output has shape {list(output_shape)}; the decoders read "
            "[1, 4+nc, N] (YOLOv8/YOLO11) or [1, N, 5+nc] (YOLOv5/YOLOX)"
        )
    meta = metadata or {}
    if "ultralytics" in meta.get("author", "").lower() or meta.get("task") == "detect":
        version = meta.get("version", "")
        if not version.startswith("5"):
            return "yolov8"
    _, a, b = output_shape
    if not isinstance(a, int) or not isinstance(b, int):
        raise LayoutError(
            f"the model's output shape {list(output_shape)} has symbolic sizes; set "
            "`layout` (yolov8, yolov5 or yolox) in the node's config"
        )
    if a < b:
        return "yolov8"
    if a == len(yolox_grid(input_size)):
        return "yolox"
    return "yolov5"


def yolox_grid(input_size: tuple[int, int]) -> np.ndarray:
    """Rows (grid x, grid y, stride) of a YOLOX head for an input of (h, w)."""
    h, w = input_size
    parts = []
    for stride in YOLOX_STRIDES:
        gh, gw = h // stride, w // stride
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        cells = np.stack((xs.ravel(), ys.ravel(), np.full(gh * gw, stride)), axis=1)
        parts.append(cells)
    return np.concatenate(parts).astype(np.float32)


def decode(
    output: np.ndarray,
    layout: Layout,
    confidence: float,
    input_size: tuple[int, int],
) -> Candidates:
    """Candidates from one image's raw output (the batch axis already removed)."""
    if layout == "yolov8":
        rows = output.T  # [N, 4+nc]
        if rows.shape[1] < 5:
            raise LayoutError(f"a yolov8 output needs 4+nc rows (nc >= 1), got {output.shape}")
        scores_all = rows[:, 4:]
    else:
        rows = output
        if rows.shape[1] < 6:
            raise LayoutError(f"a {layout} output needs 5+nc columns (nc >= 1), got {output.shape}")
        scores_all = rows[:, 5:] * rows[:, 4:5]
    class_ids = scores_all.argmax(axis=1)
    scores = scores_all[np.arange(len(rows)), class_ids]
    keep = scores >= confidence
    rows, scores, class_ids = rows[keep], scores[keep], class_ids[keep]
    centre = rows[:, :2].astype(np.float32)
    size = rows[:, 2:4].astype(np.float32)
    if layout == "yolox":
        grid = yolox_grid(input_size)
        if len(grid) != len(keep):
            raise LayoutError(
                f"a raw yolox output for a {input_size[1]}x{input_size[0]} input has "
                f"{len(grid)} rows, this one {len(keep)}: set `layout: yolov5` if its boxes "
                "are already in pixels"
            )
        cells = grid[keep]
        centre = (centre + cells[:, :2]) * cells[:, 2:3]
        size = np.exp(size) * cells[:, 2:3]
    half = size / 2
    boxes = np.concatenate((centre - half, centre + half), axis=1)
    return Candidates(boxes, scores.astype(np.float32), class_ids.astype(np.int64))
