"""`?`: the keys, and what the columns mean. Changes (pause, throttle, swap, roll back,
approve, reject) always ask first and are not offered in a read-only console."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

__all__ = ["HelpScreen"]

KEYS = (
    ("?", "this help"),
    ("/", "filter nodes by id, kind or plugin (esc clears)"),
    (
        ": or ctrl+p",
        "command palette: open, pause, resume, throttle, swap or roll back a node; "
        "suggestions, audit log, sort, freeze, quit",
    ),
    ("enter", "open the node under the cursor: history, config, recent errors"),
    ("t", "throttle the node: source rate, sampling, concurrency, within its limits"),
    ("w", "swap the node's plugin or config: editor or file, dry run, diff, confirm"),
    ("R", "roll the node back to the version before its last swap"),
    ("g", "the controller's suggestions: a approve, x reject (each asks first)"),
    ("A", "the audit log: who changed what, why, when; enter shows an entry"),
    ("c", "the cameras: fps, detector load, tracks, zones, last event; enter opens one"),
    ("esc", "back (close a screen, clear the filter)"),
    ("s / S", "sort by the next / previous column (unhealthy nodes stay on top)"),
    ("space", "freeze the view (the run goes on; figures are still recorded)"),
    ("+ / -", "refresh faster / slower"),
    ("ctrl+r / ctrl+t", "in the swap form: review (dry run and diff) / editor or file"),
    ("q", "quit: stops the graph (asks while packets flow); q again while draining: now"),
    ("ctrl+c / ctrl+q", "the same as q"),
)

COLUMNS = (
    ("in, out", "packets per second taken from the inbox, passed on (sinks: delivered)"),
    ("inbox", "queued packets / capacity; a durable inbox: its backlog on disk"),
    ("filtered", "packets a node let go on purpose (sample, dedup): not a loss"),
    ("overflow", "packets an overflow policy dropped (drop_new, drop_oldest)"),
    ("lost", "packets dropped for any other reason (failed node, drain timeout)"),
    ("p99 ms", "99th percentile source-to-node latency"),
    ("health", "● ok  ▲ degraded  ✖ failing  ‖ paused, with the reason"),
)


class HelpScreen(ModalScreen[None]):
    """Keys and column meanings."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(_table("key", KEYS))
            yield Static(_table("column", COLUMNS))

    def action_close(self) -> None:
        self.dismiss(None)


def _table(title: str, rows: tuple[tuple[str, str], ...]) -> Table:
    table = Table(box=None, show_edge=False, expand=True)
    table.add_column(title, style="bold", no_wrap=True)
    table.add_column("")
    for key, meaning in rows:
        table.add_row(key, meaning)
    return table
