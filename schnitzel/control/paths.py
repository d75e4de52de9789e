"""Where the control socket lives.

By default `<state dir>/control.sock`: the socket sits beside the checkpoints and the audit
log of the runtime it steers, so a service and a developer's shell each find theirs. A unix
socket's path is at most `MAX_SOCKET_PATH` bytes, though; a state dir deep enough to exceed it
gets a socket in `$XDG_RUNTIME_DIR/schnitzel/` or `/tmp/schnitzel-<uid>/` instead, named by
a hash of the state dir so `schnitzel ctl --state-dir D` still finds it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["MAX_SOCKET_PATH", "SOCKET_NAME", "default_socket_path", "fits_socket_limit"]

SOCKET_NAME = "control.sock"
MAX_SOCKET_PATH = 107
"""Bytes of a unix socket path on Linux (108 with the terminating NUL)."""


def default_socket_path(state_dir: Path) -> Path:
    """The control socket of a runtime whose state dir is `state_dir`."""
    state_dir = state_dir.absolute()
    preferred = state_dir / SOCKET_NAME
    if fits_socket_limit(preferred):
        return preferred
    name = hashlib.sha1(os.fsencode(str(state_dir)), usedforsecurity=False).hexdigest()[:12]
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and Path(runtime_dir).is_absolute():
        candidate = Path(runtime_dir) / "schnitzel" / f"{name}.sock"
        if fits_socket_limit(candidate):
            return candidate
    return Path("/tmp") / f"schnitzel-{os.geteuid()}" / f"{name}.sock"


def fits_socket_limit(path: Path) -> bool:
    """True when `path` is short enough to bind a unix socket to."""
    return len(os.fsencode(str(path))) <= MAX_SOCKET_PATH
