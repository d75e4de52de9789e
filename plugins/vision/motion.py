"""Motion gating: whether a frame differs enough from the last one detected to run the
detector again (pure: numpy and OpenCV, nothing from the runtime).

Frames are shrunk to `width` pixels across, made grey and blurred; a pixel has changed when it
differs from the reference (the last frame the detector saw) by more than `pixel_delta`; the
frame moves when more than `min_changed` of the pixels (a fraction) have changed. The
reference is the last *detected* frame, not the previous one, so slow motion adds up until it
counts. `max_skip` bounds how many frames in a row may be skipped, so a change the gate misses
(light, a scene too small to show) is caught within that many frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

__all__ = ["MotionGate", "MotionSettings"]


@dataclass(frozen=True, slots=True)
class MotionSettings:
    """When a frame counts as moving."""

    width: int = 160
    pixel_delta: int = 25
    min_changed: float = 0.002
    max_skip: int = 50


@dataclass
class MotionGate:
    """One camera's gate. `moves(image)` once per frame, in order."""

    settings: MotionSettings = field(default_factory=MotionSettings)
    skipped: int = 0
    """Frames the gate let skip the detector, in all."""
    _reference: Any = None
    _in_a_row: int = 0

    def moves(self, image: np.ndarray) -> bool:
        """True: detect this frame (it becomes the reference). False: nothing moved."""
        small = self._shrink(image)
        s = self.settings
        if self._reference is not None and self._reference.shape == small.shape:
            changed = np.count_nonzero(cv2.absdiff(small, self._reference) > s.pixel_delta)
            if changed <= s.min_changed * small.size and self._in_a_row < s.max_skip:
                self._in_a_row += 1
                self.skipped += 1
                return False
        self._reference, self._in_a_row = small, 0
        return True

    def _shrink(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        width = min(self.settings.width, w)
        height = max(1, round(h * width / w))
        grey = cv2.cvtColor(
            cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY
        )
        return cv2.GaussianBlur(grey, (5, 5), 0)
