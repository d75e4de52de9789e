"""A DataTable updated in place: rows keyed by id, only changed cells written.

Rewriting a whole table on every poll makes it flicker and loses the cursor; this keeps
both, and costs nothing for the cells that did not change (Dolphie does the same).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

__all__ = ["Column", "KeyedTable"]

Cell = str | Text

Column = tuple[str, str, int]
"""(key, label, width): widths are fixed so a changing value never re-lays the table out."""


class KeyedTable(DataTable[Cell]):
    """A table whose rows are synchronised with a mapping of row key -> cells."""

    def __init__(self, columns: Sequence[Column], key_column: str, **kwargs: Any) -> None:
        """`key_column`: the column whose cells are the row keys, as plain text (sorting
        looks rows up by it)."""
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._table_columns = tuple(columns)
        self._key_column = key_column
        self._shown: dict[str, tuple[Cell, ...]] = {}
        """What each row shows now, to compare new cells with."""

    def on_mount(self) -> None:
        for key, label, width in self._table_columns:
            self.add_column(label, key=key, width=width)

    @property
    def row_keys(self) -> list[str]:
        """The keys of the rows shown, in display order."""
        return [str(row.key.value) for row in self.ordered_rows]

    def sync(
        self,
        rows: Mapping[str, tuple[Cell, ...]],
        sort_key: Callable[[str], Any] | None = None,
        reverse: bool = False,
    ) -> int:
        """Make the table show exactly `rows` (in their order unless `sort_key` is given);
        return how many cells were written."""
        written = 0
        for key in [k for k in self._shown if k not in rows]:
            self.remove_row(key)
            del self._shown[key]
        order_changed = False
        for key, cells in rows.items():
            shown = self._shown.get(key)
            if shown is None:
                self.add_row(*cells, key=key)
                written += len(cells)
                order_changed = True
            else:
                for (column, _, _), old, new in zip(self._table_columns, shown, cells, strict=True):
                    if old != new:
                        self.update_cell(key, column, new)
                        written += 1
            self._shown[key] = cells
        if sort_key is not None:
            self.sort(self._key_column, key=lambda cell: sort_key(str(cell)), reverse=reverse)
        elif order_changed:
            position = {key: i for i, key in enumerate(rows)}
            self.sort(self._key_column, key=lambda cell: position[str(cell)])
        return written
