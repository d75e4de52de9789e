"""graphs/camera.yaml, the camera demo: it names its missing video and nothing else, and on
the video graphs/vision/make_scene.py writes it tells the story the scene has: a new person,
through the gate, into the dock, loitering, and gone."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph, validate_file

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "graphs" / "camera.yaml"
MAKER = REPO / "graphs" / "vision" / "make_scene.py"


def test_the_demo_names_its_missing_video_and_nothing_else(tmp_path: Path) -> None:
    graph = tmp_path / DEMO.name
    shutil.copy(DEMO, graph)
    problems = validate_file(graph).report.problems
    assert [(p.code, "camera.mp4" in p.message) for p in problems] == [("environment", True)]


@pytest.mark.slow  # the real detector over the whole demo video
def test_the_demo_tells_the_scenes_story(tmp_path: Path) -> None:
    graph = tmp_path / DEMO.name
    shutil.copy(DEMO, graph)
    spec = importlib.util.spec_from_file_location("make_scene", MAKER)
    assert spec is not None and spec.loader is not None
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    maker.main(tmp_path / "out" / "camera.mp4")
    assert validate_file(graph).report.problems == []
    runtime = Runtime(load_graph(graph), state_dir=tmp_path / "state")
    report = asyncio.run(runtime.run())
    assert report["status"] == "ok"
    lines = (tmp_path / "out" / "camera-events.jsonl").read_text().splitlines()
    events = [json.loads(line)["payload"] for line in lines]
    story = [r for e in events for r in e["reasons"] if r != "better_score"]
    assert story == ["cross:gate:in", "enter:dock", "severity", "loiter:dock", "leave:dock"]
    assert [e["transition"] for e in events][0 :: len(events) - 1] == ["new", "end"]
    assert {e["track_id"] for e in events} == {1}
    assert all(e["snapshot"] is not None for e in events)
    told = [e.message for e in runtime.events.recent if e.node == "events"]
    assert told == [
        "camera dock-cam: person #1 crossed gate:in",
        "camera dock-cam: person #1 entered dock",
        "camera dock-cam: person #1 loitering in dock",
        "camera dock-cam: person #1 left dock",
    ]
    stats = report["nodes"]["events"]["plugin_stats"]
    assert stats["events"]["new"] == stats["events"]["end"] == 1 and stats["active"] == {
        "dock-cam": "none"
    }
    assert stats["latest"].endswith("end person #1 warning leave:dock")
