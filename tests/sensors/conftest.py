"""Every sensors test starts with empty records and closed gates (tests/runtime/plugins.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.runtime import plugins


@pytest.fixture(autouse=True)
def _fresh_records() -> Iterator[None]:
    plugins.reset()
    yield
    for gate in plugins.GATES.values():
        gate.set()  # never leave a thread waiting on a gate
    plugins.reset()
