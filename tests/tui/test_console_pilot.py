"""The console driven by its keys over a real runtime: both run on the test's event loop, as
`schnitzel-tui` runs them, and every test waits on what the console shows, never on a clock."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from rich.segment import Segment
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, Input, Sparkline, Static

from schnitzel.control.runtime_control import RuntimeControl
from schnitzel.errors import RuntimeStartError
from schnitzel.runtime import Runtime
from schnitzel.validate.validator import load_graph, validate_file
from schnitzel_tui.app import EVENTS_PER_POLL, REFRESH_STEPS, ConsoleApp
from schnitzel_tui.formatting import format_rate
from schnitzel_tui.model import ConsoleSnapshot
from schnitzel_tui.screens.confirm import ConfirmScreen
from schnitzel_tui.screens.help import HelpScreen
from schnitzel_tui.screens.invalid import InvalidGraphApp
from schnitzel_tui.screens.main import MainScreen
from schnitzel_tui.screens.node_detail import NodeDetailScreen
from schnitzel_tui.source import EmbeddedSource
from schnitzel_tui.widgets.durable_panel import DurablePanel
from schnitzel_tui.widgets.event_log import EventLog
from schnitzel_tui.widgets.graph_view import GraphView
from schnitzel_tui.widgets.keyed_table import GAP, MARGIN, KeyedTable
from schnitzel_tui.widgets.node_table import PINNED, NodeTable
from schnitzel_tui.widgets.status_bar import StatusBar
from tests.conftest import REPO

HEADER = "version: 2\nruntime: {allow_modules: [tests.runtime.plugins]}\n"

PIPELINE = (
    HEADER
    + """
nodes:
  - {id: sensor, kind: source, plugin: synthetic, config: {rate_hz: 20}}
  - {id: merge, kind: transform, plugin: passthrough}
  - {id: thin, kind: transform, plugin: sample, config: {every: 2}}
  - {id: discard, kind: sink, plugin: "null"}
edges:
  - {from: sensor, to: merge}
  - {from: merge, to: thin}
  - {from: thin, to: discard}
"""
)
"""Packets flow for ever; no durable inbox, so a stop drains at once."""

UPLINK_DOWN = (
    HEADER
    + """
nodes:
  - {id: sensor, kind: source, plugin: synthetic, config: {rate_hz: 20}}
  - {id: merge, kind: transform, plugin: passthrough}
  - {id: thin, kind: transform, plugin: sample, config: {every: 2}}
  - {id: discard, kind: sink, plugin: "null"}
  - id: uplink
    kind: sink
    plugin: http
    config: {url: "http://127.0.0.1:9/x", timeout_s: 1}
    inbox: {durable: {path: state/uplink.db, max_bytes: 1048576, max_packets: 1000}}
edges:
  - {from: sensor, to: merge}
  - {from: merge, to: thin}
  - {from: thin, to: discard}
  - {from: merge, to: uplink}
"""
)
"""PIPELINE plus an http sink to a closed port behind a durable inbox: its backlog grows,
and its fill (backlog / max_packets) soon passes that of any in-memory inbox here."""

FINITE = PIPELINE.replace("{rate_hz: 20}", "{count: 20}")
"""PIPELINE whose source ends after 20 packets: the run ends on its own."""

ALL_NODES = ["sensor", "merge", "thin", "discard", "uplink"]

S = TypeVar("S", bound=Screen[Any])


@dataclass
class Console:
    """A console over a real runtime, both running on the test's event loop."""

    app: ConsoleApp
    pilot: Pilot[None]
    runtime: Runtime
    run: asyncio.Task[dict[str, Any]]

    @property
    def table(self) -> NodeTable:
        return self.app.screen.query_one(NodeTable)

    @property
    def snapshot(self) -> ConsoleSnapshot:
        """The figures of the latest poll."""
        assert self.app.snapshot is not None, "no poll yet"
        return self.app.snapshot

    def backlog(self) -> int:
        """The uplink's durable backlog as of the latest poll."""
        durable = self.snapshot.nodes["uplink"].durable
        assert durable is not None
        return durable.backlog

    def log_lines(self) -> list[str]:
        main = next(s for s in self.app.screen_stack if isinstance(s, MainScreen))
        return [line.text for line in main.query_one(EventLog).lines]

    async def until(
        self, condition: Callable[[], bool], what: str, timeout_s: float = 60.0
    ) -> None:
        """Let the console run until `condition` holds (at most `timeout_s`)."""
        for _ in range(int(timeout_s / 0.05)):
            if condition():
                return
            await self.pilot.pause(0.05)
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")

    async def on_screen(self, kind: type[S], what: str) -> S:
        """Wait until a `kind` screen is on top and mounted (its widgets composed): a key
        that pushes a screen is handled some time after `pilot.press` returns."""
        await self.until(
            lambda: isinstance(self.app.screen, kind) and self.app.screen.is_mounted, what
        )
        screen = self.app.screen
        assert isinstance(screen, kind)
        return screen

    async def started(self) -> None:
        """Wait for the first poll (the main screen shows the first figures)."""
        await self.until(lambda: self.app.polls >= 1, "the first poll")

    async def polls(self, count: int) -> None:
        """Let the console poll the runtime `count` more times."""
        target = self.app.polls + count
        await self.until(lambda: self.app.polls >= target, f"{count} more polls")

    async def ended(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """The run's report once it ended and the console closed (no pilot: the app is gone)."""
        for _ in range(int(timeout_s / 0.05)):
            if self.run.done() and self.app.return_code is not None:
                return self.run.result()
            await asyncio.sleep(0.05)
        raise AssertionError("the run and the console did not both end")


Scenario = Callable[[Console], Awaitable[None]]


def run_console(
    tmp_path: Path,
    graph: str,
    scenario: Scenario,
    *,
    refresh_s: float = 0.1,
    size: tuple[int, int] = (120, 40),
    **options: Any,
) -> None:
    """Run `graph` and a console over it until `scenario` is done; the run is always ended."""
    path = tmp_path / "graph.yaml"
    path.write_text(graph)

    async def main() -> None:
        runtime = Runtime(load_graph(path), tmp_path / "state", drain_timeout_s=2.0)
        app = ConsoleApp(EmbeddedSource(RuntimeControl(runtime)), refresh_s=refresh_s, **options)
        run = asyncio.create_task(runtime.run())
        try:
            async with app.run_test(size=size) as pilot:
                await scenario(Console(app, pilot, runtime, run))
        finally:
            if not run.done():
                runtime.force_stop()
            await asyncio.wait_for(run, 60)

    asyncio.run(asyncio.wait_for(main(), 120))


def pinned_first(c: Console, order: list[str]) -> list[str]:
    """The rows in `order` as the table shows them: unhealthy nodes pinned on top in every
    sort (node_table.PINNED). An http sink to a closed port turns unhealthy after a while,
    sooner on a busy machine."""
    health = {node_id: c.snapshot.nodes[node_id].health for node_id in order}
    return sorted(order, key=lambda node_id: PINNED.get(health[node_id], len(PINNED)))


def screen_lines(view: GraphView) -> list[str]:
    return [view.render_line(y).text for y in range(view.size.height)]


def cell_segment(table: KeyedTable, row_key: str, column: str) -> Segment:
    """The segment a row's cell starts with, as the table draws it (cursor included)."""
    x = MARGIN
    for key, _, width in table._table_columns:
        if key == column:
            break
        x += width + GAP
    else:
        raise AssertionError(f"no column {column!r}")
    y = table.row_keys.index(row_key) + 1 - table.scroll_offset.y
    start = 0
    for segment in table.render_line(y):
        if start == x:
            return segment
        start += segment.cell_length
    raise AssertionError(f"no segment starts at column {column!r} of row {row_key!r}")


def colour(segment: Segment) -> str | None:
    """The name of a segment's foreground colour (`green`, `#e0e0e0`)."""
    style = segment.style
    return style.color.name if style is not None and style.color is not None else None


async def palette_options(console: Console, query: str) -> list[str]:
    """Open the command palette, type `query`; the titles it offers, best match first."""
    await console.pilot.press("colon")
    palette = await console.on_screen(CommandPalette, "the command palette")
    await console.pilot.press(*query)
    typed = palette.query_one(Input)
    await console.until(lambda: typed.value == query, f"{query!r} in the palette")
    await console.app.workers.wait_for_complete()
    await console.pilot.pause()
    commands = palette.query_one(CommandList)
    await console.until(lambda: commands.option_count > 0, "the palette's options")
    options = [commands.get_option_at_index(i) for i in range(commands.option_count)]
    return [str(getattr(o.prompt, "plain", o.prompt)).splitlines()[0] for o in options]


# -- the main screen ------------------------------------------------------------------------


def test_the_node_table_lists_every_node_and_its_figures_move_between_polls(
    tmp_path: Path,
) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        assert c.table.row_keys == pinned_first(c, ALL_NODES)
        first, shown = c.snapshot, str(c.table.get_cell("uplink", "inbox"))
        backlog = c.backlog()
        await c.until(lambda: c.backlog() > backlog + 5, "the uplink backlog to grow")
        assert c.snapshot.nodes["merge"].processed > first.nodes["merge"].processed
        assert c.snapshot.emitted > first.emitted
        cell = str(c.table.get_cell("uplink", "inbox"))
        assert cell != shown and cell.endswith(f" {c.backlog()} disk")
        await c.until(lambda: c.snapshot.nodes["merge"].rate_in > 0, "merge to show a rate")
        rate = c.snapshot.nodes["merge"].rate_in
        assert str(c.table.get_cell("merge", "in")) == format_rate(rate)

    run_console(tmp_path, UPLINK_DOWN, scenario)


def test_the_graph_view_draws_a_box_for_every_node(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        view = c.app.screen.query_one(GraphView)
        assert view.graph_layout is not None
        assert {box.node_id for box in view.graph_layout.boxes} == set(ALL_NODES)
        text = "\n".join(screen_lines(view))
        for node_id in ALL_NODES:
            assert f"┌ {node_id} " in text

    run_console(tmp_path, UPLINK_DOWN, scenario)


def test_the_durable_panel_shows_the_backlog_of_a_durable_inbox_growing(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        panel = c.app.screen.query_one(DurablePanel)
        assert panel.display and panel.row_keys == ["uplink"]
        backlogs = [int(str(panel.get_cell("uplink", "backlog")))]
        for _ in range(3):
            await c.until(
                lambda: int(str(panel.get_cell("uplink", "backlog"))) > backlogs[-1],
                "the shown backlog to grow",
            )
            backlogs.append(int(str(panel.get_cell("uplink", "backlog"))))
        assert backlogs == sorted(set(backlogs))
        assert backlogs[-1] <= c.backlog()

    run_console(tmp_path, UPLINK_DOWN, scenario)


def test_the_durable_panel_is_hidden_when_no_inbox_is_durable(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.polls(2)
        panel = c.app.screen.query_one(DurablePanel)
        assert not panel.display and panel.row_keys == []

    run_console(tmp_path, PIPELINE, scenario)


def test_the_node_table_draws_a_healthy_mark_in_green_and_an_error_count_in_bold_red(
    tmp_path: Path,
) -> None:
    async def scenario(c: Console) -> None:
        await c.until(lambda: str(c.table.get_cell("bad", "errors")) == "1", "bad's error")
        await c.pilot.pause()
        assert c.table.row_keys == pinned_first(c, ["steady", "bad", "out"])
        # the cursor on steady: out and bad are drawn in their own colours, not the cursor's
        # (bad, pinned on top while failing, would be under the cursor at row 0)
        c.table.cursor_row = c.table.row_keys.index("steady")
        await c.pilot.pause()
        assert c.table.selected_node == "steady"
        mark = cell_segment(c.table, "out", "mark")
        assert (mark.text, colour(mark)) == ("●", "green")
        errors = cell_segment(c.table, "bad", "errors")
        assert (errors.text, colour(errors)) == ("1", "red")
        assert errors.style is not None and errors.style.bold

    run_console(tmp_path, FAILING_SOURCE, scenario)


def test_the_cursor_row_is_drawn_on_the_cursor_background_and_no_other_row_is(
    tmp_path: Path,
) -> None:
    async def scenario(c: Console) -> None:
        await c.polls(2)
        await c.pilot.press("down")  # sensor, merge
        await c.until(lambda: c.table.selected_node == "merge", "the cursor on merge")
        cursor = c.table.get_component_rich_style("keyed-table--cursor").bgcolor
        assert cursor is not None and cursor != c.table.rich_style.bgcolor
        for y, node_id in enumerate(c.table.row_keys, start=1):
            backgrounds = {s.style.bgcolor for s in c.table.render_line(y) if s.style}
            if node_id == "merge":
                assert backgrounds == {cursor}, node_id
            else:
                assert cursor not in backgrounds, node_id

    run_console(tmp_path, PIPELINE, scenario)


def fan_out(sinks: int) -> str:
    """A source feeding `sinks` null sinks listed from the highest id down: the last row in
    graph order is the first but one sorted by id."""
    ids = [f"sink{i:02d}" for i in reversed(range(sinks))]
    return (
        HEADER
        + "nodes:\n  - {id: sensor, kind: source, plugin: synthetic, config: {rate_hz: 20}}\n"
        + "".join(f'  - {{id: {i}, kind: sink, plugin: "null"}}\n' for i in ids)
        + "edges:\n"
        + "".join(f"  - {{from: sensor, to: {i}}}\n" for i in ids)
    )


def test_after_a_sort_the_cursor_row_stays_on_screen(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.polls(2)
        await c.pilot.press("end")
        await c.until(
            lambda: c.table.selected_node == "sink00" and c.table.scroll_offset.y > 0,
            "the cursor on the last row, scrolled to",
        )
        visible = c.table.size.height - 1  # under the header
        await c.pilot.press("s")
        await c.until(lambda: c.table.sort_by == "node", "the sort by node")
        assert c.table.selected_node == "sink00"
        assert c.table.cursor_row == 1  # after sensor

        def on_screen() -> bool:
            top = c.table.scroll_offset.y
            return top <= c.table.cursor_row < top + visible

        await c.until(on_screen, "the cursor row scrolled back on screen")

    run_console(tmp_path, fan_out(30), scenario, size=(80, 24))


def test_a_quarantined_store_shows_quarantined_in_bold_red_in_the_durable_panel_at_80_columns(
    tmp_path: Path,
) -> None:
    store = tmp_path / "state" / "uplink.db"
    store.parent.mkdir()
    store.write_bytes(b"this is not a database, it is a shopping list\n" * 200)

    async def scenario(c: Console) -> None:
        await c.started()
        panel = c.app.screen.query_one(DurablePanel)

        def state() -> str:
            return str(panel.get_cell("uplink", "state")) if panel.row_keys else ""

        await c.until(lambda: state().startswith("quarantined"), "the store's state")
        await c.pilot.pause()
        assert panel.region.right <= 80
        row = panel.render_line(1)  # under the header, as shown: no scrolling
        assert "quarantined" in row.text
        assert state() == "quarantined"  # where the store was moved: in the detail column
        state_cell = next(s for s in row if s.text.startswith("quarantined"))
        assert colour(state_cell) == "red"
        assert state_cell.style is not None and state_cell.style.bold
        await c.until(lambda: c.snapshot.nodes["uplink"].health == "degraded", "degraded")

    run_console(tmp_path, UPLINK_DOWN, scenario, size=(80, 24))


POISONED = (
    HEADER
    + """
nodes:
  - {id: sensor, kind: source, plugin: synthetic, config: {rate_hz: 50}}
  - id: uplink
    kind: sink
    plugin: "tests.runtime.plugins:Recorder"
    config: {every: 5}
    inbox: {durable: {path: state/uplink.db}}
edges:
  - {from: sensor, to: uplink}
"""
)
"""A durable sink that refuses every 5th packet: those are parked (on_error's default)."""


def test_parked_packets_show_in_the_durable_panel_at_80_columns_and_in_the_node_detail(
    tmp_path: Path,
) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        panel = c.app.screen.query_one(DurablePanel)

        def parked() -> int:
            durable = c.snapshot.nodes["uplink"].durable
            return durable.parked if durable is not None else 0

        await c.until(lambda: parked() >= 2, "packets to be parked")
        await c.polls(1)
        count = parked()
        state = str(panel.get_cell("uplink", "state"))
        assert state.endswith(" parked") and int(state.split(maxsplit=1)[0]) >= 2
        row = panel.render_line(1)  # as shown at 80 columns, no scrolling
        assert panel.region.right <= 80 and " parked" in row.text
        assert colour(next(s for s in row if s.text.endswith(" parked"))) == "yellow"
        assert "ctl parked uplink" in str(panel.get_cell("uplink", "detail"))
        assert int(state.split(maxsplit=1)[0]) == count
        await c.until(lambda: c.snapshot.nodes["uplink"].health == "degraded", "degraded")
        assert "parked" in c.snapshot.nodes["uplink"].health_reason

        # degraded, uplink is pinned above sensor (node_table.PINNED): go to it by its row
        c.table.cursor_row = c.table.row_keys.index("uplink")
        await c.pilot.press("enter")
        detail = await c.on_screen(NodeDetailScreen, "the uplink's detail")
        assert detail.node_id == "uplink"
        await c.polls(1)
        drops = str(detail.query_one("#drops", Static).content)
        assert "parked" in drops and "ctl parked uplink" in drops

    run_console(tmp_path, POISONED, scenario, size=(80, 24))


# -- keys -----------------------------------------------------------------------------------


def test_slash_filters_the_rows_and_escape_shows_them_all_again(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        await c.pilot.press("slash")
        box = c.app.screen.query_one("#filter", Input)
        await c.until(lambda: box.has_class("shown") and box.has_focus, "the filter box")
        await c.pilot.press(*"trans")
        await c.until(lambda: box.value == "trans", "the filter typed")
        await c.until(lambda: c.table.row_keys == ["merge", "thin"], "the rows filtered by kind")
        await c.polls(2)
        assert c.table.row_keys == ["merge", "thin"]  # and it stays filtered
        await c.pilot.press("escape")
        await c.until(lambda: not box.has_class("shown"), "the filter box to close")
        assert c.table.row_keys == ["sensor", "merge", "thin", "discard"]
        assert box.value == "" and c.table.has_focus

    run_console(tmp_path, PIPELINE, scenario)


def test_s_steps_the_sort_and_the_rows_follow(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        await c.until(lambda: c.backlog() >= 10, "the uplink backlog to grow")
        assert c.table.sort_by == "graph" and c.table.row_keys == pinned_first(c, ALL_NODES)
        await c.pilot.press("s")
        # the rows follow at the table's next refresh, later on a busy machine
        await c.until(
            lambda: c.table.row_keys == pinned_first(c, sorted(ALL_NODES)),
            "the rows sorted by node",
        )
        assert c.table.sort_by == "node"
        await c.pilot.press("s", "s", "s")
        await c.until(lambda: c.table.sort_by == "inbox", "the sort by inbox")
        await c.polls(2)
        fills = {n.id: n.fill for n in c.snapshot.nodes.values()}
        assert c.table.row_keys[0] == "uplink" == max(fills, key=fills.__getitem__)
        await c.pilot.press("S")
        await c.until(lambda: c.table.sort_by == "out/s", "the sort back to out/s")

    run_console(tmp_path, UPLINK_DOWN, scenario)


def test_sorting_back_to_graph_order_shows_the_rows_in_file_order_again(tmp_path: Path) -> None:
    in_file_order = ["sensor", "merge", "thin", "discard"]

    async def scenario(c: Console) -> None:
        await c.started()
        await c.pilot.press("s")
        await c.until(lambda: c.table.sort_by == "node", "the sort by node")
        assert c.table.row_keys == sorted(in_file_order)
        await c.pilot.press("S")
        await c.until(lambda: c.table.sort_by == "graph", "the sort back to graph order")
        await c.polls(2)
        assert c.table.row_keys == in_file_order

    run_console(tmp_path, PIPELINE, scenario)


def test_enter_opens_the_node_under_the_cursor_and_escape_goes_back(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        await c.pilot.press("down", "down", "enter")  # sensor, merge, thin
        detail = await c.on_screen(NodeDetailScreen, "the node's detail")
        assert detail.node_id == "thin"
        config = str(detail.query_one("#config Static", Static).content)
        assert "every: 2" in config
        rate = detail.query_one("#rate-line", Sparkline)
        await c.until(lambda: len(rate.data or []) >= 3, "the rate sparkline to get points")
        assert any(v > 0 for v in rate.data or [])
        title = str(detail.query_one("#title", Static).content)
        assert "thin" in title and "transform" in title and "sample" in title
        await c.pilot.press("escape")
        await c.on_screen(MainScreen, "the main screen")

    run_console(tmp_path, PIPELINE, scenario)


def test_question_mark_opens_the_help_and_escape_closes_it(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        await c.pilot.press("question_mark")
        await c.on_screen(HelpScreen, "the help")
        await c.pilot.press("escape")
        await c.on_screen(MainScreen, "the main screen")

    run_console(tmp_path, PIPELINE, scenario)


def test_space_freezes_the_view_while_the_run_goes_on_and_space_again_unfreezes(
    tmp_path: Path,
) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        await c.pilot.press("space")
        await c.until(lambda: c.app.frozen, "the view to freeze")
        status = c.app.screen.query_one(StatusBar)
        assert "FROZEN" in str(status.content)
        rows = {key: c.table.get_row(key) for key in ALL_NODES}
        shown_status = str(status.content)
        emitted = c.snapshot.emitted
        await c.polls(4)
        assert c.snapshot.emitted > emitted  # still recorded
        assert {key: c.table.get_row(key) for key in ALL_NODES} == rows
        assert not str(c.table.get_cell("uplink", "inbox")).endswith(f" {c.backlog()} disk")
        assert str(status.content) == shown_status
        await c.pilot.press("space")
        await c.until(lambda: not c.app.frozen, "the view to unfreeze")
        assert "FROZEN" not in str(status.content)
        assert str(c.table.get_cell("uplink", "inbox")).endswith(f" {c.backlog()} disk")

    run_console(tmp_path, UPLINK_DOWN, scenario)


def test_plus_and_minus_step_the_refresh_through_its_steps(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        assert REFRESH_STEPS == (0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
        steps = [  # slower: minus; a key is handled after press() returns, so wait for its
            ("minus", 10.0),  # interval; where it stays, the next key's interval shows that
            ("minus", 10.0),  # it stayed: keys are handled in order
            ("plus", 5.0),
            ("plus", 2.0),
            ("plus", 1.0),
            ("plus", 0.5),
            ("plus", 0.25),
            ("plus", 0.25),
            ("minus", 0.5),
        ]

        def interval_is(interval: float) -> Callable[[], bool]:
            return lambda: c.app.refresh_s == interval

        for key, interval in steps:
            await c.pilot.press(key)
            await c.until(interval_is(interval), f"{key}: {interval} s")
        assert "0.5 s" in str(c.app.screen.query_one(StatusBar).content)

    run_console(tmp_path, PIPELINE, scenario, refresh_s=5.0)


@pytest.mark.parametrize(
    ("start", "key", "back", "then"), [(0.1, "plus", "minus", 0.25), (60.0, "minus", "plus", 10.0)]
)
def test_plus_at_the_shortest_interval_and_minus_at_the_longest_keep_it(
    tmp_path: Path, start: float, key: str, back: str, then: float
) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        await c.pilot.press(key)  # plus: shorter; minus: longer; neither is in REFRESH_STEPS
        # keys are handled in order, after press() returns: the step back from `start` shows
        # that `key` kept it (from any other interval it would not land on `then`)
        await c.pilot.press(back)
        await c.until(lambda: c.app.refresh_s == then, f"{back} to {then} s")

    run_console(tmp_path, PIPELINE, scenario, refresh_s=start)


def test_a_shorter_refresh_interval_counts_from_the_key_press_not_from_the_last_poll(
    tmp_path: Path,
) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        await c.pilot.press("plus", "plus", "plus", "plus", "plus", "plus")  # 1 h to 0.25 s
        await c.until(lambda: c.app.refresh_s == 0.25, "the interval at 0.25 s")
        polls = c.app.polls
        # the poll due an hour after the first must not hold the next one back: it comes
        # 0.25 s after the key press, well inside the wait's 60 s however busy the machine
        await c.until(lambda: c.app.polls > polls, "the next poll")

    run_console(tmp_path, PIPELINE, scenario, refresh_s=3600.0)


def test_opening_a_node_while_frozen_shows_its_figures_at_once(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.polls(3)
        await c.pilot.press("space")
        await c.until(lambda: c.app.frozen, "the view to freeze")
        await c.pilot.press("enter")  # sensor
        detail = await c.on_screen(NodeDetailScreen, "the node's detail")
        assert detail.node_id == "sensor"
        label = detail.query_one("#rate-label", Static)
        # frozen: no poll comes, so the label can only be filled from the held figures
        await c.until(lambda: str(label.content) != "", "the rate label")
        assert str(label.content).startswith("rate ")
        assert len(detail.query_one("#rate-line", Sparkline).data or []) >= 3
        assert "sensor" in str(detail.query_one("#title", Static).content)
        assert c.app.frozen

    run_console(tmp_path, PIPELINE, scenario)


def flowing(app: ConsoleApp) -> bool:
    return app.snapshot is not None and app.snapshot.nodes["sensor"].rate_out > 0


# -- quitting -------------------------------------------------------------------------------


def test_q_while_packets_flow_asks_and_n_or_escape_keeps_the_run_going(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.until(lambda: flowing(c.app), "the console to see packets flow")
        for answer in ("n", "escape"):
            await c.pilot.press("q")
            question = await c.on_screen(ConfirmScreen, "the question")
            assert question.question == "Stop the graph and quit?"
            await c.pilot.press(answer)
            await c.on_screen(MainScreen, "the main screen again")
            assert not c.runtime.stopping and not c.app.quitting
        emitted = c.snapshot.emitted
        await c.until(lambda: c.snapshot.emitted > emitted, "packets to go on flowing")

    run_console(tmp_path, PIPELINE, scenario)


def test_q_then_y_stops_the_run_and_the_console_ends_once_it_drained(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.until(lambda: flowing(c.app), "the console to see packets flow")
        await c.pilot.press("q")
        await c.on_screen(ConfirmScreen, "the question")
        await c.pilot.press("y")
        report = await c.ended()
        assert report["stop_reason"] == "signal"
        assert report["stop_detail"].startswith("stop requested by ")
        assert report["stop_detail"].endswith("via console (q in the console)")
        assert report["totals"]["in_flight"] == 0
        assert c.app.return_code == 0

    run_console(tmp_path, PIPELINE, scenario)


def test_q_after_the_run_ended_exits_without_asking(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.until(
            lambda: c.app.snapshot is not None and not c.app.snapshot.running, "the run to end"
        )
        assert c.snapshot.stop_reason == "sources_exhausted"
        await c.pilot.press("q")
        report = await c.ended()
        assert report["totals"]["emitted"] == 20

    run_console(tmp_path, FINITE, scenario)


REFUSES_TO_OPEN = (
    HEADER
    + """
nodes:
  - {id: sensor, kind: source, plugin: synthetic, config: {rate_hz: 20}}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:RefusesToOpen"}
edges:
  - {from: sensor, to: out}
"""
)


def test_q_closes_a_console_whose_run_failed_to_start_after_a_stop_was_asked_for(
    tmp_path: Path,
) -> None:
    path = tmp_path / "graph.yaml"
    path.write_text(REFUSES_TO_OPEN)

    async def main() -> None:
        runtime = Runtime(load_graph(path), tmp_path / "state", drain_timeout_s=2.0)
        app = ConsoleApp(EmbeddedSource(RuntimeControl(runtime)), refresh_s=0.1)
        async with app.run_test(size=(120, 40)) as pilot:
            app.stop_requested()  # a SIGTERM while the sinks open, as schnitzel-tui passes it
            with pytest.raises(RuntimeStartError) as failed:
                await asyncio.wait_for(runtime.run(), 60)
            app.runtime_failed(str(failed.value))  # as schnitzel-tui tells it
            await pilot.pause()
            assert "run failed" in str(app.screen.query_one(StatusBar).content)
            await pilot.press("q")  # nothing runs, nothing drains: no question, no wait
            for _ in range(1200):  # 60 s, against a hang only
                if app.return_code is not None:
                    break
                await asyncio.sleep(0.05)
            assert app.return_code is not None, "q did not close the console"
            assert not isinstance(app.screen, ConfirmScreen)

    asyncio.run(asyncio.wait_for(main(), 120))


# -- the command palette --------------------------------------------------------------------


def test_colon_opens_the_command_palette_and_escape_closes_it(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        await c.pilot.press("colon")
        await c.on_screen(CommandPalette, "the command palette")
        await c.pilot.press("escape")
        await c.on_screen(MainScreen, "the main screen again")

    run_console(tmp_path, PIPELINE, scenario)


def test_ctrl_p_opens_the_command_palette(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        await c.pilot.press("ctrl+p")
        await c.on_screen(CommandPalette, "the command palette")

    run_console(tmp_path, PIPELINE, scenario)


def test_pause_from_the_palette_asks_first_then_pauses_the_node_in_the_runtime(
    tmp_path: Path,
) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        offered = await palette_options(c, "pause merge")
        assert offered[0] == "Pause node merge"
        await c.pilot.press("enter")
        await c.until(lambda: isinstance(c.app.screen, ConfirmScreen), "the confirmation")
        question = c.app.screen
        assert isinstance(question, ConfirmScreen)
        assert question.question == "Pause node merge?"
        assert question.change.startswith("merge: paused")
        assert not c.runtime.nodes["merge"].paused  # nothing changed before the answer
        await c.pilot.press("y")
        await c.until(
            lambda: c.app.polls > 0 and c.snapshot.nodes["merge"].paused,
            "merge to show as paused",
        )
        assert c.runtime.nodes["merge"].paused
        await c.until(
            lambda: any(
                "merge: paused by " in line and "via console" in line for line in c.log_lines()
            ),
            "the pause in the event log",
        )

    run_console(tmp_path, PIPELINE, scenario)


def test_a_read_only_console_offers_no_pause_command(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        offered = await palette_options(c, "node")
        assert "Open node merge" in offered
        assert not [title for title in offered if title.startswith(("Pause", "Resume"))]
        assert "READ-ONLY" in str(c.app.screen_stack[-2].query_one(StatusBar).content)

    run_console(tmp_path, PIPELINE, scenario, read_only=True)


# -- trouble --------------------------------------------------------------------------------

FAILING_SOURCE = (
    HEADER
    + """
nodes:
  - {id: steady, kind: source, plugin: synthetic, config: {rate_hz: 100}}
  - {id: bad, kind: source, plugin: "tests.runtime.plugins:AsyncTicks",
     config: {count: 1000, fail_at: 5}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: steady, to: out}
  - {from: bad, to: out}
"""
)

CRASHING_NODE = (
    HEADER
    + """
nodes:
  - {id: sensor, kind: source, plugin: synthetic, config: {rate_hz: 100}}
  - {id: buggy, kind: transform, plugin: "tests.runtime.plugins:Escapes"}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: sensor, to: buggy}
  - {from: buggy, to: out}
"""
)

DROPPING = (
    HEADER
    + """
nodes:
  - {id: sensor, kind: source, plugin: synthetic, config: {rate_hz: 500}}
  - id: slow
    kind: sink
    plugin: "tests.runtime.plugins:Recorder"
    config: {delay_s: 0.05}
    inbox: {max: 4, overflow: drop_new}
edges:
  - {from: sensor, to: slow}
"""
)


def test_a_failing_source_shows_in_the_event_log_and_the_run_and_console_go_on(
    tmp_path: Path,
) -> None:
    async def scenario(c: Console) -> None:
        await c.until(
            lambda: any("source ended with an error" in line for line in c.log_lines()),
            "the error in the event log",
        )
        line = next(line for line in c.log_lines() if "source ended" in line)
        assert "error" in line and "bad: source ended with an error: device unplugged at 5" in line
        await c.polls(3)
        assert c.app.is_running and isinstance(c.app.screen, MainScreen)
        assert c.app.polls > 0 and c.snapshot.running
        assert str(c.table.get_cell("bad", "errors")) == "1"

    run_console(tmp_path, FAILING_SOURCE, scenario)


def test_a_crashed_node_ends_the_run_and_the_console_stays_up_to_show_why(
    tmp_path: Path,
) -> None:
    async def scenario(c: Console) -> None:
        await c.until(
            lambda: c.app.snapshot is not None and not c.app.snapshot.running, "the run to end"
        )
        assert c.snapshot.status == "error" and c.snapshot.stop_reason == "error"
        await c.polls(2)
        assert c.app.is_running and isinstance(c.app.screen, MainScreen)
        assert any(
            "buggy: node stopped with an error: escaped the plugin" in line
            for line in c.log_lines()
        )
        status = str(c.app.screen.query_one(StatusBar).content)
        assert "error (error)" in status
        assert "failing" in str(c.table.get_cell("buggy", "health"))
        await c.pilot.press("q")  # nothing runs: no question
        await c.ended()

    run_console(tmp_path, CRASHING_NODE, scenario)


def test_a_drop_burst_appears_in_the_event_log_with_its_count_and_reason(
    tmp_path: Path,
) -> None:
    async def scenario(c: Console) -> None:
        # a burst going on is said again after repeat_s (test_console_model): at 10 s, three
        # polls of a starved console could span it
        c.app.drop_bursts.repeat_s = 3600.0
        await c.until(
            lambda: any("slow: dropped" in line for line in c.log_lines()),
            "a drop burst in the event log",
        )
        line = next(line for line in c.log_lines() if "slow: dropped" in line)
        words = line.split("slow: dropped ", 1)[1]
        count, rest = words.split(" packets ", 1)
        assert int(count) > 0 and rest == f"(inbox_full {count})"
        assert "warning" in line
        await c.polls(3)  # a burst that goes on is not repeated every poll
        assert len([line for line in c.log_lines() if "slow: dropped" in line]) == 1

    run_console(tmp_path, DROPPING, scenario)


@pytest.mark.parametrize("seen_before", [True, False], ids=["after-an-event", "first-events"])
def test_events_the_console_missed_are_counted_in_the_log_and_a_flood_is_drawn_a_poll_at_a_time(
    tmp_path: Path, seen_before: bool
) -> None:
    flood = 1500  # the runtime keeps the last 500; the console draws EVENTS_PER_POLL a poll

    async def scenario(c: Console) -> None:
        await c.started()
        if seen_before:
            c.runtime.events.add("info", "before the flood", "sensor")
            await c.until(lambda: any("before the flood" in x for x in c.log_lines()[-1:]), "it")
        assert c.runtime.events.last_seq == int(seen_before)  # nothing else was said
        for i in range(flood):  # between two polls: nothing else runs on the loop
            c.runtime.events.add("warning", f"flapping {i}", "sensor")
        note = re.compile(r"(\d+) events not shown here: the log file has every one")
        await c.until(lambda: any(note.search(line) for line in c.log_lines()), "the note")
        [missed] = [int(m.group(1)) for m in map(note.search, c.log_lines()) if m]
        shown = [line for line in c.log_lines() if "sensor: flapping" in line]
        assert len(shown) == EVENTS_PER_POLL < 500
        assert shown[-1].endswith(f"flapping {flood - 1}")  # the latest are the ones drawn
        assert missed + len(shown) == flood

    run_console(tmp_path, PIPELINE, scenario)


# -- a graph that cannot run ----------------------------------------------------------------

INVALID = REPO / "tests" / "graphs" / "invalid" / "combo-many-node-problems.yaml"


def test_an_invalid_graph_lists_every_problem_and_q_exits_with_1() -> None:
    report = validate_file(INVALID).report
    assert len(report.problems) > 3

    async def main() -> None:
        app = InvalidGraphApp(report)
        async with app.run_test(size=(100, 30)) as pilot:
            table = app.query_one("#problems", DataTable)
            assert table.row_count == len(report.problems)
            shown = [table.get_row_at(i)[2] for i in range(table.row_count)]
            assert shown == [p.message for p in report.sorted_problems()]
            summary = str(app.query_one("#summary", Static).content)
            assert f"{len(report.errors)} errors" in summary and "Nothing was run" in summary
            await pilot.press("q")
        assert app.return_value == 1

    asyncio.run(asyncio.wait_for(main(), 120))


MANY_PROBLEMS = """\
version: 2
nodes:
  - {id: cam, kind: source, plugin: synthetic, config: {count: 10, bogus: 1}}
  - {id: thin, kind: transform, plugin: sampel}
  - {id: Bad Id, kind: sink, plugin: "null"}
  - {id: out, kind: sink, plugin: "null", config: {x: 1}}
  - {id: orphan, kind: transform, plugin: passthrough}
edges:
  - {from: cam, to: thin}
  - {from: thin, to: out}
  - {from: thin, to: nowhere}
  - {from: out, to: cam}
"""
"""Problems whose message and hint wrap at 80 columns, the first among them."""


@pytest.mark.parametrize("graph", ["many-problems", "combo-many-node-problems"])
def test_the_hint_area_shows_the_highlighted_problems_code_message_and_hint_in_full(
    tmp_path: Path, graph: str
) -> None:
    path = INVALID
    if graph == "many-problems":
        path = tmp_path / "graph.yaml"
        path.write_text(MANY_PROBLEMS)
    report = validate_file(path).report
    problems = report.sorted_problems()
    assert len(problems) > 3

    async def main() -> None:
        app = InvalidGraphApp(report)
        async with app.run_test(size=(80, 24)) as pilot:
            hint = app.query_one("#hint", Static)
            for index, problem in enumerate(problems):  # the first as shown at start
                if index:
                    await pilot.press("down")
                lines = [hint.render_line(y).text.strip() for y in range(hint.size.height)]
                shown = " ".join(line for line in lines if line)
                expected = f"[{problem.code}] {problem.message} "
                expected += f"hint: {problem.hint}" if problem.hint else "no hint for this problem"
                assert shown == expected, (index, lines)

    asyncio.run(asyncio.wait_for(main(), 120))


SCHNITZEL_TUI = str(REPO / ".venv" / "bin" / "schnitzel-tui")


def schnitzel_tui(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real console script, without a terminal; state (its log) kept in `tmp_path`."""
    return subprocess.run(
        [SCHNITZEL_TUI, *args, "--state-dir", str(tmp_path / "state")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )


def test_no_ui_on_an_invalid_graph_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    done = schnitzel_tui(tmp_path, str(INVALID), "--no-ui")
    assert done.returncode == 1
    output = done.stdout + done.stderr
    for problem in validate_file(INVALID).report.problems:
        assert f"[{problem.code}]" in output and problem.message in output
    assert "is invalid; nothing was run" in done.stderr


def test_a_missing_graph_file_exits_2_with_a_clear_message_and_no_ui(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    done = schnitzel_tui(tmp_path, str(missing))
    assert done.returncode == 2
    message = f"schnitzel-tui: {missing}: no such file; pass the path of a graph .yaml file"
    assert done.stderr.strip() == message
    assert "\x1b[" not in done.stdout  # no screen was drawn
