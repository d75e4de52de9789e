"""The durable panel: each durable inbox's backlog, how fast it drains and when it fills, and
the packets parked there (refused by the node, kept for an operator)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from schnitzel_tui.formatting import bar, format_bytes, format_rate, format_seconds
from schnitzel_tui.model import NodeView
from schnitzel_tui.widgets.keyed_table import Cell, Column, KeyedTable

__all__ = ["DurablePanel"]

COLUMNS: tuple[Column, ...] = (
    ("node", "durable", 12),
    ("backlog", "backlog", 8),
    ("state", "state", 11),
    ("eta", "empty in", 8),
    ("full", "full in", 8),
    ("bytes", "store", 19),
    ("oldest", "oldest", 8),
    ("fill", "fill", 7),
    ("drain", "drain", 7),
    ("detail", "detail", 60),
)
"""What an operator acts on first (backlog, a damaged store, when it empties or fills) comes
first: at 80 columns the rates and the detail scroll."""


class DurablePanel(KeyedTable):
    """One row per durable inbox; hidden when the graph has none."""

    DEFAULT_CSS = """
    DurablePanel { height: auto; max-height: 7; scrollbar-size-horizontal: 0; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(COLUMNS, key_column="node", show_cursor=False, **kwargs)

    def show(self, nodes: Sequence[NodeView]) -> int:
        """Show these durable nodes; return how many cells changed."""
        self.display = bool(nodes)
        return self.sync({n.id: durable_cells(n) for n in nodes if n.durable is not None})


def durable_cells(node: NodeView) -> tuple[Cell, ...]:
    """One row of the panel."""
    d = node.durable
    assert d is not None
    fill_style = "red" if d.fill >= 0.9 else "yellow" if d.fill >= 0.5 else ""
    size = Text.assemble((bar(d.fill, 4), fill_style), f" {format_bytes(d.bytes)}")
    size.append(f" {d.fill:.0%}", style=fill_style or "dim")
    if d.quarantined:
        state = Text("quarantined", style="bold red")
        detail = Text(f"unreadable, moved to {d.quarantined}", style="bold red")
    elif d.lost:
        state = Text(f"lost {d.lost}", style="bold red")
        detail = Text(f"{d.lost} packets lost at start: {d.lost_cause}", style="bold red")
    elif d.rows_quarantined:
        state = Text("damaged rows", style="yellow")
        detail = Text(
            f"{d.rows_quarantined} packets of damaged rows kept in quarantine", style="yellow"
        )
    elif d.last_error and d.disk_errors:
        state = Text("disk errors", style="yellow")
        detail = Text(f"{d.disk_errors} disk errors, last: {d.last_error}", style="yellow")
    elif d.parked:  # refused packets wait for an operator: say how to look at them
        state = Text(f"{d.parked} parked", style="yellow")
        detail = Text(
            f"{d.parked} refused packets parked: schnitzel ctl parked {node.id}", style="yellow"
        )
    else:
        state, detail = Text("ok", style="green"), Text(d.path, style="dim")
    full = format_seconds(d.time_to_full_s)
    return (
        node.id,
        str(d.backlog),
        state,
        format_seconds(d.eta_s) if d.backlog else "empty",
        Text(full, style="yellow") if d.time_to_full_s is not None else full,
        size,
        format_seconds(d.oldest_age_s) if d.backlog else "—",
        format_rate(d.fill_rate),
        format_rate(d.drain_rate),
        detail,
    )
