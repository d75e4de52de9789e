"""The graph view widget: it shows each node's figures, repaints only the boxes that changed,
scrolls a tall graph and lays the graph out again when the terminal narrows."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Self

from rich.segment import Segment
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.pilot import Pilot

from schnitzel_tui.graph_layout import ACROSS, DOWN
from schnitzel_tui.model import NodeView, Topology
from schnitzel_tui.widgets.graph_view import GraphView
from tests.tui.reports import node_report
from tests.tui.test_graph_layout import FAN_OUT, PIPELINE, topology

CHAIN = topology(
    [("cam", "source"), ("resize", "transform"), ("out", "sink")],
    [("cam", "resize"), ("resize", "out")],
)


def figures(**rates: float) -> dict[str, NodeView]:
    """Node views for CHAIN: `cam` a source, the others with a 100-packet inbox."""
    views = {}
    for node_id, rate in rates.items():
        source = node_id == "cam"
        report = node_report(
            kind="source" if source else "transform",
            queue_depth=0 if source else 37,
            queue_capacity=0 if source else 100,
            health="failing" if node_id == "out" else "ok",
            **{"rate_out_per_s" if source else "rate_in_per_s": rate},
        )
        views[node_id] = NodeView.from_report(node_id, report)
    return views


class RecordingGraphView(GraphView):
    """A graph view that remembers the regions it asked to repaint."""

    def __init__(self) -> None:
        super().__init__()
        self.refreshed: list[Region] = []

    def refresh(
        self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False
    ) -> Self:
        self.refreshed.extend(regions)
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)


class GraphApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.view = RecordingGraphView()

    def compose(self) -> ComposeResult:
        yield self.view


def run(
    scenario: Callable[[Pilot[None], RecordingGraphView], Awaitable[None]],
    size: tuple[int, int] = (80, 24),
) -> None:
    async def main() -> None:
        app = GraphApp()
        async with app.run_test(size=size) as pilot:
            await scenario(pilot, app.view)

    asyncio.run(main())


def screen_text(view: GraphView) -> list[str]:
    return [view.render_line(y).text for y in range(view.size.height)]


def segment_at(view: GraphView, x: int, y: int) -> Segment:
    """The rendered segment that starts at cell (x, y) of the widget."""
    start = 0
    for segment in view.render_line(y):
        if start == x:
            return segment
        start += segment.cell_length
    raise AssertionError(f"no segment starts at {x},{y}")


async def show(
    pilot: Pilot[None], view: GraphView, graph: Topology, nodes: Mapping[str, NodeView]
) -> None:
    view.set_topology(graph)
    view.update_nodes(nodes)
    await pilot.pause()


def test_boxes_show_each_node_id_with_its_rate_and_fill() -> None:
    async def scenario(pilot: Pilot[None], view: RecordingGraphView) -> None:
        await show(pilot, view, CHAIN, figures(cam=25.0, resize=1234.0, out=3.4e6))
        text = "\n".join(screen_text(view))
        for expected in ("┌ cam ", "┌ resize ", "┌ out ", "25/s", "1.2k/s", "3.4M/s", "37%"):
            assert expected in text
        assert "▶" in text

    run(scenario)


def test_a_new_rate_repaints_only_that_nodes_box() -> None:
    async def scenario(pilot: Pilot[None], view: RecordingGraphView) -> None:
        await show(pilot, view, CHAIN, figures(cam=25.0, resize=1234.0, out=10.0))
        view.refreshed.clear()
        view.update_nodes(figures(cam=25.0, resize=5678.0, out=10.0))
        box = view.graph_layout.box("resize")  # type: ignore[union-attr]
        assert box is not None
        assert view.refreshed == [Region(box.x, box.y, box.width, box.height)]
        await pilot.pause()
        text = "\n".join(screen_text(view))
        assert "5.7k/s" in text and "1.2k/s" not in text

    run(scenario)


def test_figures_that_did_not_change_repaint_nothing() -> None:
    async def scenario(pilot: Pilot[None], view: RecordingGraphView) -> None:
        await show(pilot, view, CHAIN, figures(cam=25.0, resize=1234.0, out=10.0))
        view.refreshed.clear()
        view.update_nodes(figures(cam=25.0, resize=1234.0, out=10.0))
        assert view.refreshed == []

    run(scenario)


def test_a_box_border_and_mark_take_the_colour_of_its_health() -> None:
    async def scenario(pilot: Pilot[None], view: RecordingGraphView) -> None:
        await show(pilot, view, CHAIN, figures(cam=25.0, resize=1.0, out=1.0))
        layout = view.graph_layout
        assert layout is not None
        for node_id, colour, mark in (("out", "red", "✖"), ("resize", "green", "●")):
            box = layout.box(node_id)
            assert box is not None
            cells = (
                (box.x, box.y, "┌"),
                (box.x, box.content_y, "│"),
                (box.content_x, box.content_y, mark),
            )
            for x, y, char in cells:
                segment = segment_at(view, x, y)
                assert segment.text.startswith(char)
                assert segment.style is not None and segment.style.color is not None
                assert segment.style.color.name == colour

    run(scenario)


def test_a_graph_taller_than_the_widget_scrolls() -> None:
    async def scenario(pilot: Pilot[None], view: RecordingGraphView) -> None:
        await show(pilot, view, FAN_OUT, {})
        assert view.virtual_size.height > view.size.height
        assert not any("out7" in line for line in screen_text(view))
        view.scroll_end(animate=False, immediate=True)
        await pilot.pause()
        assert any("out7" in line for line in screen_text(view))

    run(scenario, size=(80, 10))


def test_a_narrower_terminal_lays_the_graph_out_again() -> None:
    async def scenario(pilot: Pilot[None], view: RecordingGraphView) -> None:
        await show(pilot, view, PIPELINE, {})
        assert view.graph_layout is not None and view.graph_layout.mode == ACROSS
        await pilot.resize_terminal(40, 24)
        for _ in range(1200):  # laid out again once the size settles (RESIZE_SETTLE_S);
            await pilot.pause(0.05)  # 60 s at most, against a hang only
            if view.graph_layout.mode == DOWN:
                break
        assert view.graph_layout.mode == DOWN
        assert all(len(line) <= 40 for line in view.graph_layout.background)

    run(scenario)


def test_an_equal_topology_is_not_laid_out_again() -> None:
    async def scenario(pilot: Pilot[None], view: RecordingGraphView) -> None:
        await show(pilot, view, CHAIN, {})
        layout = view.graph_layout
        view.set_topology(Topology(CHAIN.graph, CHAIN.nodes, CHAIN.edges))
        await pilot.pause()
        assert view.graph_layout is layout

    run(scenario)


def test_node_at_names_the_node_under_a_click() -> None:
    async def scenario(pilot: Pilot[None], view: RecordingGraphView) -> None:
        await show(pilot, view, CHAIN, {})
        box = view.graph_layout.box("resize")  # type: ignore[union-attr]
        assert box is not None
        assert view.node_at(box.x + 1, box.y + 1) == "resize"
        assert view.node_at(0, view.size.height - 1) is None

    run(scenario)
