"""The camera source's reconnect rules with a real capture: a video file stands in for a
device (OpenCV opens both), so its end is a camera that goes away, and each reopening is a
new connection with a new epoch. No V4L2 device is needed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from schnitzel import Runtime, RuntimeControl
from schnitzel.validate import load_graph
from tests.vision.plugins import KEYS
from tests.vision.scenes import Scene


async def until(condition: Callable[[], bool], what: str, guard_s: float = 60.0) -> None:
    """Poll until `condition` holds; the guard only keeps a broken build from hanging."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + guard_s
    while not condition():
        if loop.time() > give_up:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


def run_camera(
    tmp_path: Path, device: str, condition: Callable[[dict[str, Any]], bool]
) -> tuple[dict[str, Any], list[str]]:
    """Run `camera -> key_sink` until the camera's stats meet `condition`; the report and what
    the run's event log said about the camera."""
    graph = tmp_path / "cam.yaml"
    graph.write_text(
        "version: 2\nruntime: {allow_modules: [tests.vision.plugins]}\nnodes:\n"
        f"  - id: cam\n    kind: source\n    plugin: camera\n"
        f"    config: {{device: '{device}', stall_s: 5, backoff_first_s: 0.1, "
        "backoff_max_s: 0.4}\n"
        "  - {id: keys, kind: sink, plugin: 'tests.vision.plugins:KeySink'}\n"
        "edges: [{from: cam, to: keys}]\n"
    )
    KEYS.clear()

    async def scenario() -> dict[str, Any]:
        runtime = Runtime(load_graph(graph), state_dir=tmp_path / "state")
        task = asyncio.create_task(runtime.run())
        try:
            stats = runtime.nodes["cam"].plugin.stats  # type: ignore[attr-defined]
            await until(lambda: condition(stats()), "the camera's stats to get there")
        finally:
            RuntimeControl(runtime).stop()
        report = await asyncio.wait_for(task, 60)
        said.extend(e.message for e in runtime.events.recent if e.node == "cam")
        return report

    said: list[str] = []
    return asyncio.run(scenario()), said


def test_a_camera_that_goes_away_comes_back_in_a_new_epoch_with_new_keys(
    scene: Scene, tmp_path: Path
) -> None:
    report, said = run_camera(tmp_path, str(scene.path), lambda s: s.get("reconnects", 0) >= 2)
    keys = KEYS["keys"]
    assert len(keys) == len(set(keys)) == report["nodes"]["keys"]["delivered"]
    epochs = [int(k.split(":")[1]) for k in keys]
    assert epochs == sorted(epochs)  # a later connection, a later epoch: keys never come back
    # (how many connections got a frame through is up to the machine: latest-frame-only may
    # replace all of a short connection's frames; the rtsp test counts epochs on a live stream)
    stats = report["nodes"]["cam"]["plugin_stats"]
    assert stats["reconnects"] >= 2
    assert 0 <= stats["frames_in"] - stats["frames_out"] - stats["skipped"] <= 1
    assert any("stream lost" in m for m in said) and any("reconnected" in m for m in said)


def test_a_missing_camera_is_retried_with_backoff_and_says_why(tmp_path: Path) -> None:
    report, said = run_camera(
        tmp_path,
        str(tmp_path / "no-such-device"),
        lambda s: "did not open" in s.get("last_error", ""),
    )
    assert any("cannot connect" in m and "next try in" in m for m in said), said
    stats = report["nodes"]["cam"]["plugin_stats"]
    assert stats["connected"] is False and stats["frames_in"] == 0
    assert report["status"] != "error"  # a camera that is away is not a failed graph
