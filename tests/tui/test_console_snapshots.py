"""The console's main screens as an operator sees them, at pinned terminal sizes, rendered
from a recorded run (tests/tui/recorded/console.json, made by tests/tui/record.py) so the
pictures are the same on every machine. Update with `pytest --snapshot-update` and look at
the SVGs under __snapshots__/ before committing them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from schnitzel.validate.validator import validate_text
from schnitzel_tui.app import ConsoleApp
from schnitzel_tui.screens.confirm import ConfirmScreen
from schnitzel_tui.screens.invalid import InvalidGraphApp
from schnitzel_tui.screens.node_detail import NodeDetailScreen
from tests.conftest import REPO
from tests.tui.recorded_source import RecordedSource, read_recorded_polls

SnapCompare = Callable[..., bool]

POLLS = 6
"""Polls into the recording: six seconds into the run, the uplink's backlog has grown for
five seconds and its health says why (connection refused; circuit open)."""


@pytest.fixture(autouse=True)
def _utc() -> Iterator[None]:
    """The event log and the error table print clock times in the local time zone."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def recorded_console() -> ConsoleApp:
    """The console over the recording; no timer poll fires during a test (refresh 60 s)."""
    return ConsoleApp(RecordedSource("console"), refresh_s=60)


async def advance(app: ConsoleApp, polls: int = POLLS) -> None:
    """Poll until `polls` recorded snapshots have been read (mounting read the first)."""
    await read_recorded_polls(app, polls)


def run_before(*steps: Callable[[Pilot[Any]], Any]) -> Callable[[Pilot[Any]], Any]:
    async def before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, ConsoleApp)
        await advance(app)
        for step in steps:
            await step(pilot)
        # A table sizes its columns after the layout that follows a poll: on a loaded machine
        # that can take more than one pause (seen once in CI: a time column cut to "08:0").
        await pilot.wait_for_scheduled_animations()
        for _ in range(3):
            await pilot.pause()

    return before


@pytest.mark.parametrize("size", [(100, 30), (80, 24)], ids=["100x30", "80x24"])
def test_main_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    assert snap_compare(recorded_console(), terminal_size=size, run_before=run_before())


def test_node_detail_screen(snap_compare: SnapCompare) -> None:
    async def open_uplink(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, ConsoleApp)
        app.open_node("uplink")
        await app.workers.wait_for_complete()  # mounted and drawn
        await pilot.pause()
        assert isinstance(app.screen, NodeDetailScreen)
        await app.poll()  # a poll while the detail is shown draws it

    assert snap_compare(
        recorded_console(), terminal_size=(100, 30), run_before=run_before(open_uplink)
    )


CAMERA_POLLS = 13
"""Polls into the camera recording (graphs/camera.yaml): the person is in the dock."""


def recorded_camera() -> ConsoleApp:
    return ConsoleApp(RecordedSource("camera"), refresh_s=60)


def test_camera_detail_screen(snap_compare: SnapCompare) -> None:
    async def open_camera(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, ConsoleApp)
        await advance(app, CAMERA_POLLS)
        app.open_node("cam")
        await app.workers.wait_for_complete()  # mounted and drawn
        await pilot.pause()
        assert isinstance(app.screen, NodeDetailScreen)
        await app.poll()

    assert snap_compare(recorded_camera(), terminal_size=(80, 24), run_before=open_camera)


def test_cameras_screen(snap_compare: SnapCompare) -> None:
    async def cameras(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, ConsoleApp)
        await advance(app, CAMERA_POLLS)
        await pilot.press("c")
        await pilot.pause()
        await app.poll()
        await pilot.pause()

    assert snap_compare(recorded_camera(), terminal_size=(80, 24), run_before=cameras)


def test_help_screen(snap_compare: SnapCompare) -> None:
    async def help_(pilot: Pilot[Any]) -> None:
        await pilot.press("question_mark")

    assert snap_compare(recorded_console(), terminal_size=(100, 30), run_before=run_before(help_))


def test_confirm_quit_screen(snap_compare: SnapCompare) -> None:
    async def quit_(pilot: Pilot[Any]) -> None:
        await pilot.press("q")
        assert isinstance(pilot.app.screen, ConfirmScreen)

    assert snap_compare(recorded_console(), terminal_size=(100, 30), run_before=run_before(quit_))


INVALID = Path("tests/graphs/invalid/combo-many-node-problems.yaml")


def test_invalid_graph_screen(snap_compare: SnapCompare) -> None:
    # the source named as relative to the repository: the picture must not show a home dir
    report = validate_text((REPO / INVALID).read_text(), source=str(INVALID)).report
    assert snap_compare(InvalidGraphApp(report), terminal_size=(100, 30))
