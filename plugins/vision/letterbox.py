"""Letterbox: fit an image into a model's square input without distorting it, and map the
model's boxes back to the image's pixels.

Pure (numpy and OpenCV only): no runtime import, so it is tested and benchmarked alone.

Two paddings are common in exports:

- `center` (Ultralytics, YOLOX's demo with `pad: center`): the image is scaled to fit and
  centred, the borders filled with grey 114;
- `corner` (YOLOX's `preproc`, NudeNet): the image keeps its top-left corner, the padding
  goes right and down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

__all__ = ["Letterbox", "Padding", "letterbox", "to_image_boxes"]

Padding = Literal["center", "corner"]


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How an image was placed in the model's input: scale, then offset (in input pixels)."""

    scale: float
    pad_x: float
    pad_y: float
    width: int
    """The original image's width in pixels."""
    height: int
    """The original image's height in pixels."""


def letterbox(
    image: np.ndarray,
    size: tuple[int, int],
    padding: Padding = "center",
    pad_value: int = 114,
) -> tuple[np.ndarray, Letterbox]:
    """The image scaled to fit `size` (height, width) and padded: a new HxWx3 uint8 array.

    The input is never modified (frames are shared by every node they fan out to).
    """
    in_h, in_w = size
    height, width = image.shape[:2]
    scale = min(in_w / width, in_h / height)
    new_w, new_h = round(width * scale), round(height * scale)
    resized = (
        image
        if (new_w, new_h) == (width, height)
        else cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    )
    if padding == "center":
        pad_x, pad_y = (in_w - new_w) / 2, (in_h - new_h) / 2
    else:
        pad_x = pad_y = 0.0
    left, top = round(pad_x - 0.1), round(pad_y - 0.1)
    canvas = np.full((in_h, in_w, 3), pad_value, dtype=np.uint8)
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas, Letterbox(scale, float(left), float(top), width, height)


def to_image_boxes(boxes: np.ndarray, box: Letterbox) -> np.ndarray:
    """Boxes x1,y1,x2,y2 in model-input pixels -> the original image's pixels, clipped."""
    out = np.empty_like(boxes, dtype=np.float32)
    out[:, [0, 2]] = (boxes[:, [0, 2]] - box.pad_x) / box.scale
    out[:, [1, 3]] = (boxes[:, [1, 3]] - box.pad_y) / box.scale
    # fancy indexing copies: clip the columns through basic slices, which are views
    np.clip(out[:, 0::2], 0, box.width, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, box.height, out=out[:, 1::2])
    return out
