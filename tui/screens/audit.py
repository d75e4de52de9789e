"""`A`: the audit log, newest first: who changed what, why, when, and whether it was applied.

Every change made through the control API (console, `schnitzel ctl`, the controller, a
reload) is one entry. `enter` shows one entry in full. Reading it is allowed in a read-only
console.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar

import yaml
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Static

from schnitzel.errors import ControlError
from schnitzel_tui.model import AuditView
from schnitzel_tui.screens import still_shown
from schnitzel_tui.source import ConsoleSource
from schnitzel_tui.widgets.status_bar import StatusBar

__all__ = ["AUDIT_LIMIT", "AuditEntryScreen", "AuditScreen", "local_time", "outcome_text"]

AUDIT_LIMIT = 500
"""Entries read at most; the file under the state dir has every one."""


class AuditScreen(Screen[None]):
    """The audit log as a table; enter opens an entry."""

    DEFAULT_CSS = """
    AuditScreen #title { height: 1; padding: 0 1; text-style: bold; }
    AuditScreen DataTable { height: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, source: ConsoleSource, graph: str) -> None:
        super().__init__()
        self.source = source
        self.graph = graph
        self.entries: tuple[AuditView, ...] = ()
        """Newest first."""

    def compose(self) -> ComposeResult:
        yield StatusBar(self.graph)
        yield Static("Audit log, newest first (enter: the whole entry)", id="title")
        table: DataTable[str | Text] = DataTable(id="entries", cursor_type="row")
        yield table
        yield Footer(show_command_palette=False)

    async def on_mount(self) -> None:
        table = self.query_one("#entries", DataTable)
        # at 80 columns: when, how it went, what, where and who; the rest scrolls into view
        table.add_columns("when", "outcome", "action", "node", "who", "change", "why", "sugg.")
        table.focus()
        await self.reload()

    async def reload(self) -> None:
        """Read the log again (on opening, and at every poll while shown)."""
        try:
            found = await self.source.command("audit", limit=AUDIT_LIMIT)
        except (ControlError, OSError) as exc:
            if still_shown(self):
                self.query_one("#title", Static).update(
                    Text(f"✖ cannot read the audit log: {exc}", style="bold red")
                )
            return
        if not still_shown(self):
            return
        self.show([AuditView.from_dict(e) for e in found or ()])

    def show(self, oldest_first: Sequence[AuditView]) -> None:
        """Show these entries newest first; the cursor stays on its entry."""
        entries = tuple(reversed(tuple(oldest_first)))
        if entries == self.entries:
            return
        table = self.query_one("#entries", DataTable)
        keep = len(entries) - len(self.entries) + table.cursor_row if self.entries else 0
        self.entries = entries
        table.clear()
        for entry in entries:
            table.add_row(
                local_time(entry.ts),
                outcome_text(entry.outcome),
                entry.action,
                entry.node or "—",
                entry.who,
                _cut(entry.change, 40),
                _cut(entry.why, 30),
                entry.suggestion or "",
            )
        table.move_cursor(row=max(0, min(keep, len(entries) - 1)), animate=False)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_entry()

    def action_open_entry(self) -> None:
        table = self.query_one("#entries", DataTable)
        if self.entries and 0 <= table.cursor_row < len(self.entries):
            self.app.push_screen(AuditEntryScreen(self.entries[table.cursor_row]))


class AuditEntryScreen(ModalScreen[None]):
    """One audit entry in full."""

    DEFAULT_CSS = """
    AuditEntryScreen { align: center middle; }
    AuditEntryScreen > Vertical {
        width: 90; max-width: 100%; height: auto; max-height: 100%; padding: 0 1;
        border: thick $primary; background: $surface;
    }
    AuditEntryScreen #heading { text-style: bold; }
    AuditEntryScreen VerticalScroll { height: auto; max-height: 20; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, entry: AuditView) -> None:
        super().__init__()
        self.entry = entry

    def compose(self) -> ComposeResult:
        entry = self.entry
        with Vertical():
            yield Static(
                Text.assemble(
                    f"{local_time(entry.ts)}  {entry.action} {entry.node or ''}  ",
                    outcome_text(entry.outcome),
                ),
                id="heading",
            )
            with VerticalScroll():
                yield Static(entry_text(entry), id="entry")

    def action_close(self) -> None:
        self.dismiss(None)


def entry_text(entry: AuditView) -> Text:
    """Who, what, why, when, the suggestion, the outcome, then the entry as stored."""
    text = Text()
    for label, value in (
        ("who", entry.who),
        ("user", entry.user),
        ("ssh", entry.ssh or "— (not over ssh)"),
        ("via", entry.via),
        ("when", entry.ts),
        ("what", f"{entry.action} {entry.node or ''}".strip()),
        ("change", entry.change or "—"),
        ("why", entry.why or "—"),
        ("suggestion", entry.suggestion or "—"),
        ("outcome", entry.outcome),
        ("error", entry.error or "—"),
    ):
        text.append(f"{label:<11}", style="bold")
        text.append(f"{value}\n")
    text.append("\nas stored:\n", style="bold")
    text.append(yaml.safe_dump(dict(entry.raw), sort_keys=False, allow_unicode=True).rstrip())
    return text


def outcome_text(outcome: str) -> Text:
    """`✔ applied` in green, `✖ refused` in red: the mark says it without colour."""
    if outcome == "applied":
        return Text("✔ applied", style="green")
    if outcome == "refused":
        return Text("✖ refused", style="bold red")
    return Text(outcome or "?")


def local_time(ts: str) -> str:
    """An ISO timestamp as `MM-DD HH:MM:SS` in local time; unparsable: as it is."""
    try:
        moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return ts
    return moment.astimezone().strftime("%m-%d %H:%M:%S")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
