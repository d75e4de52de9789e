"""The default state directory follows the order docs/operations.md gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from schnitzel.runtime.state_dir import default_state_dir

VARIABLES = ("SCHNITZEL_STATE_DIR", "STATE_DIRECTORY", "XDG_STATE_HOME")


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"SCHNITZEL_STATE_DIR": "/srv/a", "STATE_DIRECTORY": "/var/lib/b"}, "/srv/a"),
        ({"SCHNITZEL_STATE_DIR": "", "STATE_DIRECTORY": "/var/lib/b:/var/lib/c"}, "/var/lib/b"),
        ({"XDG_STATE_HOME": "/home/op/.state"}, "/home/op/.state/schnitzel"),
        ({}, str(Path.home() / ".local" / "state" / "schnitzel")),
    ],
)
def test_default_state_dir_takes_the_first_that_is_set(
    environment: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    assert default_state_dir() == Path(expected)
