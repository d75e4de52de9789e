"""Fixtures of the vision pack's tests: a real model from a registry package, real photographs,
videos written here. Without the `vision` and `vision-test` extras (the `dev` extra installs
both, so `just setup` and CI have them) only `test_extras_installed.py` is collected, and it
says what is missing as a skip."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

MISSING = [
    name
    for name in ("cv2", "onnxruntime", "numpy", "scipy", "skimage", "nudenet", "ddddocr")
    if importlib.util.find_spec(name) is None
]
"""Packages of the vision and vision-test extras that are not installed."""

NUDENET = "package:nudenet/320n.onnx"
"""NudeNet's YOLOv8n at 320 (AGPL-3.0), in the nudenet wheel; finds the astronaut's face."""

if MISSING:  # the test modules import them: an importorskip here would be a collection error
    collect_ignore = [
        str(path)
        for path in Path(__file__).parent.glob("test_*.py")
        if path.name != "test_extras_installed.py"
    ]
else:
    from schnitzel_plugins.vision.model_path import resolve_model
    from tests.vision.scenes import Scene, write_scene

    @pytest.fixture(scope="session")
    def model_path() -> Path:
        return resolve_model(NUDENET, Path("."))

    @pytest.fixture(scope="session")
    def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
        """24 frames of 640x360 at 25 fps, mp4v: the astronaut crossing from left to right."""
        folder = tmp_path_factory.mktemp("scene")
        yield write_scene(folder / "scene.mp4")
