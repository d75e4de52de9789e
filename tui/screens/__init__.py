"""The console's screens: thin, each composing widgets and passing them snapshots."""

from __future__ import annotations

from typing import Any

from textual.screen import Screen

__all__ = ["still_shown"]


def still_shown(screen: Screen[Any]) -> bool:
    """Whether `screen` can still be drawn after an await: an answer from the runtime can come
    after the operator closed the screen or quit, when its widgets are being removed."""
    return screen.app.is_running and screen.is_current
