"""Says, as a skip, when the vision tests cannot run: without the `vision` and `vision-test`
extras the other modules of this folder are not collected (they import OpenCV and the test
models)."""

from __future__ import annotations

import pytest

from tests.vision.conftest import MISSING


def test_the_vision_extras_are_installed() -> None:
    if MISSING:
        pytest.skip(
            f"the vision tests need {', '.join(MISSING)}: pip install -e '.[dev]' (which "
            "includes the vision and vision-test extras)"
        )
