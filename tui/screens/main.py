"""The main screen: status line, graph, node table, durable panel, event log."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Input

from schnitzel_tui.model import ConsoleSnapshot, EventView, Topology
from schnitzel_tui.widgets.durable_panel import DurablePanel
from schnitzel_tui.widgets.event_log import EventLog
from schnitzel_tui.widgets.graph_view import GraphView
from schnitzel_tui.widgets.node_table import SORTS, NodeTable
from schnitzel_tui.widgets.status_bar import StatusBar
from schnitzel_tui.widgets.why_line import WhyLine

__all__ = ["SHORT_ROWS", "MainScreen"]

SHORT_ROWS = 30
"""A terminal with fewer rows shows no graph view."""


class MainScreen(Screen[None]):
    """Everything at a glance; enter opens a node."""

    DEFAULT_CSS = """
    MainScreen GraphView { height: auto; max-height: 40%; }
    MainScreen.short GraphView { display: none; }
    MainScreen #filter { dock: bottom; display: none; }
    MainScreen #filter.shown { display: block; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Back", show=False),
        Binding("s", "sort(1)", "Sort"),
        Binding("S", "sort(-1)", "Sort back", show=False),
    ]

    def __init__(self, topology: Topology) -> None:
        super().__init__()
        self.topology = topology

    def compose(self) -> ComposeResult:
        yield StatusBar(self.topology.graph)
        yield GraphView()
        yield NodeTable([node.id for node in self.topology.nodes])
        yield WhyLine()
        yield DurablePanel()
        yield EventLog()
        yield Input(placeholder="filter: part of a node id, kind or plugin", id="filter")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(GraphView).set_topology(self.topology)
        table = self.query_one(NodeTable)
        table.focus()
        self.watch(table, "cursor_row", self._show_why, init=False)

    def on_resize(self, event: events.Resize) -> None:
        # Below SHORT_ROWS the graph would leave the table a few rows: the table (unhealthy
        # nodes pinned first) says the same in less room, so the graph steps aside.
        self.set_class(event.size.height < SHORT_ROWS, "short")

    def show(self, snapshot: ConsoleSnapshot) -> None:
        """Redraw what changed in this snapshot."""
        self.query_one(GraphView).update_nodes(snapshot.nodes)
        self.query_one(NodeTable).show(snapshot.nodes)
        self._show_why()
        self.query_one(DurablePanel).show(snapshot.durable_nodes)

    def _show_why(self) -> None:
        table = self.query_one(NodeTable)
        shown = table.shown
        selected = shown[table.cursor_row] if shown else None
        self.query_one(WhyLine).show(selected, shown)

    def add_events(self, events: Iterable[EventView]) -> None:
        """Append to the event log."""
        self.query_one(EventLog).add(events)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("shown")
        self.query_one(NodeTable).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one(NodeTable).filter_text = event.value.strip()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.remove_class("shown")
        self.query_one(NodeTable).focus()

    def action_sort(self, step: int) -> None:
        table = self.query_one(NodeTable)
        names = list(SORTS)
        table.sort_by = names[(names.index(table.sort_by) + step) % len(names)]
        self.notify(f"sorted by {table.sort_by}", timeout=2)
