"""Motion gating: still frames skip the detector and carry the camera's last detections, moving
ones are detected, `max_skip` bounds a run of skips; in a graph, every frame is accounted for
as detected or skipped and the face keeps one track id."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np

from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph
from schnitzel_plugins.vision.motion import MotionGate, MotionSettings
from tests.vision.conftest import NUDENET
from tests.vision.scenes import iou, write_still_scene


def test_the_gate_skips_still_frames_and_detects_moving_ones() -> None:
    still = np.full((360, 640, 3), 90, np.uint8)
    moved = still.copy()
    moved[100:200, 300:400] = 250  # an object the size of a person far away
    noisy = np.clip(
        still.astype(int) + np.random.default_rng(1).integers(-8, 9, still.shape), 0, 255
    ).astype(np.uint8)
    gate = MotionGate(MotionSettings(max_skip=3))
    decisions = [gate.moves(image) for image in [still, still, noisy, moved, moved, still]]
    assert decisions == [True, False, False, True, False, True]
    assert gate.skipped == 3
    for_ever = [gate.moves(still) for _ in range(8)]
    assert for_ever == [False, False, False, True] * 2  # max_skip 3: every fourth is detected


def test_a_mostly_still_scene_skips_the_detector_and_keeps_the_track(tmp_path: Path) -> None:
    lefts = [20] * 30 + [20 + 15 * n for n in range(1, 11)] + [170] * 30
    scene = write_still_scene(tmp_path / "still.mp4", lefts)
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        "version: 2\nnodes:\n"
        f"  - {{id: cam, kind: source, plugin: video_file, config: {{path: '{scene.path}'}}}}\n"
        f"  - {{id: det, kind: compute, plugin: detect, config: {{model: '{NUDENET}', "
        "classes: [FACE_FEMALE], batch_max: 1, motion: {max_skip: 100}}}\n"
        "  - {id: trk, kind: policy, plugin: track, config: {min_hits: 2}}\n"
        "  - {id: out, kind: sink, plugin: jsonl, config: {path: out.jsonl}}\n"
        "edges: [{from: cam, to: det}, {from: det, to: trk}, {from: trk, to: out}]\n"
    )
    report = asyncio.run(Runtime(load_graph(graph), state_dir=tmp_path / "state").run())
    stats = report["nodes"]["det"]["plugin_stats"]
    assert stats["frames"] + stats["motion_skipped"] == len(lefts)
    assert stats["motion_skipped"] >= 50, stats  # the 58 still frames, give or take codec noise
    rows = sorted(
        (json.loads(line)["payload"] for line in (tmp_path / "out.jsonl").read_text().splitlines()),
        key=lambda p: p["frame_index"],
    )
    assert len(rows) == len(lefts)
    found = sum(
        any(iou(d["bbox"], scene.faces[row["frame_index"]]) >= 0.5 for d in row["detections"])
        for row in rows
    )
    assert found >= 0.9 * len(rows), f"the face was where it is in {found} of {len(rows)} frames"
    assert {t["track_id"] for row in rows for t in row["tracks"]} == {1}
