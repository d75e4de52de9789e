"""The console's control plane driven by its keys over a real runtime: throttle, swap, roll
back, approve or reject the controller's suggestions, read the audit log; and a read-only
console that offers none of the changes. Every test waits on what the console shows or the
runtime holds, never on a clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Select, Static, TextArea

from schnitzel.control.actor import Actor
from schnitzel.control.runtime_control import RuntimeControl
from schnitzel_tui.model import AuditView
from schnitzel_tui.screens.audit import AuditEntryScreen, AuditScreen
from schnitzel_tui.screens.confirm import ConfirmScreen
from schnitzel_tui.screens.main import MainScreen
from schnitzel_tui.screens.suggestions import SuggestionsScreen
from schnitzel_tui.screens.swap import SwapScreen, config_from_text, defaults_yaml
from schnitzel_tui.screens.swap_review import SwapReviewScreen
from schnitzel_tui.screens.throttle import ThrottleScreen, parse_knob
from schnitzel_tui.widgets.status_bar import StatusBar, StatusFacts, status_text
from tests.control.harness import socket_dir
from tests.tui.test_console_pilot import HEADER, Console, palette_options, run_console

LIMITED = (
    HEADER
    + """
nodes:
  - {id: sensor, kind: source, plugin: synthetic, config: {rate_hz: 20}, limits: {rate_hz: [1, 50]}}
  - {id: merge, kind: transform, plugin: passthrough}
  - {id: thin, kind: transform, plugin: sample, config: {every: 2}, limits: {sample_every: [1, 10]}}
  - {id: discard, kind: sink, plugin: "null"}
edges:
  - {from: sensor, to: merge}
  - {from: merge, to: thin}
  - {from: thin, to: discard}
"""
)
"""Packets flow for ever; the source's rate and thin's sampling have declared limits."""

TOO_SLOW = (
    HEADER
    + """
runtime: {controller: {mode: suggest, window_s: 1, cooldown_s: 1, verify_s: 1}}
nodes:
  - {id: camera, kind: source, plugin: synthetic, config: {rate_hz: 200},
     limits: {rate_hz: [1, 400]}}
  - {id: backend, kind: sink, plugin: "tests.runtime.plugins:Recorder",
     config: {delay_s: 0.2}, inbox: {max: 8, overflow: drop_new}}
edges:
  - {from: camera, to: backend}
"""
).replace(HEADER + "\nruntime: {", "version: 2\nruntime: {allow_modules: [tests.runtime.plugins], ")
"""A backend that takes 5 packets a second behind a camera making 200: its inbox is full and
drops, so the controller suggests slowing the camera down. It drains its 8 slots in 1.6 s: a
camera starved of CPU that long on a busy machine would end the pressure (and the suggestion
expires after `window_s` without it); at 20 a second 0.4 s sufficed, and did."""


def notes(c: Console) -> list[str]:
    """The notifications the console has shown."""
    return [n.message for n in c.app._notifications]


def message(screen: object) -> str:
    """The text of a screen's `#message` line."""
    assert isinstance(screen, ThrottleScreen | SwapScreen)
    return str(screen.query_one("#message", Static).content)


async def select_row(c: Console, node_id: str) -> None:
    """Move the node table's cursor to `node_id`, a row at a time: a key is handled after
    `pilot.press` returns, so each step waits for the cursor to move."""

    def moved_from(row: int) -> Callable[[], bool]:
        return lambda: c.table.cursor_row != row

    while c.table.selected_node != node_id:
        row = c.table.cursor_row
        await c.pilot.press("down")
        await c.until(moved_from(row), f"the cursor to move on to {node_id}")


async def on_screen(c: Console, kind: type, what: str) -> None:
    await c.on_screen(kind, what)


# -- throttle -------------------------------------------------------------------------------


def test_t_on_a_source_asks_with_the_change_then_its_rate_changes_in_the_snapshot(
    tmp_path: Path,
) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        await select_row(c, "sensor")
        await c.pilot.press("t")
        await on_screen(c, ThrottleScreen, "the throttle dialog")
        dialog = c.app.screen
        assert dialog.query_one("#knob-rate_hz", Input).value == "20"
        assert "allowed 1 to 50" in str(dialog.query_one("#about-rate_hz", Static).content)
        await c.pilot.press("ctrl+a", "ctrl+k", *"5", "enter")
        await on_screen(c, ConfirmScreen, "the question")
        question = c.app.screen
        assert isinstance(question, ConfirmScreen)
        assert question.question == "Throttle node sensor?"
        assert question.change == "sensor: rate_hz 20 -> 5"
        assert c.snapshot.nodes["sensor"].throttle["rate_hz"] == 20  # not before the answer
        await c.pilot.press("y")
        await c.until(
            lambda: c.snapshot.nodes["sensor"].throttle.get("rate_hz") == 5, "the new rate"
        )
        await on_screen(c, MainScreen, "the main screen")
        await c.until(lambda: "throttled sensor: rate_hz 20 -> 5" in notes(c), "the note")

    run_console(tmp_path, LIMITED, scenario)


def test_a_value_outside_the_limits_is_refused_in_the_dialog_and_nothing_is_sent(
    tmp_path: Path,
) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        await select_row(c, "thin")
        await c.pilot.press("t")
        await on_screen(c, ThrottleScreen, "the throttle dialog")
        await c.pilot.press("ctrl+a", "ctrl+k", *"40", "enter")
        dialog = c.app.screen
        await c.until(lambda: "above the highest" in message(dialog), "the refusal")
        assert c.app.screen is dialog  # no question: nothing to confirm
        text = message(dialog)
        assert "sample_every: 40 is above the highest" in text
        assert "allowed: 1 to 10" in text
        assert c.runtime.nodes["thin"].sample_every == 1
        await c.pilot.press("escape")
        await on_screen(c, MainScreen, "the main screen")

    run_console(tmp_path, LIMITED, scenario)


def test_a_throttle_the_runtime_refuses_shows_its_reason_in_the_dialog(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        await select_row(c, "sensor")
        await c.pilot.press("t")
        await on_screen(c, ThrottleScreen, "the throttle dialog")
        # `none` (as fast as accepted) is not allowed where limits.rate_hz is declared
        await c.pilot.press("ctrl+a", "ctrl+k", *"none", "enter")
        await on_screen(c, ConfirmScreen, "the question")
        await c.pilot.press("y")
        await on_screen(c, ThrottleScreen, "the dialog again")
        await c.until(lambda: "refused by the runtime" in message(c.app.screen), "the refusal")
        assert "limits" in message(c.app.screen)
        assert c.runtime.nodes["sensor"].pacer.rate_hz == 20

    run_console(tmp_path, LIMITED, scenario)


# -- swap and rollback ----------------------------------------------------------------------


async def open_swap(c: Console, node_id: str, plugin: str) -> SwapScreen:
    """`w` on `node_id`, then choose `plugin` once the plugins are listed."""
    await c.started()
    await select_row(c, node_id)
    await c.pilot.press("w")
    await on_screen(c, SwapScreen, "the swap form")
    form = c.app.screen
    assert isinstance(form, SwapScreen)
    await c.until(lambda: bool(form.plugins), "the plugins of its kind")
    assert "sample" in form.plugins and "passthrough" in form.plugins
    form.query_one("#plugin", Select).value = plugin
    editor = form.query_one("#config", TextArea)
    defaults = defaults_yaml(form.plugins[plugin].config_schema)
    await c.until(lambda: editor.text == defaults, f"the form prefilled for {plugin}")
    return form


def test_w_swaps_a_node_from_the_editor_form_after_showing_the_diff(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        form = await open_swap(c, "merge", "sample")
        editor = form.query_one("#config", TextArea)
        assert "# required: every" in editor.text  # the new plugin's config, explained
        editor.clear()
        editor.focus()
        await c.pilot.press(*"every: 2")
        await c.until(lambda: editor.text == "every: 2", "the config typed")
        await c.pilot.press("ctrl+r")
        await on_screen(c, SwapReviewScreen, "the diff")
        review = c.app.screen
        assert isinstance(review, SwapReviewScreen)
        assert review.question == "Swap node merge: passthrough -> sample?"
        diff = str(review.query_one("#diff", Static).content)
        assert "+" in diff and "every: 2" in diff
        assert c.snapshot.nodes["merge"].plugin == "passthrough"  # not before the answer
        await c.pilot.press("y")
        await c.until(
            lambda: (
                c.snapshot.nodes["merge"].plugin == "sample"
                and c.snapshot.nodes["merge"].generation == 1
            ),
            "merge running sample, generation 1",
        )
        await on_screen(c, MainScreen, "the main screen")
        assert any(n.startswith("swapped merge: passthrough -> sample") for n in notes(c))
        assert c.snapshot.nodes["merge"].can_rollback

    run_console(tmp_path, LIMITED, scenario)


@pytest.mark.slow
@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory whose path is short to type: the console is sent one key per character,
    each drawn over a live run (a path under xdist's tmp_path is about 90 keys, 10-15 s)."""
    with socket_dir() as directory:
        yield directory


def test_w_swaps_a_node_with_a_config_read_from_a_file(tmp_path: Path, short_dir: Path) -> None:
    config = short_dir / "sample.json"
    config.write_text('{"every": 3}')

    async def scenario(c: Console) -> None:
        await open_swap(c, "merge", "sample")
        await c.pilot.press("ctrl+t")  # from the editor to a file
        await c.pilot.press(*str(config))
        await c.pilot.press("ctrl+r")
        await on_screen(c, SwapReviewScreen, "the diff")
        review = c.app.screen
        assert "every: 3" in str(review.query_one("#diff", Static).content)
        await c.pilot.press("y")
        await c.until(lambda: c.snapshot.nodes["merge"].generation == 1, "merge at generation 1")
        assert c.snapshot.nodes["merge"].plugin == "sample"

    run_console(tmp_path, LIMITED, scenario)


@pytest.mark.slow
def test_an_unreadable_config_file_is_said_and_nothing_is_sent(
    tmp_path: Path, short_dir: Path
) -> None:
    async def scenario(c: Console) -> None:
        form = await open_swap(c, "merge", "sample")
        await c.pilot.press("ctrl+t", *str(short_dir / "missing.yaml"), "ctrl+r")
        await c.until(lambda: "cannot read" in message(form), "the complaint")
        assert isinstance(c.app.screen, SwapScreen)
        assert c.snapshot.nodes["merge"].generation == 0

    run_console(tmp_path, LIMITED, scenario)


def test_a_swap_that_would_not_validate_shows_every_reason_and_nothing_changes(
    tmp_path: Path,
) -> None:
    async def scenario(c: Console) -> None:
        form = await open_swap(c, "merge", "sample")
        form.query_one("#config", TextArea).clear()  # sample needs `every`
        await c.pilot.press("ctrl+r")
        await c.until(lambda: "refused" in message(form), "the refusal")
        text = message(form)
        assert "nothing changed" in text
        assert "every" in text
        assert isinstance(c.app.screen, SwapScreen)  # no diff to confirm
        await c.pilot.press("escape")
        await on_screen(c, MainScreen, "the main screen")
        assert c.snapshot.nodes["merge"].plugin == "passthrough"
        assert c.snapshot.nodes["merge"].generation == 0

    run_console(tmp_path, LIMITED, scenario)


def test_R_asks_then_rolls_a_swapped_node_back_to_the_version_before(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        control = RuntimeControl(c.runtime)
        await control.swap("merge", "sample", {"every": 2}, actor=Actor.local("api"))
        await c.until(lambda: c.snapshot.nodes["merge"].can_rollback, "the swap to show")
        await select_row(c, "merge")
        await c.pilot.press("R")
        await on_screen(c, ConfirmScreen, "the question")
        question = c.app.screen
        assert question.question == "Roll back node merge?"
        assert "generation 1" in question.change
        assert "back to the version before the last swap" in question.change
        await c.pilot.press("y")
        await c.until(
            lambda: (
                c.snapshot.nodes["merge"].plugin == "passthrough"
                and c.snapshot.nodes["merge"].generation == 2
            ),
            "merge back on passthrough, generation 2",
        )
        assert any(n.startswith("rolled back merge: sample -> passthrough") for n in notes(c))

    run_console(tmp_path, LIMITED, scenario)


def test_R_on_a_node_never_swapped_says_there_is_nothing_to_roll_back(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        await select_row(c, "merge")
        await c.pilot.press("R")
        said = "node merge has not been swapped: nothing to roll back"
        await c.until(lambda: said in notes(c), "the note")
        assert isinstance(c.app.screen, MainScreen)

    run_console(tmp_path, LIMITED, scenario)


# -- suggestions ----------------------------------------------------------------------------


async def open_suggestion(c: Console) -> SuggestionsScreen:
    """Wait for the controller's first suggestion, then `g`."""
    await c.started()
    await c.until(lambda: any(s.is_open for s in c.app.suggestions), "a suggestion")
    await c.until(
        lambda: "1 SUGGESTION (g)" in str(c.app.screen.query_one(StatusBar).content),
        "the badge in the status line",
    )
    await c.pilot.press("g")
    await on_screen(c, SuggestionsScreen, "the suggestions")
    screen = c.app.screen
    assert isinstance(screen, SuggestionsScreen)
    await c.until(lambda: bool(screen.suggestions), "the list")
    chosen = screen.highlighted
    assert chosen is not None and chosen.node and chosen.rationale and chosen.expected
    detail = str(screen.query_one("#detail", Static).content)
    assert chosen.rationale in detail and chosen.expected in detail
    return screen


def knobs(c: Console) -> dict[str, dict[str, object]]:
    """Every node's knobs as the runtime reports them now (sample_every left out)."""
    snapshot = RuntimeControl(c.runtime).snapshot()
    return {
        node_id: {k: v for k, v in entry["throttle"].items() if k != "sample_every"}
        for node_id, entry in snapshot["nodes"].items()
    }


def status_of(screen: SuggestionsScreen, suggestion_id: str) -> str:
    return next(s.status for s in screen.suggestions if s.id == suggestion_id)


def test_a_suggestion_shows_in_the_status_line_and_a_approves_it_after_asking(
    tmp_path: Path,
) -> None:
    async def scenario(c: Console) -> None:
        screen = await open_suggestion(c)
        chosen = screen.highlighted
        assert chosen is not None
        await c.pilot.press("a")
        await on_screen(c, ConfirmScreen, "the question")
        question = c.app.screen
        assert question.question == f"Approve suggestion {chosen.id}?"
        assert chosen.change in question.change
        await c.pilot.press("y")
        await c.until(lambda: status_of(screen, chosen.id) != "open", "the decision")
        # applied, then judged after verify_s (kept, or rolled back): the audit log has it all
        assert status_of(screen, chosen.id) in ("approved", "applied", "rolled_back")
        decided = next(s for s in screen.suggestions if s.id == chosen.id)
        assert decided.decided_by.endswith("via console")
        audit = RuntimeControl(c.runtime).audit()
        approval = next(e for e in audit if e["action"] == "approve")
        assert approval["suggestion"] == chosen.id and approval["outcome"] == "applied"
        assert approval["who"]["via"] == "console"
        change = next(e for e in audit if e["action"] == "throttle")
        assert change["suggestion"] == chosen.id and change["outcome"] == "applied"
        assert change["after"] == chosen.args and change["after"] != change["before"]

    run_console(tmp_path, TOO_SLOW, scenario)


def test_x_rejects_a_suggestion_after_asking_and_nothing_changes(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        screen = await open_suggestion(c)
        await c.pilot.press("x")
        await on_screen(c, ConfirmScreen, "the question")
        await c.pilot.press("y")
        chosen = screen.highlighted
        assert chosen is not None
        await c.until(lambda: status_of(screen, chosen.id) == "rejected", "the rejection")
        assert knobs(c) == {"camera": {"rate_hz": 200}, "backend": {"concurrency": 1}}

    run_console(tmp_path, TOO_SLOW, scenario)


# -- audit ----------------------------------------------------------------------------------


def test_the_audit_screen_lists_applied_and_refused_changes_with_who_made_them(
    tmp_path: Path,
) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        control = RuntimeControl(c.runtime)
        actor = Actor.local("console")
        control.throttle("sensor", rate_hz=10.0, actor=actor, why="too fast for the uplink")
        try:
            control.throttle("thin", sample_every=99, actor=actor)
        except Exception as exc:  # refused: out of its limits, and audited as such
            assert "limits" in str(exc)
        await c.pilot.press("A")
        await on_screen(c, AuditScreen, "the audit log")
        screen = c.app.screen
        assert isinstance(screen, AuditScreen)
        await c.until(lambda: len(screen.entries) >= 2, "the two entries")
        newest, older = screen.entries[0], screen.entries[1]
        assert (newest.action, newest.node, newest.outcome) == ("throttle", "thin", "refused")
        assert (older.action, older.node, older.outcome) == ("throttle", "sensor", "applied")
        assert older.who == f"{actor.user} via console"
        assert older.change == "rate_hz 20 -> 10"
        assert older.why == "too fast for the uplink"
        table = screen.query_one("#entries", DataTable)
        assert "✖ refused" in str(table.get_row_at(0)[1])
        await c.pilot.press("down", "enter")
        await on_screen(c, AuditEntryScreen, "the whole entry")
        full = str(c.app.screen.query_one("#entry", Static).content)
        assert "too fast for the uplink" in full and f"{actor.user} via console" in full
        await c.pilot.press("escape")
        await on_screen(c, AuditScreen, "the audit log again")

    run_console(tmp_path, LIMITED, scenario)


# -- read-only ------------------------------------------------------------------------------


def test_a_read_only_console_offers_no_throttle_swap_or_rollback(tmp_path: Path) -> None:
    async def scenario(c: Console) -> None:
        await c.started()
        refused = "read-only console: changes are refused"

        def refusals(count: int) -> Callable[[], bool]:
            return lambda: notes(c).count(refused) >= count

        for count, key in enumerate(("t", "w", "R"), start=1):
            await c.pilot.press(key)
            await c.until(refusals(count), f"{key} refused")
            assert isinstance(c.app.screen, MainScreen), key
        assert notes(c).count(refused) == 3
        offered = await palette_options(c, "node merge")
        assert not [t for t in offered if t.startswith(("Throttle", "Swap", "Roll back"))]
        await c.pilot.press("escape")
        await on_screen(c, MainScreen, "the main screen again")
        assert "Audit log" in await palette_options(c, "audit")

    run_console(tmp_path, LIMITED, scenario, read_only=True)


def test_a_read_only_console_lists_suggestions_but_cannot_approve_or_reject(
    tmp_path: Path,
) -> None:
    async def scenario(c: Console) -> None:
        screen = await open_suggestion(c)
        assert "read-only" in str(screen.query_one("#title", Static).content)
        await c.pilot.press("a", "x")
        # keys are handled in order: had `a` or `x` asked a question, escape would only
        # close that, and the main screen would not come back
        await c.pilot.press("escape")
        await on_screen(c, MainScreen, "the main screen again")
        assert screen.suggestions[0].is_open
        assert knobs(c) == {"camera": {"rate_hz": 200}, "backend": {"concurrency": 1}}

    run_console(tmp_path, TOO_SLOW, scenario, read_only=True)


# -- what the screens are built from --------------------------------------------------------


def test_a_knob_value_is_checked_against_its_bounds_and_its_type() -> None:
    assert parse_knob("sample_every", " 4 ", (1.0, 10.0)) == (4, "")
    assert parse_knob("rate_hz", "2.5", (1.0, 50.0)) == (2.5, "")
    assert parse_knob("rate_hz", "none", (1.0, 50.0)) == (None, "")  # the runtime judges
    assert "not a whole number" in parse_knob("concurrency", "1.5", (1.0, 8.0))[1]
    assert "below the lowest; allowed: 2 to 8" in parse_knob("concurrency", "1", (2.0, 8.0))[1]
    assert "above 0" in parse_knob("rate_hz", "-3", (None, None))[1]
    assert "above the highest" in parse_knob("rate_hz", "60", (1.0, 50.0))[1]


def test_the_editor_takes_a_yaml_mapping_and_says_where_anything_else_is_wrong() -> None:
    assert config_from_text("", "the editor") == {}
    assert config_from_text('{"every": 3}', "f.json") == {"every": 3}
    with pytest.raises(ValueError, match="must be a mapping"):
        config_from_text("- a\n- b\n", "the editor")
    with pytest.raises(ValueError, match="the editor: line 2: not valid YAML"):
        config_from_text("a: 1\n b: [\n", "the editor")


def test_a_new_plugins_form_starts_from_its_defaults_and_names_its_required_keys() -> None:
    schema = {
        "properties": {
            "url": {"type": "string", "description": "Where to send."},
            "timeout_s": {"type": "number", "default": 5.0},
        },
        "required": ["url"],
    }
    text = defaults_yaml(schema)
    assert text == "# required: url (string): Where to send.\ntimeout_s: 5.0\n"
    assert config_from_text(text, "the editor") == {"timeout_s": 5.0}


def test_an_approval_in_the_audit_log_reads_as_the_change_it_made() -> None:
    entry = AuditView.from_dict(
        {
            "ts": "2026-11-24T08:00:00.123Z",
            "who": {"user": "alice", "uid": 1000, "pid": 7, "ssh": "10.0.0.5 1 10.0.0.1 22"},
            "action": "approve",
            "node": "backend",
            "before": {"concurrency": 1},
            "after": {"command": "throttle", "node": "backend", "args": {"concurrency": 2}},
            "suggestion": "s-1",
            "outcome": "applied",
        }
    )
    assert entry.change == "concurrency 1 -> 2"
    assert entry.who == "alice via ? over ssh from 10.0.0.5"


def test_the_status_line_counts_the_open_suggestions() -> None:
    line = status_text("g.yaml", StatusFacts(None, open_suggestions=2)).plain
    assert "◆ 2 SUGGESTIONS (g)" in line
    assert "SUGGESTION" not in status_text("g.yaml", StatusFacts(None)).plain
