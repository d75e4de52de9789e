"""One line under the node table: why the node under the cursor is not ok, or else why the
first unhealthy node is not, so the reason shows on a terminal too narrow for the `why`
column."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widgets import Static

from schnitzel_tui.model import NodeView
from schnitzel_tui.theme import HEALTH_MARK, PAUSED_MARK, health_style

__all__ = ["WhyLine", "why_text"]


class WhyLine(Static):
    """The health reason of one node, in full width (wrapped up to three lines)."""

    DEFAULT_CSS = """
    WhyLine { height: auto; max-height: 3; padding: 0 1; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self._shown: Text | None = None

    def show(self, selected: NodeView | None, shown: Sequence[NodeView]) -> None:
        """`selected`: the node under the cursor; `shown`: the table's rows, in order."""
        text = why_text(selected, shown)
        if text != self._shown:
            self._shown = text
            self.update(text)  # a long reason takes up to three lines


def why_text(selected: NodeView | None, shown: Sequence[NodeView]) -> Text:
    """`✖ uplink: <health reason>` for the selected node when it has a reason, else for the
    first row that is not ok; `every node ok` when none is."""
    node = selected if selected is not None and selected.health_reason else None
    if node is None:
        node = next((n for n in shown if n.health != "ok" and n.health_reason), None)
    if node is None:
        return Text("every node ok" if shown else "", style="dim")
    mark = PAUSED_MARK if node.paused else HEALTH_MARK.get(node.health, "?")
    return Text.assemble(
        (f"{mark} {node.id}", health_style(node.health)), f": {node.health_reason}"
    )
