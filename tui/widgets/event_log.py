"""The event log: validation warnings, errors, drop bursts, health changes, commands."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.widgets import RichLog

from schnitzel_tui.model import EventView
from schnitzel_tui.theme import LEVEL_STYLE

__all__ = ["EventLog", "event_line"]


class EventLog(RichLog):
    """Events, newest at the bottom; appended, never redrawn whole."""

    DEFAULT_CSS = """
    EventLog { height: 6; border-top: solid $primary-darken-2; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_lines=1000, wrap=True, markup=False, **kwargs)

    def add(self, events: Iterable[EventView]) -> None:
        """Append these events."""
        for event in events:
            self.write(event_line(event))


def event_line(event: EventView) -> Text:
    """`HH:MM:SS level node: message`, coloured by level."""
    clock = time.strftime("%H:%M:%S", time.localtime(event.ts))
    line = Text(f"{clock} ", style="dim")
    line.append(f"{event.level:<7} ", style=LEVEL_STYLE.get(event.level, ""))
    if event.node:
        line.append(f"{event.node}: ", style="bold")
    line.append(event.message)
    return line
