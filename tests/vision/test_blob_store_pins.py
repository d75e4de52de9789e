"""`blob_store` retention never deletes a JPEG a packet not yet delivered names.

Frames go through `blob_store` (`max_bytes: 1`, so every collection would remove all but the
newest blob) into a durable `http` sink whose backend refuses everything: every packet waits
in the durable inbox, and every blob one of them names stays readable (sha256 as its ref
says); the node warns once that it is over its bytes only because of them. A second run,
with the backend accepting and a second video writing new blobs while the backlog replays,
delivers every packet with a blob that is there, whole, when the backend receives it."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from schnitzel import Runtime, RuntimeControl, validate_file
from schnitzel_plugins.vision.blob_store import BlobStoreNode
from tests.http_backend import LoopbackBackend, Received
from tests.runtime.harness import graph_from, steer
from tests.vision.scenes import write_scene

FRAMES = 12


def graph(video: Path, url: str) -> str:
    return f"""
nodes:
  - {{id: cam, kind: source, plugin: video_file, config: {{path: '{video}'}}}}
  - {{id: snap, kind: compute, plugin: blob_store, config: {{dir: blobs, max_bytes: 1}}}}
  - id: up
    kind: sink
    plugin: http
    config: {{url: "{url}", retry_initial_s: 0.05, retry_max_s: 0.2}}
    inbox: {{durable: {{path: state/up.db}}}}
  - {{id: log, kind: sink, plugin: jsonl, config: {{path: frames.jsonl}}}}
edges:
  - {{from: cam, to: snap}}
  - {{from: snap, to: up}}
  - {{from: snap, to: log}}
"""


def readable(ref: dict[str, Any]) -> bool:
    """The blob `ref` names is there, with the bytes the ref describes."""
    path = Path(unquote(urlparse(ref["uri"]).path))
    return path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == ref["sha256"]


def logged_refs(tmp_path: Path) -> list[dict[str, Any]]:
    """The payload_refs of the packets the last run wrote to the jsonl log (then emptied)."""
    log = tmp_path / "frames.jsonl"
    refs = [json.loads(line)["payload_ref"] for line in log.read_text().splitlines()]
    log.unlink()
    return refs


def test_blobs_that_queued_packets_name_survive_retention_until_delivered(
    tmp_path: Path, loopback_backend: LoopbackBackend
) -> None:
    first_video = write_scene(tmp_path / "first.mp4", frames=FRAMES).path
    second_video = write_scene(tmp_path / "second.mp4", frames=FRAMES, photo_side=260).path
    loopback_backend.reject_if(lambda _: True, 503)  # the backend refuses: packets wait
    seen: dict[str, Any] = {}

    async def until_every_frame_is_queued(runtime: Runtime, control: RuntimeControl) -> None:
        deadline = asyncio.get_running_loop().time() + 60  # only against a hang
        while control.snapshot()["nodes"]["up"]["durable"]["backlog"] < FRAMES:
            assert asyncio.get_running_loop().time() < deadline, "the frames never queued"
            await asyncio.sleep(0.05)
        seen["events"] = [e["message"] for e in control.events(500)]

    report = steer(
        graph_from(tmp_path, graph(first_video, loopback_backend.url)),
        tmp_path / "state",
        until_every_frame_is_queued,
    )
    first = logged_refs(tmp_path)
    assert report["nodes"]["up"]["durable"]["backlog"] == len(first) == FRAMES
    assert len({ref["uri"] for ref in first}) == FRAMES  # distinct frames, distinct blobs
    assert all(readable(ref) for ref in first)  # far over 1 byte: every one pinned
    stats = report["nodes"]["snap"]["plugin_stats"]
    assert stats["kept_pinned"] > 0 and stats["over_by_pinned"], stats
    assert stats["bytes"] == sum(ref["size"] for ref in first)
    warned = [m for m in seen["events"] if "blobs over max_bytes" in m]
    assert len(warned) == 1, seen["events"]
    assert "kept for packets not yet delivered" in warned[0]

    # The backend accepts again; each request's blob is checked as it arrives.
    arrived_whole: list[bool] = []

    def check(received: Received) -> bool:
        arrived_whole.append(readable(received.body["payload_ref"]))
        return False  # accept it

    loopback_backend.clear_rules()
    loopback_backend.reject_if(check)
    report = steer(
        graph_from(tmp_path, graph(second_video, loopback_backend.url)),
        tmp_path / "state",
        lambda *_: asyncio.sleep(0),
        stop=False,
    )
    second = logged_refs(tmp_path)
    assert report["nodes"]["up"]["durable"]["backlog"] == 0
    delivered = {p["payload_ref"]["uri"] for p in loopback_backend.packets()}
    assert delivered == {ref["uri"] for ref in first + second}
    assert len(arrived_whole) >= 2 * FRAMES and all(arrived_whole), arrived_whole.count(False)


def test_a_throttle_cannot_give_blob_store_more_calls_than_it_pins(tmp_path: Path) -> None:
    """Were a throttle able to raise concurrency above `max_concurrency`, more frames would be
    in flight than the store's last `max_concurrency` writes it keeps pinned: once over its
    bytes, a collection could delete the JPEG of a frame whose packet is in no inbox yet.
    blob_store declares `max_calls_at_once`, so without `limits.concurrency` both the
    throttle's top and `max_concurrency` are that bound."""
    from schnitzel.runtime.knobs import knob_limits

    video = write_scene(tmp_path / "scene.mp4", frames=2).path
    body = f"""
nodes:
  - {{id: cam, kind: source, plugin: video_file, config: {{path: '{video}'}}}}
  - {{id: snap, kind: compute, plugin: blob_store, config: {{dir: blobs, max_bytes: 1}}}}
  - {{id: out, kind: sink, plugin: "null"}}
edges: [{{from: cam, to: snap}}, {{from: snap, to: out}}]
"""
    runtime = Runtime(graph_from(tmp_path, body), tmp_path / "state")
    node = runtime.nodes["snap"]
    assert node.plugin.context.max_concurrency >= knob_limits(node)["concurrency"][1]
    assert knob_limits(node)["concurrency"] == (1, 8) == (1, BlobStoreNode.max_calls_at_once)


@pytest.mark.parametrize(
    ("plugin", "config", "node_options", "refused"),
    [
        (
            "events",
            "{}, kind: transform",
            "concurrency: 2",
            "concurrency 2 is more than plugin 'events' takes",
        ),
        (
            "blob_store",
            "{dir: blobs}, kind: compute",
            "limits: {concurrency: [1, 16]}",
            "limits.concurrency up to 16 is more than plugin 'blob_store' takes",
        ),
    ],
)
def test_a_graph_giving_a_plugin_more_calls_than_it_takes_is_refused(
    tmp_path: Path, plugin: str, config: str, node_options: str, refused: str
) -> None:
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        "version: 2\nnodes:\n"
        "  - {id: cam, kind: source, plugin: synthetic, config: {count: 1}}\n"
        f"  - {{id: n, plugin: {plugin}, config: {config}, {node_options}}}\n"
        '  - {id: out, kind: sink, plugin: "null"}\n'
        "edges: [{from: cam, to: n}, {from: n, to: out}]\n"
    )
    report = validate_file(graph).report
    [problem] = [p for p in report.errors if refused in p.message]
    assert "max_calls_at_once" in problem.hint and problem.where.node == "n"
