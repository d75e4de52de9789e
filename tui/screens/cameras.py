"""`c`: every camera of the graph on one screen; enter opens one (its zones, tracks and
latest events)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Static

from schnitzel_tui.cameras import CameraView
from schnitzel_tui.widgets.camera_table import CameraTable
from schnitzel_tui.widgets.keyed_table import KeyedTable
from schnitzel_tui.widgets.status_bar import StatusBar

__all__ = ["CamerasScreen"]


class CamerasScreen(Screen[None]):
    """The cameras overview. Escape goes back."""

    DEFAULT_CSS = """
    CamerasScreen #title { height: 1; padding: 0 1; text-style: bold; }
    CamerasScreen CameraTable { height: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, graph: str, open_node: Callable[[str], None]) -> None:
        """`open_node`: shows a node's detail (the app's)."""
        super().__init__()
        self.graph = graph
        self.open_node = open_node

    def compose(self) -> ComposeResult:
        yield StatusBar(self.graph)
        yield Static("Cameras: detector load is of the busiest detector a camera feeds", id="title")
        yield CameraTable()
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(CameraTable).focus()

    def show(self, cameras: Sequence[CameraView]) -> None:
        """Redraw from the latest figures."""
        self.query_one(CameraTable).show(cameras)

    def on_keyed_table_row_chosen(self, message: KeyedTable.RowChosen) -> None:
        message.stop()
        self.open_node(message.row_key)
