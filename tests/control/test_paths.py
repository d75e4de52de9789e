"""Where the control socket lives: beside the state, or (when that path is too long for a
unix socket) in a private runtime directory, named by the state dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from schnitzel.control.paths import MAX_SOCKET_PATH, default_socket_path, fits_socket_limit

LONG = Path("/srv/" + "deep/" * 30 + "state")


def test_the_socket_sits_in_the_state_dir() -> None:
    assert default_socket_path(Path("/var/lib/schnitzel")) == Path(
        "/var/lib/schnitzel/control.sock"
    )


def test_a_relative_state_dir_gives_an_absolute_socket_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir("/tmp")
    assert default_socket_path(Path("state")) == Path("/tmp/state/control.sock")


def test_a_state_dir_too_deep_falls_back_to_the_runtime_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    path = default_socket_path(LONG)
    assert path.parent == Path("/run/user/1000/schnitzel") and path.suffix == ".sock"
    assert fits_socket_limit(path)
    assert default_socket_path(LONG) == path  # ctl finds it again from the state dir
    assert default_socket_path(LONG / "other") != path


def test_without_a_runtime_dir_the_fallback_is_a_private_tmp_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    path = default_socket_path(LONG)
    assert path.parent == Path(f"/tmp/schnitzel-{os.geteuid()}")
    assert len(os.fsencode(str(path))) <= MAX_SOCKET_PATH


def test_a_runtime_dir_too_deep_itself_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(LONG))
    assert default_socket_path(LONG).parent == Path(f"/tmp/schnitzel-{os.geteuid()}")


def test_the_limit_is_counted_in_bytes_not_characters() -> None:
    assert fits_socket_limit(Path("/" + "a" * 106))
    assert not fits_socket_limit(Path("/" + "a" * 107))
    assert not fits_socket_limit(Path("/" + "é" * 60))  # 120 bytes in UTF-8
