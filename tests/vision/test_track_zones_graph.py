"""`video_file -> detect -> track -> zones -> jsonl` on a real video and model: one track id for
the face through the scene, one enter when its feet cross into the zone, and a zone swapped
live that keeps who is inside and every track id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schnitzel import Runtime, RuntimeControl
from schnitzel.validate import validate_file
from tests.runtime.harness import graph_from, steer
from tests.vision.conftest import NUDENET
from tests.vision.scenes import Scene, write_scene

RIGHT_HALF = "[[0.5, 0], [1, 0], [1, 1], [0.5, 1]]"
LEFT_HALF = "[[0, 0], [0.5, 0], [0.5, 1], [0, 1]]"
WHOLE = "[[0, 0], [1, 0], [1, 1], [0, 1]]"


def body(video: Path, polygon: str) -> str:
    return f"""
nodes:
  - {{id: cam, kind: source, plugin: video_file, config: {{path: '{video}'}}}}
  - id: det
    kind: compute
    plugin: detect
    config: {{model: '{NUDENET}', classes: [FACE_FEMALE], batch_max: 1}}
  - {{id: trk, kind: policy, plugin: track, config: {{min_hits: 2}}, inbox: {{max: 1}}}}
  - id: zon
    kind: policy
    plugin: zones
    inbox: {{max: 1}}
    config: {{zones: [{{name: dock, points: {polygon}, normalized: true, inertia: 2}}]}}
  - {{id: out, kind: sink, plugin: jsonl, config: {{path: tracks.jsonl}}}}
edges:
  - {{from: cam, to: det}}
  - {{from: det, to: trk}}
  - {{from: trk, to: zon}}
  - {{from: zon, to: out}}
"""


def lines(tmp_path: Path) -> list[dict[str, Any]]:
    rows = [
        json.loads(line)["payload"] for line in (tmp_path / "tracks.jsonl").read_text().splitlines()
    ]
    return sorted(rows, key=lambda p: p["frame_index"])


@pytest.mark.slow  # the real detector on every frame of the scene
def test_the_face_keeps_one_id_and_enters_the_zone_once_where_its_feet_cross(
    tmp_path: Path,
) -> None:
    scene: Scene = write_scene(tmp_path / "walk.mp4", frames=40)
    report = steer(graph_from(tmp_path, body(scene.path, RIGHT_HALF)), tmp_path / "state",
                   _nothing, stop=False)  # fmt: skip
    rows = lines(tmp_path)
    assert len(rows) == 40 == report["nodes"]["out"]["delivered"]
    ids = {t["track_id"] for row in rows for t in row["tracks"]}
    assert ids == {1}
    enters = [(row["frame_index"], t) for row in rows for t in row["transitions"]]
    assert [t for _, t in enters] == [{"track_id": 1, "zone": "dock", "kind": "enter"}]
    width = scene.size[0]
    inside = [n for n, face in enumerate(scene.faces) if (face[0] + face[2]) / 2 > width / 2]
    # inertia 2: the second frame whose true anchor is inside; a box's jitter moves it by one
    assert abs(enters[0][0] - (inside[0] + 1)) <= 1, (enters, inside[:3])
    for row in rows:
        for t in row["tracks"]:
            assert t["zones"] == (["dock"] if row["frame_index"] >= enters[0][0] else [])


@pytest.mark.slow  # the real detector on every frame, a swap while it runs
def test_a_zone_swapped_live_keeps_who_is_inside_and_the_track_ids(tmp_path: Path) -> None:
    scene = write_scene(tmp_path / "walk.mp4", frames=40)
    handed: list[bool] = []

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await _until(lambda: runtime.nodes["zon"].metrics.processed >= 6)
        control.pause("det")  # the face is still in the left half: hold it there
        config = {"zones": [{"name": "dock", "points": [[0, 0], [1, 0], [1, 1], [0, 1]],
                             "normalized": True, "inertia": 2}]}  # fmt: skip
        result = await control.swap("zon", None, config)
        handed.append(result["state_handed_over"])
        control.resume("det")

    steer(graph_from(tmp_path, body(scene.path, LEFT_HALF)), tmp_path / "state", steps,
          stop=False)  # fmt: skip
    assert handed == [True]
    rows = lines(tmp_path)
    assert len(rows) == 40
    assert {t["track_id"] for row in rows for t in row["tracks"]} == {1}
    kinds = [t["kind"] for row in rows for t in row["transitions"]]
    assert kinds == ["enter"]  # the left half would have seen it leave; the whole frame keeps it


def test_a_tracking_graph_validates_and_refuses_zones_before_track(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    graph = tmp_path / "g.yaml"
    graph.write_text("version: 2\n" + body(video, WHOLE))
    result = validate_file(graph)
    assert [p.code for p in result.report.problems if p.severity == "error"] == []
    bad = tmp_path / "bad.yaml"
    bad.write_text(graph.read_text().replace("points: " + WHOLE, "points: [[0, 0], [2, 0]]"))
    problems = validate_file(bad).report.problems
    assert any("normalized" in p.render() for p in problems), [p.render() for p in problems]


async def _nothing(runtime: Runtime, control: RuntimeControl) -> None:
    return None


async def _until(predicate: Any, guard_s: float = 60.0) -> None:
    import asyncio

    async with asyncio.timeout(guard_s):
        while not predicate():
            await asyncio.sleep(0.005)


@pytest.mark.slow  # the real detector on every frame, a swap while it runs
def test_a_tracker_swapped_live_keeps_its_ids(tmp_path: Path) -> None:
    scene = write_scene(tmp_path / "walk.mp4", frames=40)
    handed: list[bool] = []

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await _until(lambda: runtime.nodes["trk"].metrics.processed >= 6)
        control.pause("det")  # the run cannot end before the swap
        result = await control.swap("trk", None, {"min_hits": 2, "max_age": 20})
        handed.append(result["state_handed_over"])
        control.resume("det")

    steer(graph_from(tmp_path, body(scene.path, RIGHT_HALF)), tmp_path / "state", steps,
          stop=False)  # fmt: skip
    assert handed == [True]
    rows = lines(tmp_path)
    assert len(rows) == 40
    assert {t["track_id"] for row in rows for t in row["tracks"]} == {1}
    assert [t["kind"] for row in rows for t in row["transitions"]] == ["enter"]
