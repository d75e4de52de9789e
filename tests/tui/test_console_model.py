"""What the console makes of the control API's answers: snapshots built from real run
reports, drop bursts found between polls, and a node table that writes only what changed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult

from schnitzel.control.runtime_control import RuntimeControl
from schnitzel.runtime import Runtime
from schnitzel.validate.validator import load_graph
from schnitzel_tui.app import ConsoleApp
from schnitzel_tui.drop_bursts import DropBurstWatch
from schnitzel_tui.formatting import format_seconds
from schnitzel_tui.model import ConsoleSnapshot, NodeView
from schnitzel_tui.widgets.node_table import NodeTable, node_columns
from tests.tui.recorded_source import RecordedSource
from tests.tui.reports import node_report, run_report
from tests.tui.test_console_pilot import FINITE, UPLINK_DOWN, cell_segment, colour


def runtime_for(tmp_path: Path, graph: str) -> Runtime:
    path = tmp_path / "graph.yaml"
    path.write_text(graph)
    return Runtime(load_graph(path), tmp_path / "state", drain_timeout_s=2.0)


# -- ConsoleSnapshot ------------------------------------------------------------------------


def test_a_snapshot_of_an_ended_run_has_its_totals_and_every_node_in_file_order(
    tmp_path: Path,
) -> None:
    runtime = runtime_for(tmp_path, FINITE)
    asyncio.run(asyncio.wait_for(runtime.run(), 60))
    snapshot = ConsoleSnapshot.from_report(RuntimeControl(runtime).snapshot())
    assert not snapshot.running and snapshot.stop_reason == "sources_exhausted"
    assert (snapshot.emitted, snapshot.delivered, snapshot.filtered) == (20, 10, 10)
    assert (snapshot.dropped, snapshot.errors, snapshot.in_flight) == (0, 0, 0)
    assert list(snapshot.nodes) == ["sensor", "merge", "thin", "discard"]
    thin = snapshot.nodes["thin"]
    assert (thin.kind, thin.plugin) == ("transform", "sample")
    assert (thin.received, thin.processed, thin.out, thin.filtered) == (20, 20, 10, 10)
    assert thin.capacity > 0 and thin.depth == 0 and thin.durable is None
    assert snapshot.nodes["sensor"].kind == "source" and snapshot.nodes["sensor"].fill == 0
    assert snapshot.durable_nodes == ()


def test_a_live_snapshot_shows_a_durable_inbox_and_its_backlog(tmp_path: Path) -> None:
    runtime = runtime_for(tmp_path, UPLINK_DOWN)
    control = RuntimeControl(runtime)

    async def live_snapshot() -> dict[str, Any]:
        run = asyncio.create_task(runtime.run())
        try:
            for _ in range(100):
                data = control.snapshot()
                if data["nodes"]["uplink"].get("durable", {}).get("backlog", 0) > 5:
                    return data
                await asyncio.sleep(0.05)
            raise AssertionError("the uplink backlog did not grow")
        finally:
            runtime.force_stop()
            await asyncio.wait_for(run, 60)

    snapshot = ConsoleSnapshot.from_report(asyncio.run(live_snapshot()))
    assert snapshot.running and snapshot.stop_reason is None
    assert [n.id for n in snapshot.durable_nodes] == ["uplink"]
    uplink = snapshot.nodes["uplink"]
    assert uplink.durable is not None
    assert uplink.durable.path.endswith("state/uplink.db")
    assert uplink.durable.max_bytes == 1_048_576 and uplink.durable.backlog > 5
    assert 0 < uplink.durable.bytes < uplink.durable.max_bytes
    assert uplink.durable.max_packets == 1000
    assert uplink.fill == max(uplink.durable.bytes / 1_048_576, uplink.durable.backlog / 1000)


def test_rates_are_taken_over_the_time_between_two_polls() -> None:
    def report(duration_s: float, processed: int, out: int) -> ConsoleSnapshot:
        node = node_report(kind="transform", out=out, rate_in_per_s=999.0, **{"in": processed})
        return ConsoleSnapshot.from_report(run_report({"n": node}, duration_s=duration_s))

    first = report(1.0, 10, 5)
    assert first.with_rates_since(None) is first  # nothing to compare with yet
    later = report(1.5, 30, 15).with_rates_since(first)
    assert (later.nodes["n"].rate_in, later.nodes["n"].rate_out) == (40.0, 20.0)


# -- DropBurstWatch -------------------------------------------------------------------------


def dropping(**by_reason: int) -> ConsoleSnapshot:
    """A snapshot where node `slow` has dropped these many packets by reason so far."""
    node = node_report(kind="sink", dropped=sum(by_reason.values()), dropped_by_reason=by_reason)
    quiet = node_report(kind="sink")
    return ConsoleSnapshot.from_report(run_report({"slow": node, "quiet": quiet}))


def test_drops_seen_on_the_first_poll_are_not_a_burst() -> None:
    watch = DropBurstWatch()
    assert watch.check(dropping(inbox_full=500), now=0.0) == []
    assert watch.check(dropping(inbox_full=500), now=1.0) == []


def test_a_burst_is_reported_once_with_its_count_and_reasons() -> None:
    watch = DropBurstWatch()
    watch.check(dropping(inbox_full=500), now=0.0)
    [event] = watch.check(dropping(inbox_full=510, displaced=3), now=1.0)
    assert (event.level, event.node) == ("warning", "slow")
    assert event.message == "dropped 13 packets (displaced 3, inbox_full 10)"
    assert event.ts == 1.0
    assert watch.check(dropping(inbox_full=510, displaced=3), now=2.0) == []


def test_a_burst_that_goes_on_is_reported_at_most_every_repeat_s_with_the_drops_since() -> None:
    watch = DropBurstWatch(repeat_s=10.0)
    watch.check(dropping(inbox_full=0), now=0.0)
    assert len(watch.check(dropping(inbox_full=10), now=1.0)) == 1
    assert watch.check(dropping(inbox_full=20), now=2.0) == []  # counted in the next report
    assert watch.check(dropping(inbox_full=35), now=10.9) == []
    [event] = watch.check(dropping(inbox_full=40), now=11.0)
    assert event.message == "dropped 30 packets (inbox_full 30)"
    [event] = watch.check(dropping(inbox_full=41), now=21.0)
    assert event.message == "dropped 1 packets (inbox_full 1)"


def test_drops_made_between_two_polls_the_console_missed_are_reported_on_the_next() -> None:
    watch = DropBurstWatch()
    watch.check(dropping(inbox_full=0), now=0.0)
    # polls at 1 s and 2 s were skipped (a slow remote runtime): one report covers them
    [event] = watch.check(dropping(inbox_full=70), now=3.0)
    assert event.message == "dropped 70 packets (inbox_full 70)"


# -- NodeTable ------------------------------------------------------------------------------


def node(node_id: str, **report: Any) -> NodeView:
    return NodeView.from_report(
        node_id, node_report(kind="transform", plugin="passthrough", queue_capacity=100, **report)
    )


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield NodeTable()


def test_the_node_table_writes_only_the_cells_that_changed() -> None:
    first = {"a": node("a", rate_in_per_s=10.0), "b": node("b", queue_depth=5)}

    async def main() -> None:
        app = TableApp()
        async with app.run_test(size=(120, 10)):
            table = app.query_one(NodeTable)
            assert table.show(first) == 2 * len(node_columns(8))  # every cell of the new rows
            assert table.show(first) == 0  # nothing changed: nothing written
            assert table.show(dict(first)) == 0
            faster = {**first, "a": node("a", rate_in_per_s=20.0)}
            assert table.show(faster) == 1  # the `in` cell
            assert str(table.get_cell("a", "in")) == "20/s"
            failing = {**faster, "b": node("b", queue_depth=5, health="failing")}
            assert table.show(failing) == 2  # its mark and its health
            assert table.row_keys == ["b", "a"]  # a failing node is pinned on top
            assert table.show({"a": faster["a"]}) == 0  # a row gone is removed, not rewritten
            assert table.row_keys == ["a"]

    asyncio.run(asyncio.wait_for(main(), 120))


def test_the_node_table_draws_losses_and_errors_in_bold_red_and_overflow_drops_in_yellow() -> None:
    losing = node(
        "b",
        errors=2,
        dropped=5,
        dropped_by_reason={"node_failed": 3, "inbox_full": 2},
        health="failing",
    )

    async def main() -> None:
        app = TableApp()
        async with app.run_test(size=(120, 10)) as pilot:
            table = app.query_one(NodeTable)
            table.show({"a": node("a"), "b": losing})
            assert table.row_keys == ["b", "a"]  # failing: pinned on top
            table.cursor_row = 1  # row b is drawn in its own colours, not the cursor's
            await pilot.pause()
            for column, text, expected, bold in (
                ("mark", "✖", "red", True),
                ("errors", "2", "red", True),
                ("lost", "3", "red", True),
                ("overflow", "2", "yellow", False),
            ):
                segment = cell_segment(table, "b", column)
                assert (segment.text, colour(segment)) == (text, expected), column
                assert segment.style is not None and bool(segment.style.bold) == bold, column

    asyncio.run(asyncio.wait_for(main(), 120))


# -- formatting -----------------------------------------------------------------------------

DAY = 86400


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "—"),
        (float("inf"), "—"),
        (45, "45 s"),
        (200, "3 m 20 s"),
        (999, "16 m"),
        (2 * 3600 + 5 * 60, "2 h 05 m"),
        (86399, "23 h"),
        (3 * DAY + 4 * 3600, "3 d 04 h"),
        (9 * DAY + 23 * 3600, "9 d 23 h"),
        (10 * DAY, "10 d"),
        (42 * DAY + 5 * 3600, "42 d"),
        (100 * DAY - 1, "99 d"),
        (100 * DAY, ">99 d"),
        (1e12, ">99 d"),
    ],
)
def test_format_seconds_keeps_its_unit_for_long_durations(
    seconds: float | None, shown: str
) -> None:
    assert format_seconds(seconds) == shown


def test_format_seconds_never_takes_more_than_eight_cells() -> None:
    for exponent in range(-1, 16):
        for mantissa in (1.0, 2.5, 5.99, 9.99):
            text = format_seconds(mantissa * 10**exponent)
            assert len(text) <= 8 and text.endswith((" s", " m", " h", " d")), text
    for seconds in (599, 999, 3599, 35999, 36000, 86399):  # the widest of each unit
        assert len(format_seconds(seconds)) <= 8, format_seconds(seconds)


def test_a_plugins_own_figures_reach_the_node_detail() -> None:
    from schnitzel_tui.model import NodeView
    from schnitzel_tui.screens.node_detail import plugin_stats_line

    stats = {"connected": False, "reconnects": 2, "last_error": "", "inference_ms": {"p50": 71.5}}
    view = NodeView.from_report("cam", node_report(kind="source", plugin_stats=stats))
    assert view.plugin_stats == stats
    assert plugin_stats_line(view.plugin_stats) == (
        "connected no  reconnects 2  inference_ms p50 71.5"
    )
    assert NodeView.from_report("x", node_report(kind="sink")).plugin_stats == {}


# -- a report of another shape --------------------------------------------------------------


def test_a_report_without_a_key_the_console_reads_is_named_not_shown_as_0() -> None:
    source = RecordedSource("console")  # a real run's answers, with one key renamed
    for recorded in source.snapshots:
        for entry in recorded["nodes"].values():
            entry["depth"] = entry.pop("queue_depth")
    app = ConsoleApp(source, refresh_s=60)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await app.poll()
            assert app.snapshot is None  # nothing drawn from it, no 0 in a queue column
            assert "nodes.imu.queue_depth: Field required" in app.lost  # the status line
            assert app.polls == 0

    asyncio.run(scenario())
