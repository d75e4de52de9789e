"""Where a runtime keeps its state (checkpoints; later the audit log and control socket)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["STATE_DIR_ORDER", "default_state_dir"]

STATE_DIR_ORDER = (
    "$SCHNITZEL_STATE_DIR, else $STATE_DIRECTORY (systemd), else $XDG_STATE_HOME/schnitzel, "
    "else ~/.local/state/schnitzel"
)
"""Where the state dir is when none is given, in the words of `--help`."""


def default_state_dir() -> Path:
    """The state directory when none is given (docs/operations.md): $SCHNITZEL_STATE_DIR,
    then systemd's $STATE_DIRECTORY (its first entry), then $XDG_STATE_HOME/schnitzel or
    ~/.local/state/schnitzel. Nothing creates it until something is written there."""
    for variable in ("SCHNITZEL_STATE_DIR", "STATE_DIRECTORY"):
        value = os.environ.get(variable)
        if value:
            return Path(value.split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "schnitzel"
