"""`video_file -> detect -> track -> zones -> events -> (http behind a durable inbox, jsonl)`
on a real video and model, into a real loopback HTTP server: each event arrives once under
its key, the zone entry is one of them, and every snapshot is a JPEG whose sha256 is its ref's."""

from __future__ import annotations

import hashlib
import json
import signal
from collections import Counter
from pathlib import Path
from urllib.parse import unquote, urlparse

import cv2
import numpy as np
import pytest

from tests.conftest import SCHNITZEL
from tests.http_backend import LoopbackBackend
from tests.logged_run import LoggedRun, next_log
from tests.runtime.harness import graph_from, run
from tests.vision.event_graphs import camera_events_graph
from tests.vision.scenes import write_scene


def camera_graph(video: Path, url: str) -> str:
    events = ["zone_severity: {dock: warning}", "snapshot_dir: snaps"]
    return camera_events_graph(video, url, events, "retry_initial_s: 0.05")


@pytest.mark.slow  # the real detector on every frame of the scene
def test_events_reach_the_backend_once_each_with_snapshots_that_match_their_refs(
    tmp_path: Path, loopback_backend: LoopbackBackend
) -> None:
    scene = write_scene(tmp_path / "walk.mp4", frames=40)
    report = run(graph_from(tmp_path, camera_graph(scene.path, loopback_backend.url)), tmp_path)
    written = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    events = [line["payload"] for line in written]
    assert report["nodes"]["up"]["delivered"] == len(events) > 0
    keys = [r.key for r in loopback_backend.requests if r.accepted]
    assert Counter(keys) == Counter(e["event_id"] for e in events)  # once each
    assert all(n == 1 for n in Counter(keys).values())
    shapes = [(e["transition"], e["reasons"], e["severity"]) for e in events]
    assert shapes[0] == ("new", [], "info")
    entries = [e for e in events if "enter:dock" in e["reasons"]]
    assert len(entries) == 1 and entries[0]["severity"] == "warning"
    assert entries[0]["before"]["zones"] == [] and entries[0]["after"]["zones"] == ["dock"]
    assert {e["track_id"] for e in events} == {1} and {e["type"] for e in events} == {"person"}
    for line, event in zip(written, events, strict=True):
        snap = event["snapshot"]
        assert snap is not None and line["payload_ref"]["sha256"] == snap["crop"]["sha256"]
        for ref in (snap["crop"], snap["frame"]):
            data = Path(unquote(urlparse(ref["uri"]).path)).read_bytes()
            assert hashlib.sha256(data).hexdigest() == ref["sha256"] and len(data) == ref["size"]
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None, f"{ref['uri']} is not a JPEG"
        crop = cv2.imdecode(
            np.frombuffer(Path(unquote(urlparse(snap["crop"]["uri"]).path)).read_bytes(), np.uint8),
            cv2.IMREAD_COLOR,
        )
        x1, y1, x2, y2 = scene.faces[snap["frame_index"]]
        assert abs(crop.shape[1] - (x2 - x1)) < 20 and abs(crop.shape[0] - (y2 - y1)) < 20


@pytest.mark.slow  # kill -9 of a real run, and a second run
def test_after_a_kill_9_events_arrive_again_only_as_duplicates_of_their_keys(
    tmp_path: Path, loopback_backend: LoopbackBackend
) -> None:
    scene = write_scene(tmp_path / "walk.mp4", frames=60)
    graph = tmp_path / "camera.yaml"
    graph.write_text(
        "version: 2\n"
        + camera_graph(scene.path, loopback_backend.url).replace(
            f"config: {{path: '{scene.path}'}}", f"config: {{path: '{scene.path}', realtime: true}}"
        )
    )

    def start() -> LoggedRun:  # its log in run-<n>.log, never a pipe it could fill
        return LoggedRun(
            [*SCHNITZEL, "run", str(graph), "--state-dir", str(tmp_path / "state")],
            log=next_log(tmp_path),
            cwd=tmp_path,
        )

    first = start()
    loopback_backend.wait_for(
        lambda got: any(r.accepted for r in got)
    )  # mid-stream: one event is in
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    (tmp_path / "events.jsonl").unlink(missing_ok=True)
    second = start()
    assert second.finish(120) == 0, second.log_tail()
    # the second run read the whole file: its events are every event the scene makes
    expected = {json.loads(line)["payload"]["event_id"]
                for line in (tmp_path / "events.jsonl").read_text().splitlines()}  # fmt: skip
    arrived = Counter(r.key for r in loopback_backend.requests if r.accepted)
    assert set(arrived) == expected, (sorted(arrived), sorted(expected))
    assert "cam:0:1:new:1" in expected  # min_hits 2: the face's track is reported on frame 1
