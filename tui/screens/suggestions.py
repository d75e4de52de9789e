"""`g`: what the controller suggests, why, what it expects, and what became of each.

`a` approves and `x` rejects the suggestion under the cursor, each after a question showing
the change; a read-only console offers neither. The list follows the runtime at every poll.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from schnitzel.errors import ControlError
from schnitzel_tui.model import SuggestionView, plain_value
from schnitzel_tui.screens import still_shown
from schnitzel_tui.screens.audit import local_time
from schnitzel_tui.screens.confirm import ConfirmScreen
from schnitzel_tui.source import ConsoleSource
from schnitzel_tui.widgets.status_bar import StatusBar

__all__ = ["STATUS_MARK", "SuggestionsScreen", "quiet_text", "suggestion_detail"]

STATUS_MARK = {
    "open": ("◆", "bold yellow"),
    "approved": ("●", "green"),
    "applied": ("✔", "green"),
    "rejected": ("✗", "dim"),
    "expired": ("·", "dim"),
    "rolled_back": ("↶", "yellow"),
    "failed": ("✖", "bold red"),
}
"""A mark and a basic ANSI style per status: the mark alone tells them apart."""


class SuggestionsScreen(Screen[None]):
    """The controller's suggestions, newest first; approve or reject the open ones."""

    DEFAULT_CSS = """
    SuggestionsScreen #title { height: 1; padding: 0 1; text-style: bold; }
    SuggestionsScreen DataTable { height: 1fr; min-height: 4; }
    SuggestionsScreen #quiet { height: auto; max-height: 6; padding: 0 1; color: $text-muted; }
    SuggestionsScreen #detail {
        height: auto; max-height: 10; padding: 0 1; border-top: solid $primary-darken-2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("a", "decide('approve')", "Approve"),
        Binding("x", "decide('reject')", "Reject"),
    ]

    def __init__(
        self, source: ConsoleSource, graph: str, *, read_only: bool, controller: str
    ) -> None:
        super().__init__()
        self.source = source
        self.graph = graph
        self.read_only = read_only
        self.controller = controller
        self.suggestions: tuple[SuggestionView, ...] = ()
        self.why_none: tuple[str, ...] = ()
        """Why the controller suggests nothing now (its `controller` answer)."""

    def compose(self) -> ComposeResult:
        yield StatusBar(self.graph)
        yield Static(self._title(), id="title")
        table: DataTable[str | Text] = DataTable(id="list", cursor_type="row")
        yield table
        yield Static("", id="quiet")
        yield Static("", id="detail")
        yield Footer(show_command_palette=False)

    def _title(self) -> str:
        title = f"Suggestions of the controller (mode {self.controller})"
        if self.read_only:
            title += " · read-only: approve and reject are not offered"
        return title

    async def on_mount(self) -> None:
        table = self.query_one("#list", DataTable)
        table.add_columns("", "id", "node", "change", "status", "created")
        table.focus()
        await self.reload()
        await self.reload_why()
        self._show_detail()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # read-only: not offered at all, so the footer does not show it either
        return not (action == "decide" and self.read_only)

    async def reload(self) -> None:
        """Read the list from the runtime now (after a decision, or on opening)."""
        try:
            found = await self.source.command("suggestions")
        except (ControlError, OSError) as exc:
            self.notify(f"cannot read the suggestions: {exc}", severity="error")
            return
        if not still_shown(self):
            return
        self.show(tuple(SuggestionView.from_dict(s) for s in found or ()))

    async def reload_why(self) -> None:
        """Ask the controller why it suggests nothing now (at every poll while shown)."""
        try:
            state = await self.source.command("controller")
        except (ControlError, OSError) as exc:  # a runtime from before the command
            state = {"why_none": [f"the runtime cannot say why: {exc}"]}
        if not still_shown(self):
            return
        why = state.get("why_none") if isinstance(state, dict) else None
        self.show_why(tuple(str(line) for line in why or ()))

    def show_why(self, why_none: Sequence[str]) -> None:
        """Show why nothing is suggested, while no suggestion is open."""
        self.why_none = tuple(why_none)
        quiet = self.query_one("#quiet", Static)
        if any(s.is_open for s in self.suggestions) or not self.why_none:
            quiet.update("")
            return
        quiet.update(quiet_text(self.why_none))

    def show(self, suggestions: Sequence[SuggestionView]) -> None:
        """Show these (the runtime's order: newest last), newest first; the cursor stays on
        its suggestion."""
        ordered = tuple(reversed(tuple(suggestions)))
        if ordered == self.suggestions:
            return
        table = self.query_one("#list", DataTable)
        chosen = self.highlighted
        self.suggestions = ordered
        self.show_why(self.why_none)
        table.clear()
        for s in ordered:
            mark, style = STATUS_MARK.get(s.status, ("?", ""))
            table.add_row(
                Text(mark, style=style),
                s.id,
                s.node,
                s.change,
                Text(s.status, style=style),
                local_time(s.created),
                key=s.id,
            )
        ids = [s.id for s in ordered]
        if chosen is not None and chosen.id in ids:
            table.move_cursor(row=ids.index(chosen.id), animate=False)
        self._show_detail()

    @property
    def highlighted(self) -> SuggestionView | None:
        """The suggestion under the cursor."""
        table = self.query_one("#list", DataTable)
        if not self.suggestions or not 0 <= table.cursor_row < len(self.suggestions):
            return None
        return self.suggestions[table.cursor_row]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        detail = self.query_one("#detail", Static)
        chosen = self.highlighted
        if chosen is None:
            detail.update(Text("no suggestions yet", style="dim"))
            return
        detail.update(suggestion_detail(chosen))

    def action_decide(self, verb: str) -> None:
        chosen = self.highlighted
        if self.read_only:
            self.notify("read-only console: changes are refused", severity="warning")
            return
        if chosen is None:
            return
        if not chosen.is_open:
            self.notify(
                f"{chosen.id} is {chosen.status}: only an open suggestion can be {verb}d",
                severity="warning",
            )
            return
        change = f"{chosen.node}: {chosen.change}"
        if verb == "approve":
            change += f"\nexpected: {chosen.expected}" if chosen.expected else ""
        else:
            change += "\nnothing changes; the suggestion is closed as rejected"

        async def answered(yes: bool | None) -> None:
            if yes:
                await self._decide(verb, chosen)

        self.app.push_screen(
            ConfirmScreen(f"{verb.capitalize()} suggestion {chosen.id}?", change), answered
        )

    async def _decide(self, verb: str, chosen: SuggestionView) -> None:
        try:
            result = await self.source.command(verb, suggestion_id=chosen.id)
        except (ControlError, OSError) as exc:
            self.notify(f"{verb} {chosen.id} refused: {exc}", severity="error", timeout=8)
        else:
            status = result.get("status", "done") if isinstance(result, dict) else "done"
            self.notify(f"{chosen.id}: {status}", timeout=4)
        await self.reload()


def quiet_text(why_none: Sequence[str]) -> Text:
    """`Nothing suggested now:` and one line per reason."""
    text = Text("Nothing suggested now:", style="bold")
    for line in why_none:
        text.append(f"\n• {line}")
    return text


def suggestion_detail(s: SuggestionView) -> Text:
    """The whole of one suggestion: why, what it expects, the metric, who decided."""
    mark, style = STATUS_MARK.get(s.status, ("?", ""))
    text = Text.assemble(
        (f"{s.id} ", "bold"),
        (f"{mark} {s.status}", style),
        f"  {s.node}: {s.change}\n",
        ("why: ", "bold"),
        f"{s.rationale or '—'}\n",
        ("expected: ", "bold"),
        f"{s.expected or '—'}\n",
    )
    if s.metric:
        after = s.metric.get("after")
        text.append("metric: ", style="bold")
        text.append(
            f"{s.metric.get('name', '?')} of {s.metric.get('node', s.node)}: "
            f"{plain_value(s.metric.get('baseline'))} at the suggestion"
            + (f", {plain_value(after)} after" if after is not None else "")
            + "\n"
        )
    if s.decided_by:
        text.append("decided: ", style="bold")
        text.append(f"{s.decided_by} at {local_time(s.decided_at)}\n")
    if s.verdict:
        text.append("verdict: ", style="bold")
        text.append(s.verdict)
    text.rstrip()
    return text
