"""The video_file source's options on a real file: every frame once, loop, start_at, realtime
pacing, and frames that nobody can change."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from schnitzel.errors import RuntimeStartError
from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph
from tests.runtime.plugins import RECORDS
from tests.vision.scenes import Scene


def run_file(tmp_path: Path, scene: Scene, options: str, max_packets: int | None = None) -> dict:
    graph = tmp_path / "v.yaml"
    graph.write_text(
        "version: 2\nruntime: {allow_modules: [tests.runtime.plugins]}\nnodes:\n"
        f"  - {{id: cam, kind: source, plugin: video_file, config: {{path: '{scene.path}'"
        f"{options}}}}}\n"
        "  - {id: rec, kind: sink, plugin: 'tests.runtime.plugins:Recorder'}\n"
        "edges: [{from: cam, to: rec}]\n"
    )
    RECORDS.clear()
    runtime = Runtime(load_graph(graph), state_dir=tmp_path / "state")
    return asyncio.run(runtime.run(max_packets=max_packets))


def test_every_frame_once_in_order_with_its_metadata(scene: Scene, tmp_path: Path) -> None:
    report = run_file(tmp_path, scene, "")
    frames = [p.payload for p in RECORDS["rec"]]
    assert report["stop_reason"] == "sources_exhausted"
    assert [f.index for f in frames] == list(range(len(scene.faces)))
    assert [p.seq for p in RECORDS["rec"]] == list(range(len(scene.faces)))
    assert {(f.width, f.height, f.camera_id) for f in frames} == {(640, 360, "cam")}
    assert [round(f.pts_s, 3) for f in frames[:3]] == [0.0, 0.04, 0.08]
    assert all(not f.image.flags.writeable for f in frames)
    assert frames[0].nbytes == 640 * 360 * 3


def test_loop_starts_again_and_keeps_counting(scene: Scene, tmp_path: Path) -> None:
    total = 2 * len(scene.faces) + 5
    run_file(tmp_path, scene, ", loop: true", max_packets=total)
    packets = RECORDS["rec"]
    assert [p.seq for p in packets] == list(range(total))  # keys never repeat
    assert [p.payload.index for p in packets[: len(scene.faces) + 2]] == [
        *range(len(scene.faces)),
        0,
        1,
    ]


def test_start_at_skips_the_first_seconds(scene: Scene, tmp_path: Path) -> None:
    run_file(tmp_path, scene, ", start_at: 0.4")  # 10 frames at 25 fps
    frames = [p.payload for p in RECORDS["rec"]]
    assert frames[0].index == 10
    assert len(frames) == len(scene.faces) - 10


def test_a_start_at_past_the_end_stops_the_run_before_it_starts_saying_so(
    scene: Scene, tmp_path: Path
) -> None:
    """It gave no frame and said nothing: a run of a camera graph that did nothing."""
    with pytest.raises(RuntimeStartError, match=r"start_at 5 s is past the end .*\(24 frames"):
        run_file(tmp_path, scene, ", start_at: 5")  # 24 frames at 25 fps: 0.96 s


def test_realtime_never_runs_ahead_of_the_files_clock(scene: Scene, tmp_path: Path) -> None:
    began = time.monotonic()
    run_file(tmp_path, scene, ", realtime: true")
    # a lower bound only: a slow machine takes longer, never less
    assert time.monotonic() - began >= (len(scene.faces) - 1) / scene.fps
