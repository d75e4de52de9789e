"""Where the control sockets live.

Each graph file has its own default socket, so two graphs run by one user can both be
steered: `<state dir>/control/<stem>-<hash>.sock`, where `<stem>` is the graph file's name
without `.yaml` (made safe for a file name, at most 40 characters) and `<hash>` is the first 8
hex digits of the SHA-1 of the graph file's resolved path (two `graph.yaml` in different
directories do not collide). A graph read from standard input is named `stdin`.

A unix socket's path is at most `MAX_SOCKET_PATH` bytes, though; a state dir deep enough to
exceed it gets its sockets in `$XDG_RUNTIME_DIR/schnitzel/` or `/tmp/schnitzel-<uid>/`
instead, named `<state hash>-<stem>-<hash>.sock` by a hash of the state dir too, so
`schnitzel ctl --state-dir D` still finds them (`socket_candidates`).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

__all__ = [
    "CONTROL_DIR",
    "MAX_SOCKET_PATH",
    "SOCKET_NAME",
    "default_socket_path",
    "fits_socket_limit",
    "socket_candidates",
]

CONTROL_DIR = "control"
"""The state dir's directory of default sockets, one per graph file."""
SOCKET_NAME = "control.sock"
"""The one default socket of a state dir before sockets were per graph: still looked for."""
MAX_SOCKET_PATH = 107
"""Bytes of a unix socket path on Linux (108 with the terminating NUL)."""
_STEM_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_STEM_MAX = 40


def default_socket_path(state_dir: Path, graph: Path | None = None) -> Path:
    """The default control socket of a run of `graph` (None: standard input) whose state
    dir is `state_dir`."""
    state_dir = state_dir.absolute()
    name = socket_name(graph)
    preferred = state_dir / CONTROL_DIR / name
    if fits_socket_limit(preferred):
        return preferred
    fallback = f"{_state_hash(state_dir)}-{name}"
    for directory in _fallback_dirs():
        candidate = directory / fallback
        if fits_socket_limit(candidate):
            return candidate
    return _tmp_dir() / fallback


def socket_name(graph: Path | None) -> str:
    """`<stem>-<hash>.sock` for a graph file (see the module docstring)."""
    if graph is None:
        stem, where = "stdin", "<stdin>"
    else:
        resolved = graph.expanduser().resolve()
        stem, where = resolved.stem, str(resolved)
    stem = _STEM_CHARS.sub("_", stem)[:_STEM_MAX] or "graph"
    digest = hashlib.sha1(os.fsencode(where), usedforsecurity=False).hexdigest()[:8]
    return f"{stem}-{digest}.sock"


def socket_candidates(state_dir: Path) -> list[Path]:
    """Every socket file that a runtime with this state dir may serve by default: the
    per-graph sockets, in the state dir or in a fallback dir, and the older single
    `control.sock`. Only socket files are listed; whether anything answers is not checked."""
    state_dir = state_dir.absolute()
    prefix = _state_hash(state_dir)
    found = [state_dir / SOCKET_NAME, *sorted((state_dir / CONTROL_DIR).glob("*.sock"))]
    for directory in _fallback_dirs():
        found += [directory / f"{prefix}.sock", *sorted(directory.glob(f"{prefix}-*.sock"))]
    unique = list(dict.fromkeys(found))
    return [path for path in unique if _is_socket(path)]


def fits_socket_limit(path: Path) -> bool:
    """True when `path` is short enough to bind a unix socket to."""
    return len(os.fsencode(str(path))) <= MAX_SOCKET_PATH


def _state_hash(state_dir: Path) -> str:
    return hashlib.sha1(os.fsencode(str(state_dir)), usedforsecurity=False).hexdigest()[:12]


def _fallback_dirs() -> list[Path]:
    """Where sockets go when the state dir's path is too long: the user's runtime dir, then
    a private directory in /tmp."""
    dirs = []
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and Path(runtime_dir).is_absolute():
        dirs.append(Path(runtime_dir) / "schnitzel")
    dirs.append(_tmp_dir())
    return dirs


def _tmp_dir() -> Path:
    return Path("/tmp") / f"schnitzel-{os.geteuid()}"


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.lstat().st_mode)
    except OSError:
        return False
