"""Every runtime test starts with empty records and closed gates."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from schnitzel.runtime import pacer as pacer_module
from tests.runtime import plugins


@pytest.fixture(autouse=True)
def _fresh_records() -> Iterator[None]:
    plugins.reset()
    yield
    for gate in plugins.GATES.values():
        gate.set()  # never leave a thread waiting on a gate
    plugins.reset()


class FakeClock:
    """A monotonic clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The clock of `schnitzel.runtime.pacer`, read by both its `Pacer`s (permits) and its
    `PaceClock` (due times of waits); the event loop keeps the real one, so a test that
    moves this clock must not wait for a `PaceClock` wake-up."""
    fake = FakeClock()
    monkeypatch.setattr(pacer_module, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake
