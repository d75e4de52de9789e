"""A camera's node detail in the console: its panel of detector load, tracks, zones and latest
events, over the recording of graphs/camera.yaml and over a real run of it."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Sparkline

from schnitzel.control.runtime_control import RuntimeControl
from schnitzel.runtime import Runtime
from schnitzel.validate.validator import load_graph
from schnitzel_tui.app import ConsoleApp
from schnitzel_tui.screens.cameras import CamerasScreen
from schnitzel_tui.screens.node_detail import NodeDetailScreen
from schnitzel_tui.source import EmbeddedSource
from schnitzel_tui.widgets.camera_panel import CameraPanel
from schnitzel_tui.widgets.camera_table import CameraTable
from tests.conftest import REPO
from tests.tui.recorded_source import RecordedSource, read_recorded_polls

IN_THE_DOCK = 13
"""Polls into the recording: the person has crossed the gate and entered the dock."""


def panel_lines(panel: CameraPanel) -> list[str]:
    """The panel's lines as drawn inside its border, right-trimmed."""
    return [panel.render_line(y).text.rstrip() for y in range(panel.size.height)]


async def open_camera(app: ConsoleApp, pilot: Pilot[None], node_id: str = "cam") -> None:
    app.open_node(node_id)
    await app.workers.wait_for_complete()  # the detail is drawn once it is mounted
    await pilot.pause()
    assert isinstance(app.screen, NodeDetailScreen) and app.screen.is_mounted


async def settle(app: ConsoleApp, pilot: Pilot[None], shown: Callable[[], bool]) -> None:
    """After a key: wait until `shown` holds (a key is handled after `press` returns; 60 s,
    against a hang only), then for the screen's first drawing."""
    for _ in range(1200):
        if shown():
            break
        await pilot.pause(0.05)
    await app.workers.wait_for_complete()
    await pilot.pause()


async def recorded_detail(size: tuple[int, int], node_id: str = "cam") -> tuple[list[str], bool]:
    """The camera panel's lines (empty: no panel) and whether the sparklines show."""
    app = ConsoleApp(RecordedSource("camera"), refresh_s=60)
    async with app.run_test(size=size) as pilot:
        await read_recorded_polls(app, IN_THE_DOCK)
        await open_camera(app, pilot, node_id)
        panels = list(app.screen.query(CameraPanel))
        lines = panel_lines(panels[0]) if panels else []
        sparklines = all(s.display and s.size.height > 0 for s in app.screen.query(Sparkline))
        return lines, sparklines


def test_a_cameras_detail_shows_its_zones_tracks_and_latest_events_at_80x24() -> None:
    lines, sparklines = asyncio.run(recorded_detail((80, 24)))
    assert lines[0].startswith("dock-cam  video_file · ")
    assert lines[1].startswith("detector detect  116 ms p50 · 396 ms p99 · busy 86% · 44 frames")
    assert lines[2].startswith("tracks   1 now: #1 · 1 ids given")
    assert lines[3].startswith("zones    dock: #1 · gate (line)")
    assert lines[4].startswith("events   update person #1 warning enter:dock severity")
    assert lines[7].startswith("         new person #1 info")  # newest first
    assert all(len(line) <= 76 for line in lines)  # border and padding: 4
    assert not sparklines  # below 30 rows they step aside for the panel


def test_a_tall_terminal_keeps_a_cameras_sparklines() -> None:
    lines, sparklines = asyncio.run(recorded_detail((100, 40)))
    assert lines[3].startswith("zones    dock: #1 · gate (line)")
    assert sparklines


def test_other_nodes_have_no_camera_panel() -> None:
    lines, sparklines = asyncio.run(recorded_detail((80, 24), "detect"))
    assert lines == [] and sparklines


@pytest.mark.slow
def test_a_real_run_of_the_camera_demo_tells_the_scene_in_the_panel(tmp_path: Path) -> None:
    graph = tmp_path / "camera.yaml"
    shutil.copy(REPO / "graphs" / "camera.yaml", graph)
    spec = importlib.util.spec_from_file_location(
        "make_scene", REPO / "graphs/vision/make_scene.py"
    )
    assert spec is not None and spec.loader is not None
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    maker.main(tmp_path / "out" / "camera.mp4")

    async def main() -> tuple[list[str], list[str]]:
        """The panel while the person is in the dock, and once the run has ended."""
        runtime = Runtime(load_graph(graph), tmp_path / "state", drain_timeout_s=2.0)
        app = ConsoleApp(EmbeddedSource(RuntimeControl(runtime)), refresh_s=0.25)
        run = asyncio.create_task(runtime.run())
        inside: list[str] = []
        try:
            async with app.run_test(size=(80, 24)) as pilot:
                await open_camera(app, pilot)
                panel = app.screen.query_one(CameraPanel)
                for _ in range(2400):  # 120 s at most, against a hang only
                    lines = panel_lines(panel)
                    # zones writes who is inside before events has told the entry: wait
                    # for both (the person stays in the dock for seconds)
                    shown = "\n".join(lines)
                    if not inside and "zones    dock: #1" in shown and "enter:dock" in shown:
                        inside = lines
                    ended = app.snapshot is not None and not app.snapshot.running
                    if ended and any("leave:dock" in line for line in lines):
                        return inside, lines
                    await pilot.pause(0.05)
                raise AssertionError("the scene did not end in the panel:\n" + "\n".join(lines))
        finally:
            if not run.done():
                runtime.force_stop()
            await asyncio.wait_for(run, 60)

    inside, ended = asyncio.run(asyncio.wait_for(main(), 180))
    assert inside, "the panel never showed the person in the dock with its entry"
    text = "\n".join(inside)
    assert inside[0].startswith("dock-cam  video_file · ")
    assert "detector detect  " in text and " ms p50 · " in text
    assert "tracks   1 now: #1" in text and "gate (line)" in text
    assert ended[2].startswith("tracks   0 now · 1 ids given")
    assert ended[3].startswith("zones    dock: none · gate (line)")
    assert ended[4].startswith("events   end person #1 warning leave:dock")


async def overview(recording: str) -> tuple[str, list[str], str, str]:
    """`c` on a recording: the screen it shows, the first row's cells as text, then the
    screens after enter and after esc."""
    app = ConsoleApp(RecordedSource(recording), refresh_s=60)
    async with app.run_test(size=(80, 24)) as pilot:
        await read_recorded_polls(app, IN_THE_DOCK)
        await pilot.press("c")
        await settle(
            app,
            pilot,
            lambda: (
                (isinstance(app.screen, CamerasScreen) and app.screen.is_mounted)
                or bool(app._notifications)
            ),  # no camera: it says so
        )
        shown = type(app.screen).__name__
        if not isinstance(app.screen, CamerasScreen):
            return shown, [], "", ""
        table = app.screen.query_one(CameraTable)
        row = [str(cell) for cell in table.get_row_at(0)]
        await pilot.press("enter")
        await settle(app, pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        opened = app.screen
        detail = f"{type(opened).__name__} {getattr(opened, 'node_id', '')}"
        await pilot.press("escape")
        await settle(app, pilot, lambda: isinstance(app.screen, CamerasScreen))
        return shown, row, detail, type(app.screen).__name__


def test_c_lists_each_camera_and_enter_opens_it() -> None:
    shown, row, detail, back = asyncio.run(overview("camera"))
    assert shown == "CamerasScreen"
    assert row[:2] == ["cam", "● dock-cam"]
    assert row[3:] == [
        "116 ms 86%",
        "1",
        "dock #1",
        "update person #1 warning enter:dock severity",
    ]
    assert (detail, back) == ("NodeDetailScreen cam", "CamerasScreen")


def test_c_in_a_graph_without_cameras_opens_nothing() -> None:
    shown, *_ = asyncio.run(overview("console"))
    assert shown == "MainScreen"
