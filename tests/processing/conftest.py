"""Processing tests start and end with empty records (they use tests/runtime's Recorder)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.runtime import plugins


@pytest.fixture(autouse=True)
def _fresh_records() -> Iterator[None]:
    plugins.reset()
    yield
    plugins.reset()
