"""Where the control sockets live: one per graph file in the state dir, or (when that path is
too long for a unix socket) in a private runtime directory, named by the state dir too."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from schnitzel.control.paths import (
    MAX_SOCKET_PATH,
    default_socket_path,
    fits_socket_limit,
    socket_candidates,
)
from tests.control.harness import socket_dir

LONG = Path("/srv/" + "deep/" * 30 + "state")


def test_each_graph_has_its_own_socket_in_the_state_dir(tmp_path: Path) -> None:
    state = Path("/var/lib/schnitzel")
    demo = default_socket_path(state, tmp_path / "demo.yaml")
    assert demo.parent == state / "control"
    assert demo.name.startswith("demo-") and demo.suffix == ".sock"
    assert default_socket_path(state, tmp_path / "uplink.yaml") != demo
    (tmp_path / "other").mkdir()
    same_name = default_socket_path(state, tmp_path / "other" / "demo.yaml")
    assert same_name != demo and same_name.name.startswith("demo-")  # by its resolved path
    assert default_socket_path(state, tmp_path / "other" / ".." / "demo.yaml") == demo


def test_a_graph_on_stdin_and_an_odd_file_name_give_safe_socket_names(tmp_path: Path) -> None:
    assert default_socket_path(Path("/s")).name.startswith("stdin-")
    odd = default_socket_path(Path("/s"), tmp_path / ("a b\u0441" + "x" * 80 + ".yaml"))
    assert odd.name.startswith("a_b_") and fits_socket_limit(odd)
    assert all(c.isascii() for c in odd.name) and len(odd.name) <= 40 + 1 + 8 + 5


def test_a_relative_state_dir_gives_an_absolute_socket_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir("/tmp")
    path = default_socket_path(Path("state"), tmp_path / "g.yaml")
    assert path.parent == Path("/tmp/state/control")


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


def test_the_candidates_are_the_sockets_of_this_state_dir_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket_dir() as runtime_dir:
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime_dir))
        short, deep = runtime_dir / "state", runtime_dir / ("deep-" * 25) / "state"
        made = []
        for state, graph in ((short, "a.yaml"), (short, "b.yaml"), (deep, "c.yaml")):
            path = default_socket_path(state, tmp_path / graph)
            path.parent.mkdir(parents=True, exist_ok=True)
            made.append(path)
            bind(path)
        (short / "control" / "notes.sock").write_text("not a socket")
        assert made[2].parent == runtime_dir / "schnitzel"  # the fallback of the deep one
        assert socket_candidates(short) == sorted(made[:2])
        assert socket_candidates(deep) == [made[2]]
        assert socket_candidates(runtime_dir / "none") == []


def bind(path: Path) -> None:
    """A socket file at `path` (nothing listens: the candidates are only files)."""
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()


def test_the_limit_is_counted_in_bytes_not_characters() -> None:
    assert fits_socket_limit(Path("/" + "a" * 106))
    assert not fits_socket_limit(Path("/" + "a" * 107))
    assert not fits_socket_limit(Path("/" + "é" * 60))  # 120 bytes in UTF-8
