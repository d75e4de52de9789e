"""Test videos made here: a real photograph (scikit-image's astronaut) moving across a frame.

The astronaut's face is where NudeNet's YOLOv8 model (`320n.onnx`, class FACE_FEMALE) finds it
in the photograph; moved across a background, the face's true box in each frame is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "FACE_IN_PHOTO",
    "Frames",
    "Scene",
    "astronaut",
    "occluded_walk",
    "write_scene",
    "write_still_scene",
]

FACE_IN_PHOTO = (173.0, 83.0, 274.0, 180.0)
"""x1, y1, x2, y2 of the face in skimage.data.astronaut() (512x512), found by the model."""


def astronaut() -> np.ndarray:
    """The photograph as BGR uint8, 512x512."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@dataclass(frozen=True)
class Scene:
    """A written video and where the face really is in each of its frames."""

    path: Path
    faces: list[tuple[float, float, float, float]]
    fps: float
    size: tuple[int, int]
    """(width, height)."""


def write_scene(
    path: Path,
    frames: int = 24,
    size: tuple[int, int] = (640, 360),
    photo_side: int = 300,
    fps: float = 25.0,
    fourcc: str = "mp4v",
) -> Scene:
    """A video of `frames` frames: the photo, scaled to `photo_side`, moving left to right over
    a grey gradient. Returns the face's true box per frame."""
    width, height = size
    photo = cv2.resize(astronaut(), (photo_side, photo_side), interpolation=cv2.INTER_AREA)
    scale = photo_side / 512
    gradient = np.linspace(40, 200, width, dtype=np.uint8)
    background = np.repeat(np.repeat(gradient[None, :, None], height, 0), 3, 2)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path}"
    faces = []
    top = (height - photo_side) // 2
    travel = width - photo_side
    for n in range(frames):
        left = round(travel * n / max(frames - 1, 1))
        image = background.copy()
        image[top : top + photo_side, left : left + photo_side] = photo
        writer.write(image)
        x1, y1, x2, y2 = FACE_IN_PHOTO
        faces.append((left + x1 * scale, top + y1 * scale, left + x2 * scale, top + y2 * scale))
    writer.release()
    return Scene(path, faces, fps, size)


@dataclass(frozen=True)
class Frames:
    """Frames in memory and where the face really is in each (None: hidden)."""

    images: list[np.ndarray]
    faces: list[tuple[float, float, float, float] | None]


def occluded_walk(
    frames: int = 40,
    hidden: range = range(15, 25),
    size: tuple[int, int] = (640, 360),
    photo_side: int = 260,
) -> Frames:
    """The photo moving left to right at constant speed, behind an occluder (not drawn) in the
    `hidden` frames: what a person walking behind a pillar looks like to a tracker."""
    width, height = size
    photo = cv2.resize(astronaut(), (photo_side, photo_side), interpolation=cv2.INTER_AREA)
    scale = photo_side / 512
    gradient = np.linspace(40, 200, width, dtype=np.uint8)
    background = np.repeat(np.repeat(gradient[None, :, None], height, 0), 3, 2)
    top = (height - photo_side) // 2
    travel = width - photo_side
    images: list[np.ndarray] = []
    faces: list[tuple[float, float, float, float] | None] = []
    x1, y1, x2, y2 = FACE_IN_PHOTO
    for n in range(frames):
        left = round(travel * n / max(frames - 1, 1))
        image = background.copy()
        if n in hidden:
            faces.append(None)
        else:
            image[top : top + photo_side, left : left + photo_side] = photo
            faces.append((left + x1 * scale, top + y1 * scale, left + x2 * scale, top + y2 * scale))
        images.append(image)
    return Frames(images, faces)


def write_still_scene(path: Path, lefts: list[int], photo_side: int = 300) -> Scene:
    """A 640x360 mp4v video with the photo's left edge at `lefts[n]` in frame n: repeat a
    value for frames where nothing moves."""
    width, height, fps = 640, 360, 25.0
    photo = cv2.resize(astronaut(), (photo_side, photo_side), interpolation=cv2.INTER_AREA)
    scale = photo_side / 512
    gradient = np.linspace(40, 200, width, dtype=np.uint8)
    background = np.repeat(np.repeat(gradient[None, :, None], height, 0), 3, 2)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write mp4v to {path}"
    top = (height - photo_side) // 2
    x1, y1, x2, y2 = FACE_IN_PHOTO
    faces = []
    for left in lefts:
        image = background.copy()
        image[top : top + photo_side, left : left + photo_side] = photo
        writer.write(image)
        faces.append((left + x1 * scale, top + y1 * scale, left + x2 * scale, top + y2 * scale))
    writer.release()
    return Scene(path, faces, fps, (width, height))


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two x1,y1,x2,y2 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
