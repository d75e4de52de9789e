"""Snapshot retention never removes a blob an undelivered event points at: `events` writes
crops and frames into a blob store far over its tiny `snapshot_max_bytes` while the backend
behind a durable `http` sink is down; every snapshot of a queued event stays readable (sha256
as its ref says), across a restart that replays the backlog, and once the backlog is
delivered retention removes them."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from schnitzel import Runtime, RuntimeControl
from tests.http_backend import LoopbackBackend
from tests.runtime.harness import graph_from, steer
from tests.vision.event_graphs import camera_events_graph
from tests.vision.scenes import write_scene

FRAMES = 40


def graph(video: Path, url: str) -> str:
    events = ["better_by: 0", "cooldown_s: 0", "snapshot_dir: snaps", "snapshot_max_bytes: 1"]
    return camera_events_graph(video, url, events, "retry_initial_s: 0.05, retry_max_s: 0.2")


def snapshots(tmp_path: Path) -> dict[str, str]:
    """URI -> sha256 of every snapshot the events of the last run point at."""
    refs: dict[str, str] = {}
    log = tmp_path / "events.jsonl"
    for line in log.read_text().splitlines():
        snap = json.loads(line)["payload"]["snapshot"]
        for ref in (snap["crop"], snap["frame"]):
            refs[ref["uri"]] = ref["sha256"]
    log.unlink()
    return refs


def readable(uri: str, sha256: str) -> bool:
    path = Path(unquote(urlparse(uri).path))
    return path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256


def run_scene(tmp_path: Path, video: Path, url: str, backend_up: bool) -> dict[str, Any]:
    """Run the camera over `video`. With the backend down, stop once everything but the
    durable sink's backlog is done (that backlog stays on disk for the next run)."""

    async def until_only_the_backlog_is_left(runtime: Runtime, _: RuntimeControl) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60  # only against a hang
        in_flight, camera = runtime.in_flight, runtime.nodes["cam"].metrics
        while camera.emitted < FRAMES or in_flight.volatile or not runtime.stores["up"].backlog:
            assert loop.time() < deadline, "the scene never finished"
            await asyncio.sleep(0.05)

    async def nothing(runtime: Runtime, _: RuntimeControl) -> None:
        return None

    steps = nothing if backend_up else until_only_the_backlog_is_left
    return steer(
        graph_from(tmp_path, graph(video, url)), tmp_path / "state", steps, stop=not backend_up
    )


@pytest.mark.slow  # three runs of a real detector over real videos
def test_snapshots_of_queued_events_survive_retention_and_a_restart_until_delivered(
    tmp_path: Path, loopback_backend: LoopbackBackend
) -> None:
    first_video = write_scene(tmp_path / "first.mp4", frames=FRAMES).path
    second_video = write_scene(tmp_path / "second.mp4", frames=FRAMES, photo_side=260).path
    loopback_backend.stop()  # the backend is down: events wait in the durable inbox

    report = run_scene(tmp_path, first_video, loopback_backend.url, False)
    first = snapshots(tmp_path)
    queued = report["nodes"]["up"]["durable"]["backlog"]
    assert queued > 0 and len(first) > 2
    assert all(readable(uri, sha) for uri, sha in first.items())  # far over 1 byte: pinned
    stats = report["nodes"]["evt"]["plugin_stats"]
    assert stats["snapshots_kept_pinned"] > 0 and stats["snapshots_over_by_pinned"]

    # a restart: the backlog is replayed from the store and pins the first run's snapshots
    # while a new scene writes others (different pixels, so different blobs)
    report = run_scene(tmp_path, second_video, loopback_backend.url, False)
    second = snapshots(tmp_path)
    only_first = set(first) - set(second)
    assert only_first and report["nodes"]["up"]["durable"]["backlog"] > queued
    assert all(readable(uri, first[uri]) for uri in only_first)
    assert all(readable(uri, sha) for uri, sha in second.items())

    loopback_backend.start()  # back up: the backlog is delivered, then retention may remove it all
    report = run_scene(tmp_path, first_video, loopback_backend.url, True)
    assert report["nodes"]["up"]["durable"]["backlog"] == 0
    only_second = set(second) - set(first)
    assert only_second and not any(readable(uri, second[uri]) for uri in only_second)
