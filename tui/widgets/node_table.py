"""The node table: one row per node, updated in place, sortable and filterable."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.message import Message
from textual.reactive import reactive

from schnitzel_tui.formatting import bar, format_rate
from schnitzel_tui.model import NodeView
from schnitzel_tui.theme import HEALTH_MARK, PAUSED_MARK, health_style
from schnitzel_tui.widgets.keyed_table import Cell, Column, KeyedTable

__all__ = ["SORTS", "NodeTable"]

ID_WIDTH = (8, 24)
"""Bounds of the node column's width: the longest id, within these."""


def node_columns(id_width: int) -> tuple[Column, ...]:
    """Node, rates and losses first: at 80 columns an operator sees where packets pile up,
    drop and fail without scrolling; the health mark leads each row."""
    return (
        ("mark", "", 1),
        ("node", "node", id_width),
        ("in", "in", 7),
        ("out", "out", 7),
        ("inbox", "inbox", 15),
        ("errors", "errors", 6),
        ("lost", "lost", 6),
        ("overflow", "overflow", 8),
        ("filtered", "filtered", 8),
        ("p99", "p99 ms", 7),
        ("health", "health", 10),
        ("kind", "kind", 9),
        ("plugin", "plugin", 11),
        ("reason", "why", 48),
    )


SORTS: dict[str, Callable[[NodeView], Any]] = {
    "graph": lambda n: 0,
    "node": lambda n: n.id,
    "in/s": lambda n: -n.rate_in,
    "out/s": lambda n: -n.rate_out,
    "inbox": lambda n: -n.fill,
    "drops": lambda n: -n.dropped,
    "errors": lambda n: -n.errors,
    "p99": lambda n: -n.p99_ms,
    "health": lambda n: {"failing": 0, "degraded": 1}.get(n.health, 2),
}
"""Sort orders by name, each putting what needs attention first; `graph` is file order.
Whatever the order, unhealthy nodes are pinned on top (PINNED)."""

PINNED = {"failing": 0, "degraded": 1}
"""Rows of these healths come first, in this order, in every sort: on a short terminal the
nodes that need attention are the ones on screen."""


class NodeTable(KeyedTable):
    """Every node's rates, inbox, drops, errors, latency and health."""

    DEFAULT_CSS = """
    NodeTable { height: 1fr; min-height: 4; }
    """

    filter_text: reactive[str] = reactive("", init=False)
    """Rows shown are those whose id, kind or plugin contains this (case-insensitive)."""
    sort_by: reactive[str] = reactive("graph", init=False)
    """A key of SORTS."""

    class NodeChosen(Message):
        """Enter (or a click) on a row: open that node."""

        def __init__(self, node_id: str) -> None:
            super().__init__()
            self.node_id = node_id

    def __init__(self, node_ids: Sequence[str] = (), **kwargs: Any) -> None:
        """`node_ids`: the graph's ids, to size the node column to the longest."""
        low, high = ID_WIDTH
        width = max(low, min(high, max((len(i) for i in node_ids), default=low)))
        super().__init__(node_columns(width), key_column="node", **kwargs)
        self._views: Mapping[str, NodeView] = {}

    def show(self, nodes: Mapping[str, NodeView]) -> int:
        """Show these nodes (filtered and sorted); return how many cells changed."""
        self._views = nodes
        wanted = self.filter_text.lower()
        rows = {
            node_id: node_cells(node)
            for node_id, node in nodes.items()
            if not wanted or any(wanted in s.lower() for s in (node.id, node.kind, node.plugin))
        }
        order = SORTS[self.sort_by]
        position = {node_id: i for i, node_id in enumerate(nodes)}

        def sort_key(node_id: str) -> tuple[int, Any, int]:
            view = self._views[node_id]
            return (PINNED.get(view.health, len(PINNED)), order(view), position[node_id])

        return self.sync(rows, sort_key)

    @property
    def shown(self) -> list[NodeView]:
        """The nodes of the rows shown, in display order."""
        return [self._views[key] for key in self.row_keys]

    def watch_filter_text(self) -> None:
        self.show(self._views)

    def watch_sort_by(self) -> None:
        self.show(self._views)

    def on_keyed_table_row_chosen(self, event: KeyedTable.RowChosen) -> None:
        event.stop()
        self.post_message(self.NodeChosen(event.row_key))

    @property
    def selected_node(self) -> str | None:
        """The node under the cursor, or None when the table is empty."""
        if not self.row_count:
            return None
        return self.row_keys[self.cursor_row]


def node_cells(node: NodeView) -> tuple[Cell, ...]:
    """One row of the table; the first cell is the node id (the sort key looks it up)."""
    mark = PAUSED_MARK if node.paused else HEALTH_MARK.get(node.health, "?")
    style = health_style(node.health)
    return (
        Text(mark, style=style),
        node.id,
        format_rate(node.rate_in) if node.kind != "source" else "",
        format_rate(node.rate_out),
        _inbox(node),
        _count(node.errors, "bold red"),
        _count(node.other_drops, "bold red"),
        _count(node.overflow_drops, "yellow"),
        _count(node.filtered, ""),
        f"{node.p99_ms:.2f}" if node.kind != "source" else "",
        Text(f"{mark} {'paused' if node.paused else node.health}", style=style),
        node.kind,
        node.plugin,
        Text(node.health_reason, style="dim"),
    )


def _inbox(node: NodeView) -> Cell:
    if not node.capacity:
        return ""
    style = "red" if node.fill >= 0.9 else "yellow" if node.fill >= 0.5 else ""
    if node.durable is not None:  # most of it is on disk: the store's fill, the backlog
        return Text.assemble((bar(node.fill, 4), style), f" {node.durable.backlog} disk")
    return Text.assemble((bar(node.fill, 4), style), f" {node.depth}/{node.capacity}")


def _count(value: int, style: str) -> Cell:
    return Text(str(value), style=style) if value else "0"
