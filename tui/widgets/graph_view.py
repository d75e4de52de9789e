"""The graph view: the graph's boxes and edges, each box showing its node's live figures.

The graph is laid out once (again only when the topology or the width changes); its edges
and borders are a static background. A figures update rebuilds only the boxes whose text or
health changed and refreshes only their regions, through the Line API with cached strips.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import var
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer

from schnitzel_tui.graph_layout import GraphLayout, NodeBox, box_content, layout_graph
from schnitzel_tui.model import NodeView, Topology
from schnitzel_tui.theme import health_style

__all__ = ["GraphView"]

_BORDER = frozenset("┌┐└┘─│├┬")
_FILL = frozenset("█▏▎▍▌▋▊▉")

RESIZE_SETTLE_S = 0.15
"""Quiet time after a resize before the graph is laid out again."""

_Span = tuple[int, int, NodeBox | None]
"""Cells [start, end) of one canvas row: background, or part of a node's box."""


class GraphView(ScrollView):
    """The graph as boxes and arrows; each box shows its node's rate, inbox fill and health.

    Call `set_topology` once the graph is known and `update_nodes` with each snapshot. A graph
    taller than the widget scrolls; the layout always fits the width (it turns to top-down
    layers, then to a text list, on narrow terminals).
    """

    DEFAULT_CSS = """
    GraphView {
        height: 1fr;
        overflow-x: hidden;
        scrollbar-size-vertical: 1;
    }
    """

    topology: var[Topology | None] = var(None)
    """The graph drawn; setting a different one lays it out again."""

    class NodeClicked(Message):
        """A click on a node's box: open that node."""

        def __init__(self, node_id: str) -> None:
            super().__init__()
            self.node_id = node_id

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._layout: GraphLayout | None = None
        self._layout_width = -1
        self._views: dict[str, NodeView] = {}
        self._spans: list[list[_Span]] = []
        self._boxes: dict[str, tuple[tuple[str, str], tuple[Strip, ...]]] = {}
        self._rows: dict[int, Strip] = {}
        self._base_style: Style | None = None
        self._resize_timer: Timer | None = None
        """`rich_style`, kept: working it out from the CSS costs more than a box."""

    @property
    def graph_layout(self) -> GraphLayout | None:
        """The current layout (None until a topology and a size are known)."""
        return self._layout

    def set_topology(self, topology: Topology) -> None:
        """Draw this graph; a topology equal to the current one changes nothing."""
        self.topology = topology

    def update_nodes(self, nodes: Mapping[str, NodeView]) -> None:
        """Show these figures, repainting only the boxes whose text or health changed."""
        self._views = dict(nodes)
        if self._layout is None:
            return
        sx, sy = self.scroll_offset
        for box in self._layout.boxes:
            if self._paint_box(box):
                self.refresh(Region(box.x - sx, box.y - sy, box.width, box.height))

    def node_at(self, x: int, y: int) -> str | None:
        """The node whose box is at (x, y) in widget coordinates (a click's offset), or None."""
        if self._layout is None:
            return None
        sx, sy = self.scroll_offset
        return self._layout.node_at(x + sx, y + sy)

    def on_click(self, event: events.Click) -> None:
        node_id = self.node_at(event.x, event.y)
        if node_id is not None:
            event.stop()
            self.post_message(self.NodeClicked(node_id))

    def watch_topology(self) -> None:
        self._relayout(force=True)

    def on_resize(self, event: events.Resize) -> None:
        """Lay out for the new width: at once the first time, then once the terminal stops
        changing size (a dense graph takes a while to lay out, on the loop the graph runs on)."""
        if self._layout is None:
            self._relayout()
            return
        if self._resize_timer is not None:
            self._resize_timer.stop()
        self._resize_timer = self.set_timer(RESIZE_SETTLE_S, self._relayout)

    def notify_style_update(self) -> None:
        """Forget cached strips: they carry the widget's colours."""
        super().notify_style_update()
        self._boxes.clear()
        self._rows.clear()
        self._base_style = None

    def render_line(self, y: int) -> Strip:
        """One visible line: the canvas row under it, cropped to the scroll position."""
        sx, sy = self.scroll_offset
        row, width, base = y + sy, self.size.width, self.rich_style
        if self._layout is None or row >= self._layout.height:
            return Strip.blank(width, base)
        strip = self._rows.get(row)
        if strip is None:
            strip = self._rows[row] = self._compose_row(row)
        return strip.crop_extend(sx, sx + width, base)

    def _relayout(self, *, force: bool = False) -> None:
        # One column stays free for the scrollbar, so it never appears over the drawing and
        # never changes the width the layout was made for.
        width = self.size.width - self.styles.scrollbar_size_vertical
        if self.topology is None or width <= 0 or (width == self._layout_width and not force):
            return
        self._layout_width = width
        layout = self._layout = layout_graph(self.topology, width)
        self._spans = [[] for _ in range(layout.height)]
        for box in sorted(layout.boxes, key=lambda b: b.x):
            for row in range(box.y, box.y + box.height):
                self._spans[row].append((box.x, box.x + box.width, box))
        for row, spans in enumerate(self._spans):
            self._spans[row] = _fill_gaps(spans, layout.width)
        self._boxes.clear()
        self._rows.clear()
        self.virtual_size = Size(layout.width, layout.height)
        self.refresh()

    def _paint_box(self, box: NodeBox) -> bool:
        """Rebuild a box's strips if what it shows changed; True when it did."""
        view = self._views.get(box.node_id)
        accent = "dim" if view is None else health_style(view.health)
        key = (box_content(view, box.content_width), accent)
        cached = self._boxes.get(box.node_id)
        if cached is not None and cached[0] == key:
            return False
        content_row = box.content_y - box.y
        if cached is not None and cached[0][1] == key[1]:  # same health: borders unchanged
            strips = tuple(
                self._box_row(box, row, key) if row == content_row else strip
                for row, strip in enumerate(cached[1])
            )
            self._rows.pop(box.content_y, None)
        else:
            strips = tuple(self._box_row(box, row, key) for row in range(box.height))
            for row in range(box.y, box.y + box.height):
                self._rows.pop(row, None)
        self._boxes[box.node_id] = (key, strips)
        return True

    def _box_row(self, box: NodeBox, row: int, key: tuple[str, str]) -> Strip:
        """One row of a box: borders and marks in the health colour, the id in bold."""
        assert self._layout is not None
        text, accent_style = key
        base = self._base()
        accent = base + Style.parse(accent_style) if accent_style else base
        line = self._layout.background[box.y + row][box.x : box.x + box.width]
        styles: list[Style] = []
        if box.y + row == box.content_y:
            start = box.content_x - box.x
            line = line[:start] + text + line[start + len(text) :]
            for i, char in enumerate(line):
                if start <= i < start + len(text):
                    styles.append(accent if i == start or char in _FILL else base)
                else:
                    styles.append(accent if char in _BORDER else base)
        else:
            bold = base + Style(bold=True)
            styles = [accent if char in _BORDER else bold for char in line]
        return Strip(_segments(line, styles), box.width)

    def _compose_row(self, row: int) -> Strip:
        assert self._layout is not None
        background, base = self._layout.background[row], self._base()
        segments: list[Segment] = []
        for start, end, box in self._spans[row]:
            if box is None:
                segments.append(Segment(background[start:end], base))
                continue
            if box.node_id not in self._boxes:
                self._paint_box(box)
            segments.extend(self._boxes[box.node_id][1][row - box.y])
        return Strip(segments, self._layout.width)

    def _base(self) -> Style:
        if self._base_style is None:
            self._base_style = self.rich_style
        return self._base_style


def _fill_gaps(spans: list[_Span], width: int) -> list[_Span]:
    """Boxes of a row (sorted by x) with the background cells between them."""
    filled: list[_Span] = []
    x = 0
    for start, end, box in spans:
        if start > x:
            filled.append((x, start, None))
        filled.append((start, end, box))
        x = end
    if x < width:
        filled.append((x, width, None))
    return filled


def _segments(text: str, styles: list[Style]) -> list[Segment]:
    """`text` as segments, one per run of characters sharing a style."""
    segments: list[Segment] = []
    start = 0
    for i in range(1, len(text) + 1):
        if i == len(text) or styles[i] is not styles[start]:
            segments.append(Segment(text[start:i], styles[start]))
            start = i
    return segments
