"""The operator is told why, on the smallest supported terminal: at 80x24 every unhealthy node
is on screen (pinned on top of the node table) with its reason under the table, the status
line keeps its counts, the node detail shows what its plugin retries; the suggestions screen
says why nothing is suggested; the audit screen speaks `ctl audit`'s words; the throttle
dialog says what to enter in an empty field. Real runtimes on the test's event loop, a real
closed loopback port; every wait is on what the console shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.text import Text
from textual.widgets import DataTable, Static

from schnitzel.cli.ctl_command import _show_audit
from schnitzel.control.actor import Actor
from schnitzel.control.audit import audit_change
from schnitzel.control.runtime_control import RuntimeControl
from schnitzel.runtime.knobs import plain_value
from schnitzel_tui.model import AuditView, ConsoleSnapshot, NodeView
from schnitzel_tui.screens.audit import AuditScreen
from schnitzel_tui.screens.main import MainScreen
from schnitzel_tui.screens.node_detail import NodeDetailScreen
from schnitzel_tui.screens.suggestions import SuggestionsScreen
from schnitzel_tui.screens.throttle import ThrottleScreen, parse_knob
from schnitzel_tui.widgets.graph_view import GraphView
from schnitzel_tui.widgets.status_bar import StatusBar, StatusFacts, status_text
from schnitzel_tui.widgets.why_line import WhyLine, why_text
from tests.http.test_http_trouble import closed_port
from tests.tui.reports import node_report
from tests.tui.test_console_control import LIMITED, message, on_screen, select_row
from tests.tui.test_console_pilot import HEADER, Console, run_console

SMALLEST = (80, 24)


def many_nodes_and_a_dead_uplink(port: int) -> str:
    """Twelve healthy nodes first in the file, then an http sink to a closed port."""
    chain = "\n".join(
        f"  - {{id: step{n}, kind: transform, plugin: passthrough}}" for n in range(10)
    )
    edges = "\n".join(f"  - {{from: step{n}, to: step{n + 1}}}" for n in range(9))
    return (
        HEADER
        + f"""
nodes:
  - {{id: sensor, kind: source, plugin: synthetic, config: {{rate_hz: 50}}}}
{chain}
  - {{id: discard, kind: sink, plugin: "null"}}
  - id: uplink
    kind: sink
    plugin: http
    config: {{url: "http://127.0.0.1:{port}/ingest", retry_initial_s: 0.01, retry_max_s: 0.05,
              breaker_failures: 3, breaker_cooldown_s: 0.05, breaker_max_cooldown_s: 0.1}}
    inbox: {{durable: {{path: state/uplink.db}}}}
edges:
  - {{from: sensor, to: step0}}
{edges}
  - {{from: step9, to: discard}}
  - {{from: step9, to: uplink}}
"""
    )


def status_line(c: Console) -> str:
    bar = c.app.screen.query_one(StatusBar)
    content = bar.content
    return content.plain if isinstance(content, Text) else str(content)


def why_line(c: Console) -> str:
    content = c.app.screen.query_one(WhyLine).content
    return content.plain if isinstance(content, Text) else str(content)


def test_at_80x24_the_failing_uplink_is_on_screen_with_its_reason(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.started()

        def refused() -> bool:
            node = c.snapshot.nodes["uplink"]
            return node.health != "ok" and "connection refused" in node.health_reason

        await c.until(refused, "the uplink unhealthy, saying why", timeout_s=60)
        await c.polls(1)
        screen = c.app.screen
        assert isinstance(screen, MainScreen)
        assert not screen.query_one(GraphView).display  # the table gets the room
        table = c.table
        assert table.row_keys[0] == "uplink"  # pinned on top, though last in the file
        assert table.size.height >= 2  # a header and at least that row are on screen
        unhealthy = [n for n, v in c.snapshot.nodes.items() if v.health != "ok"]
        shown_rows = table.row_keys[: table.size.height - 1]
        assert set(unhealthy) <= set(shown_rows)
        assert why_line(c).startswith(("✖ uplink: ", "▲ uplink: "))
        assert "connection refused" in why_line(c)
        line = status_line(c)
        assert len(line) <= SMALLEST[0]
        snapshot = c.snapshot
        for count in (snapshot.dropped, snapshot.errors):
            assert f" {count} " in f"{line} " or f" {count}" in line
        assert line.split(" · ")[-1].split()[0] in ("delivered", "out")  # the last count shows
        await c.pilot.press("home")  # the top row: the pinned uplink
        await c.until(lambda: table.cursor_row == 0, "the cursor on the top row")
        assert table.selected_node == "uplink"
        await c.pilot.press("enter")
        await on_screen(c, NodeDetailScreen, "the uplink's detail")
        detail = c.app.screen
        await c.until(
            lambda: "retrying: " in str(detail.query_one("#drops", Static).content),
            "what the plugin retries",
        )
        drops = str(detail.query_one("#drops", Static).content)
        assert "connection refused" in drops and "retries since" in drops
        errors = detail.query_one("#errors", DataTable)
        await c.until(lambda: errors.row_count > 0, "a recent error")
        rows = [errors.get_row_at(i) for i in range(errors.row_count)]
        assert any(r[2] == "retrying" and "connection refused" in str(r[3]) for r in rows)

    run_console(tmp_path, many_nodes_and_a_dead_uplink(closed_port()), scenario, size=SMALLEST)


def test_the_status_line_shortens_the_name_and_labels_before_it_cuts_a_count() -> None:
    snapshot = ConsoleSnapshot(
        status="running",
        stop_reason=None,
        stop_detail="",
        duration_s=6.0,
        emitted=123_456,
        delivered=98_765,
        dropped=4_321,
        errors=17,
        filtered=0,
        in_flight=0,
        nodes={},
    )
    facts = StatusFacts(snapshot, frozen=True, open_suggestions=2)
    wide = status_text("graphs/a-rather-long-graph-file-name.yaml", facts).plain
    assert "every 1 s" in wide and "emitted 123k" in wide  # nothing shortened unasked
    for width, shown in ((100, facts), (80, facts), (66, StatusFacts(snapshot))):
        line = status_text("graphs/a-rather-long-graph-file-name.yaml", shown, width).plain
        assert len(line) <= width, (width, line)
        assert line.endswith(("delivered 99k", "out 99k")), line
        assert "4321" in line and "17" in line and "123k" in line


def test_the_why_line_prefers_the_selected_node_then_the_first_unhealthy_one() -> None:
    def node(node_id: str, health: str, reason: str) -> NodeView:
        return NodeView.from_report(node_id, node_report(health=health, health_reason=reason))

    ok, slow, dead = (
        node("a", "ok", ""),
        node("b", "degraded", "inbox 95% full"),
        node("c", "failing", "connection refused since 08:00:01, 3 retries"),
    )
    assert why_text(ok, [dead, slow, ok]).plain == (
        "✖ c: connection refused since 08:00:01, 3 retries"
    )
    assert why_text(slow, [dead, slow, ok]).plain == "▲ b: inbox 95% full"
    assert why_text(ok, [ok]).plain == "every node ok"


def test_the_suggestions_screen_says_why_nothing_is_suggested(tmp_path: Path) -> None:
    calm = LIMITED.replace(
        "runtime: {allow_modules: [tests.runtime.plugins]}",
        "runtime: {allow_modules: [tests.runtime.plugins], controller: {mode: suggest}}",
    )
    assert calm != LIMITED

    async def scenario(c: Console) -> None:
        await c.started()
        await c.pilot.press("g")
        await on_screen(c, SuggestionsScreen, "the suggestions")
        screen = c.app.screen
        assert isinstance(screen, SuggestionsScreen)

        def quiet() -> str:
            return str(screen.query_one("#quiet", Static).content)

        await c.until(lambda: "no pressure" in quiet(), "why nothing is suggested")
        assert quiet().startswith("Nothing suggested now:")
        assert "declares `limits:`" not in quiet()  # this graph declares some

    run_console(tmp_path, calm, scenario)


def test_with_the_controller_off_the_suggestions_screen_says_so(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        await c.pilot.press("g")
        await on_screen(c, SuggestionsScreen, "the suggestions")
        screen = c.app.screen
        await c.until(
            lambda: "the controller is off" in str(screen.query_one("#quiet", Static).content),
            "the reason",
        )
        assert "runtime.controller.mode" in str(screen.query_one("#quiet", Static).content)

    run_console(tmp_path, LIMITED, scenario)


def test_the_audit_screen_and_ctl_audit_say_a_change_in_the_same_words(
    tmp_path: Path,
) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        control = RuntimeControl(c.runtime)
        control.pause("thin", actor=Actor.local("console"))
        await c.pilot.press("A")
        await on_screen(c, AuditScreen, "the audit log")
        screen = c.app.screen
        assert isinstance(screen, AuditScreen)
        await c.until(lambda: len(screen.entries) >= 1, "the pause")
        assert screen.entries[0].change == "paused false -> true"
        table = screen.query_one("#entries", DataTable)
        assert "paused false -> true" in [str(cell) for cell in table.get_row_at(0)]

    run_console(tmp_path, LIMITED, scenario)


def test_one_formatter_for_audit_changes_in_ctl_and_the_console(
    capsys: pytest.CaptureFixture[str],
) -> None:
    entries = [
        {"ts": "t", "who": {"user": "ann", "via": "ctl"}, "action": "pause", "node": "thin",
         "before": False, "after": True, "outcome": "applied"},
        {"ts": "t", "who": {"user": "ann", "via": "ctl"}, "action": "stop", "node": None,
         "before": None, "after": {"force": False}, "outcome": "applied"},
        {"ts": "t", "who": {"user": "ann", "via": "ctl"}, "action": "throttle", "node": "cam",
         "before": {"rate_hz": 50.0}, "after": {"rate_hz": None}, "outcome": "applied"},
    ]  # fmt: skip
    _show_audit(entries)
    printed = capsys.readouterr().out
    for entry, said in zip(
        entries, ("paused false -> true", "force -> false", "rate_hz 50 -> none"), strict=True
    ):
        assert AuditView.from_dict(entry).change == said
        assert audit_change(entry["before"], entry["after"], str(entry["action"])) == said
        assert said in printed
    assert "False" not in printed and "True" not in printed
    assert plain_value({"force": False, "nodes": [1.0, "a"]}) == "{force: false, nodes: [1, a]}"


def test_an_empty_throttle_field_says_what_to_enter() -> None:
    problem = parse_knob("sample_every", "  ", (1.0, 10.0))[1]
    assert problem == "sample_every: the field is empty; enter a whole number between 1 and 10"
    problem = parse_knob("rate_hz", "", (1.0, 50.0))[1]
    assert problem == (
        "rate_hz: the field is empty; enter packets per second between 1 and 50, "
        "or none (as fast as accepted)"
    )
    assert "'fast' is not a number" in parse_knob("rate_hz", "fast", (None, None))[1]
    assert (
        "'1.5' is not a whole number; enter a whole number of 2 or more"
        in (parse_knob("concurrency", "1.5", (2.0, None))[1])
    )
    assert "nothing" not in problem


def test_an_empty_field_in_the_throttle_dialog_is_refused_with_what_to_enter(
    tmp_path: Path,
) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        await select_row(c, "thin")
        await c.pilot.press("t")
        await on_screen(c, ThrottleScreen, "the throttle dialog")
        await c.pilot.press("ctrl+a", "ctrl+k", "enter")
        dialog = c.app.screen
        said = "enter a whole number between 1 and 10"
        await c.until(lambda: said in message(dialog), "what to enter")
        assert c.app.screen is dialog  # no question: nothing to confirm
        assert c.runtime.nodes["thin"].sample_every == 1

    run_console(tmp_path, LIMITED, scenario)
