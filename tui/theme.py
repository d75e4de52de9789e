"""Health colours and marks that stay readable on any terminal.

SSH does not forward COLORTERM, so an edge box often renders in 256 or 16 colours: only the
eight basic ANSI colours are used for meaning, and every state also has a mark, so a
monochrome terminal (or a colour-blind operator) still tells them apart.
"""

from __future__ import annotations

__all__ = ["HEALTH_MARK", "HEALTH_STYLE", "LEVEL_STYLE", "PAUSED_MARK", "health_style"]

HEALTH_STYLE = {"ok": "green", "degraded": "yellow", "failing": "bold red"}
"""Rich styles per health, from the basic ANSI palette."""

HEALTH_MARK = {"ok": "●", "degraded": "▲", "failing": "✖"}
"""A mark per health, for terminals (or eyes) without colour."""

PAUSED_MARK = "‖"

LEVEL_STYLE = {"info": "", "warning": "yellow", "error": "bold red"}
"""Event-log styles per level."""


def health_style(health: str) -> str:
    """The style of a health; unknown states are shown plain."""
    return HEALTH_STYLE.get(health, "")
