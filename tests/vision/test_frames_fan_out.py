"""Frames under a slow detector: a byte-bounded inbox keeps memory bounded and counts what it
drops; one camera fanned out to two detectors shares each frame (never copied) and one model
session."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph
from schnitzel_plugins.vision.sessions import sessions_open
from tests.runtime.plugins import RECORDS
from tests.vision.conftest import NUDENET
from tests.vision.scenes import Scene

FRAME_BYTES = 640 * 360 * 3


def test_a_byte_bounded_inbox_holds_at_most_its_bytes_and_counts_every_frame(
    scene: Scene, tmp_path: Path
) -> None:
    graph = tmp_path / "g.yaml"
    graph.write_text(
        "version: 2\nruntime: {allow_modules: [tests.runtime.plugins]}\nnodes:\n"
        f"  - {{id: cam, kind: source, plugin: video_file, config: {{path: '{scene.path}'}}}}\n"
        f"  - id: det\n    kind: compute\n    plugin: detect\n    config: {{model: '{NUDENET}'}}\n"
        f"    inbox: {{max: 1000, max_bytes: {3 * FRAME_BYTES}, overflow: drop_oldest}}\n"
        "  - {id: out, kind: sink, plugin: 'null'}\n"
        "edges: [{from: cam, to: det}, {from: det, to: out}]\n"
    )
    report = asyncio.run(Runtime(load_graph(graph), state_dir=tmp_path).run())
    det = report["nodes"]["det"]
    emitted = report["totals"]["emitted"]
    assert emitted == len(scene.faces)
    assert det["queue_depth_max"] <= 3  # three frames' bytes, though `max` allows 1000
    assert det["queue_max_bytes"] == 3 * FRAME_BYTES
    assert det["received"] == emitted
    assert det["in"] + det["dropped"] == emitted  # every frame processed or counted as dropped
    assert report["nodes"]["out"]["delivered"] == det["out"] == det["in"]


@pytest.mark.slow  # two real detectors on every frame
def test_one_camera_into_two_detectors_shares_each_frame_and_the_model(
    scene: Scene, tmp_path: Path
) -> None:
    graph = tmp_path / "fan.yaml"
    graph.write_text(
        "version: 2\nruntime: {allow_modules: [tests.runtime.plugins]}\nnodes:\n"
        f"  - {{id: cam, kind: source, plugin: video_file, config: {{path: '{scene.path}'}}}}\n"
        f"  - {{id: faces, kind: compute, plugin: detect, config: {{model: '{NUDENET}', "
        "classes: [FACE_FEMALE]}}\n"
        f"  - {{id: all, kind: compute, plugin: detect, config: {{model: '{NUDENET}'}}}}\n"
        "  - {id: rec_faces, kind: sink, plugin: 'tests.runtime.plugins:Recorder'}\n"
        "  - {id: rec_all, kind: sink, plugin: 'tests.runtime.plugins:Recorder'}\n"
        "edges: [{from: cam, to: faces}, {from: cam, to: all}, {from: faces, to: rec_faces}, "
        "{from: all, to: rec_all}]\n"
    )
    RECORDS.clear()
    runtime = Runtime(load_graph(graph), state_dir=tmp_path)
    report = asyncio.run(runtime.run())
    faces = {p.payload.frame.index: p.payload.frame for p in RECORDS["rec_faces"]}
    every = {p.payload.frame.index: p.payload.frame for p in RECORDS["rec_all"]}
    assert len(faces) == len(every) == report["totals"]["emitted"] == len(scene.faces)
    for index, frame in faces.items():
        assert every[index] is frame  # the same Frame: the pixels exist once
        assert not frame.image.flags.writeable  # and no node can change them for the other
    one, other = (runtime.nodes[n].plugin.detector for n in ("faces", "all"))
    assert one.session is other.session  # one model in memory for both nodes
    assert sessions_open() == 0  # and released when the last of them closed
