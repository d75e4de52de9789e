"""A table updated in place: rows keyed by id, only changed rows rendered again.

Textual's DataTable renders every visible cell through Rich again after any cell changes; a
console refreshing 50 nodes every second spent most of its frame there, on the event loop
the graph runs on. This table keeps one rendered strip per row, builds it again only when
that row's cells changed, and repaints only that row's line (Dolphie's "update what
changed", taken down to the line).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

__all__ = ["Cell", "Column", "KeyedTable"]

Cell = str | Text

Column = tuple[str, str, int]
"""(key, label, width): widths are fixed so a changing value never re-lays the table out."""

GAP = 2
"""Blank cells after each column."""
MARGIN = 1
"""Blank cells before the first column."""


class KeyedTable(ScrollView, can_focus=True):
    """Rows synchronised with a mapping of row key -> cells, a header, a row cursor."""

    DEFAULT_CSS = """
    KeyedTable { height: auto; max-height: 100%; scrollbar-size-vertical: 1; }
    KeyedTable > .keyed-table--header { text-style: bold; }
    KeyedTable > .keyed-table--cursor { background: $accent 40%; }
    KeyedTable:focus > .keyed-table--cursor { background: $accent; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"keyed-table--header", "keyed-table--cursor"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "cursor(-10)", "Page up", show=False),
        Binding("pagedown", "cursor(10)", "Page down", show=False),
        Binding("home", "cursor_to(0)", "First", show=False),
        Binding("end", "cursor_to(-1)", "Last", show=False),
        Binding("enter", "choose", "Open", show=False),
    ]

    cursor_row: reactive[int] = reactive(0, init=False)
    """Index of the highlighted row."""

    class RowChosen(Message):
        """Enter, or a click, on a row."""

        def __init__(self, table: KeyedTable, row_key: str) -> None:
            super().__init__()
            self.table = table
            self.row_key = row_key

        @property
        def control(self) -> KeyedTable:
            return self.table

    def __init__(
        self, columns: Sequence[Column], key_column: str, show_cursor: bool = True, **kwargs: Any
    ) -> None:
        """`key_column`: the column whose cells are the row keys, as plain text."""
        super().__init__(**kwargs)
        self._table_columns = tuple(columns)
        self._key_index = [key for key, _, _ in columns].index(key_column)
        self.show_cursor = show_cursor
        self._order: list[str] = []
        self._cells: dict[str, tuple[Cell, ...]] = {}
        self._strips: dict[str, Strip] = {}
        self._header: Strip | None = None
        self._width = MARGIN + sum(width for _, _, width in columns) + GAP * len(columns)
        self.virtual_size = Size(self._width, 1)

    # -- data -------------------------------------------------------------------------------

    @property
    def row_keys(self) -> list[str]:
        """The keys of the rows shown, in display order."""
        return list(self._order)

    @property
    def row_count(self) -> int:
        """How many rows are shown."""
        return len(self._order)

    def get_row(self, row_key: str) -> list[Cell]:
        """The cells of a row."""
        return list(self._cells[row_key])

    def get_row_at(self, index: int) -> list[Cell]:
        """The cells of the row at a display position."""
        return self.get_row(self._order[index])

    def get_cell(self, row_key: str, column_key: str) -> Cell:
        """One cell, by row key and column key."""
        index = [key for key, _, _ in self._table_columns].index(column_key)
        return self._cells[row_key][index]

    def sync(
        self,
        rows: Mapping[str, tuple[Cell, ...]],
        sort_key: Callable[[str], Any] | None = None,
        reverse: bool = False,
    ) -> int:
        """Make the table show exactly `rows` (in their order unless `sort_key` is given);
        return how many cells changed."""
        changed_cells = 0
        changed_rows: set[str] = set()
        for key in [k for k in self._cells if k not in rows]:
            del self._cells[key]
            self._strips.pop(key, None)
        for key, cells in rows.items():
            shown = self._cells.get(key)
            if shown == cells:
                continue
            if shown is None:
                changed_cells += len(cells)
            else:
                changed_cells += sum(a != b for a, b in zip(shown, cells, strict=True))
            self._cells[key] = cells
            self._strips.pop(key, None)
            changed_rows.add(key)
        order = list(rows) if sort_key is None else sorted(rows, key=sort_key, reverse=reverse)
        if order != self._order:
            selected = self._order[self.cursor_row] if self._order else None
            self._order = order
            self.virtual_size = Size(self._width, len(order) + 1)
            if selected is not None and selected in rows:  # the cursor stays on its row
                self.set_reactive(KeyedTable.cursor_row, order.index(selected))
            self.cursor_row = min(self.cursor_row, max(len(order) - 1, 0))
            self._scroll_to_cursor()
            self.refresh()
        else:
            for key in changed_rows:
                self._refresh_row(order.index(key))
        return changed_cells

    # -- rendering --------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:
            strip = self._header_strip()
        else:
            index = y - 1 + scroll_y
            if index >= len(self._order):
                return Strip.blank(width, self.rich_style)
            strip = self._row_strip(self._order[index])
            if self.show_cursor and index == self.cursor_row:
                cursor = self.get_component_rich_style("keyed-table--cursor")
                # over the cells' own colours (apply_style would put it under them)
                painted = Segment.apply_style(iter(strip), post_style=cursor)
                strip = Strip(painted, strip.cell_length)
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)

    def _header_strip(self) -> Strip:
        if self._header is None:
            style = self.get_component_rich_style("keyed-table--header")
            labels = tuple(Text(label, style=style) for _, label, _ in self._table_columns)
            self._header = self._render_cells(labels)
        return self._header

    def _row_strip(self, key: str) -> Strip:
        strip = self._strips.get(key)
        if strip is None:
            strip = self._strips[key] = self._render_cells(self._cells[key])
        return strip

    def _render_cells(self, cells: tuple[Cell, ...]) -> Strip:
        base = self.rich_style
        console = self.app.console
        segments = [Segment(" " * MARGIN, base)]
        for cell, (_, _, width) in zip(cells, self._table_columns, strict=True):
            if isinstance(cell, str):
                plain = cell if len(cell) <= width else cell[: width - 1] + "…"
                segments.append(Segment(plain.ljust(width + GAP), base))
                continue
            text = cell
            if text.cell_len > width:
                text = text.copy()
                text.truncate(width, overflow="ellipsis")
            # Text.render leaves a Text's own style out when it has no spans: add it here.
            own = base + console.get_style(text.style) if text.style else base
            for segment in text.render(console, end=""):
                style = own + segment.style if segment.style else own
                segments.append(Segment(segment.text, style))
            segments.append(Segment(" " * (width - text.cell_len + GAP), base))
        return Strip(segments, self._width)

    def _refresh_row(self, index: int) -> None:
        y = index + 1 - self.scroll_offset.y
        if 1 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def notify_style_update(self) -> None:
        """Forget rendered strips: they carry the widget's colours."""
        super().notify_style_update()
        self._strips.clear()
        self._header = None

    # -- cursor -----------------------------------------------------------------------------

    def watch_cursor_row(self, old: int, new: int) -> None:
        self._refresh_row(old)
        self._refresh_row(new)
        self._scroll_to_cursor()

    def _scroll_to_cursor(self) -> None:
        visible = max(self.size.height - 1, 1)
        top = self.scroll_offset.y
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=False)

    def action_cursor(self, step: int) -> None:
        if self._order:
            self.cursor_row = max(0, min(self.cursor_row + step, len(self._order) - 1))

    def action_cursor_to(self, index: int) -> None:
        if self._order:
            self.cursor_row = index % len(self._order)

    def action_choose(self) -> None:
        if self._order and self.show_cursor:
            self.post_message(self.RowChosen(self, self._order[self.cursor_row]))

    def on_click(self, event: events.Click) -> None:
        """A click moves the cursor; a click on the row under it (or a double click) opens it."""
        index = event.y - 1 + self.scroll_offset.y
        if event.y >= 1 and 0 <= index < len(self._order):
            again = index == self.cursor_row
            self.cursor_row = index
            if again or event.chain >= 2:
                self.action_choose()
