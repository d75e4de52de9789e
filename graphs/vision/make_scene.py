"""Write the camera demo's video: a real photograph (scikit-image's astronaut) walking into
the dock, staying a second, and walking out of view (graphs/camera.yaml).

    .venv/bin/python graphs/vision/make_scene.py [OUT]      # default: graphs/out/camera.mp4

Needs OpenCV and scikit-image (the dev extra installs both). The video is made here, not
committed: about 1 MB of pixels nobody should have to download.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from skimage import data

WIDTH, HEIGHT, SIDE, FPS = 640, 360, 260, 25.0


def lefts() -> list[int]:
    """Where the photo's left edge is in each frame: in, stay, out, then an empty street."""
    walk_in = [round(-SIDE + (400 + SIDE) * n / 39) for n in range(40)]  # to x=400
    stay = [400] * 25
    walk_out = [round(400 + (WIDTH - 400 + 10) * n / 24) for n in range(1, 25)]
    empty = [WIDTH + 10] * 25
    return walk_in + stay + walk_out + empty


def main(out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    photo = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (SIDE, SIDE))
    gradient = np.linspace(40, 200, WIDTH, dtype=np.uint8)
    background = np.repeat(np.repeat(gradient[None, :, None], HEIGHT, 0), 3, 2)
    top = (HEIGHT - SIDE) // 2
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write mp4v video to {out}")
    for left in lefts():
        image = background.copy()
        a, b = max(0, left), min(WIDTH, left + SIDE)
        if a < b:
            image[top : top + SIDE, a:b] = photo[:, a - left : b - left]
        writer.write(image)
    writer.release()
    print(f"wrote {out} ({len(lefts())} frames at {FPS:g} fps)")


if __name__ == "__main__":
    main(
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[1] / "out" / "camera.mp4"
    )
