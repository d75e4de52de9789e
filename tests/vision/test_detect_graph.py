"""`video_file -> detect -> jsonl` on a real video and a real model: the detector finds the
photograph's face where it really is, the sink writes JSON without pixels, and every frame is
accounted for."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from schnitzel.errors import RuntimeStartError
from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph, validate_file
from tests.vision.conftest import NUDENET
from tests.vision.scenes import Scene, iou


def write_graph(folder: Path, video: Path, detect: str = "", sink: str = "jsonl") -> Path:
    out = "{path: detections.jsonl}" if sink == "jsonl" else "{}"
    graph = folder / "graph.yaml"
    graph.write_text(
        "version: 2\nnodes:\n"
        f"  - {{id: cam, kind: source, plugin: video_file, config: {{path: '{video}'}}}}\n"
        f"  - {{id: det, kind: compute, plugin: detect, config: {{model: '{NUDENET}'{detect}}}}}\n"
        f"  - {{id: out, kind: sink, plugin: '{sink}', config: {out}}}\n"
        "edges: [{from: cam, to: det}, {from: det, to: out}]\n"
    )
    return graph


def run(graph: Path, state: Path) -> dict:
    return asyncio.run(Runtime(load_graph(graph), state_dir=state).run())


def test_detector_finds_the_face_where_it_is_in_nine_frames_of_ten(
    scene: Scene, tmp_path: Path
) -> None:
    graph = write_graph(tmp_path, scene.path, ", classes: [FACE_FEMALE]")
    report = run(graph, tmp_path / "state")
    lines = [json.loads(line) for line in (tmp_path / "detections.jsonl").read_text().splitlines()]
    assert len(lines) == len(scene.faces) == report["totals"]["emitted"]
    assert report["totals"]["delivered"] == len(scene.faces)
    found = 0
    for line in lines:
        payload = line["payload"]
        assert line["kind"] == "detection"
        assert set(payload) == {
            "camera_id", "frame_index", "pts_s", "epoch", "width", "height", "model", "detections"
        }  # fmt: skip
        assert (payload["width"], payload["height"]) == scene.size
        truth = scene.faces[payload["frame_index"]]
        for det in payload["detections"]:
            assert det["class_name"] == "FACE_FEMALE" and det["class_id"] == 1
        if any(iou(d["bbox"], truth) >= 0.5 for d in payload["detections"]):
            found += 1
    assert found >= 0.9 * len(lines), f"the face was found in {found} of {len(lines)} frames"
    assert sorted(line["payload"]["frame_index"] for line in lines) == list(range(len(lines)))


def test_a_detect_graph_into_jsonl_validates(scene: Scene, tmp_path: Path) -> None:
    result = validate_file(write_graph(tmp_path, scene.path))
    assert result.report.problems == [], [p.render() for p in result.report.problems]


def test_raw_frames_into_a_file_sink_are_refused_with_the_way_out(
    scene: Scene, tmp_path: Path
) -> None:
    graph = tmp_path / "raw.yaml"
    graph.write_text(
        "version: 2\nnodes:\n"
        f"  - {{id: cam, kind: source, plugin: video_file, config: {{path: '{scene.path}'}}}}\n"
        "  - {id: out, kind: sink, plugin: jsonl, config: {path: frames.jsonl}}\n"
        "edges: [{from: cam, to: out}]\n"
    )
    problems = validate_file(graph).report.problems
    assert [p.code for p in problems] == ["not-portable"]
    assert "detect" in (problems[0].hint or "")
    assert "blob_store" in (problems[0].hint or "")


def test_a_missing_model_is_named_with_how_to_get_one(scene: Scene, tmp_path: Path) -> None:
    graph = tmp_path / "g.yaml"
    graph.write_text(
        write_graph(tmp_path, scene.path).read_text().replace(NUDENET, "models/yolo.onnx")
    )
    problems = validate_file(graph).report.problems
    assert [p.code for p in problems] == ["environment"]
    assert "models/yolo.onnx does not exist" in problems[0].message
    assert "docs/vision.md" in (problems[0].hint or "")


def test_an_unknown_class_name_stops_the_node_at_open_naming_the_classes(
    scene: Scene, tmp_path: Path
) -> None:
    graph = write_graph(tmp_path, scene.path, ", classes: [unicorn]", sink="null")
    with pytest.raises(RuntimeStartError, match=r"unicorn.*FACE_FEMALE"):
        run(graph, tmp_path / "state")


def test_raw_frames_into_a_durable_inbox_are_refused_but_detections_are_not(
    scene: Scene, tmp_path: Path
) -> None:
    def graph(upstream: str) -> Path:
        detect = f"  - {{id: det, kind: compute, plugin: detect, config: {{model: '{NUDENET}'}}}}\n"
        path = tmp_path / f"{upstream}.yaml"
        path.write_text(
            "version: 2\nnodes:\n"
            f"  - {{id: cam, kind: source, plugin: video_file, config: {{path: '{scene.path}'}}}}\n"
            + (detect if upstream == "det" else "")
            + "  - id: out\n    kind: sink\n    plugin: 'null'\n"
            "    inbox: {durable: {path: out.db}}\n"
            + (
                "edges: [{from: cam, to: det}, {from: det, to: out}]\n"
                if upstream == "det"
                else "edges: [{from: cam, to: out}]\n"
            )
        )
        return path

    raw = validate_file(graph("cam")).report.problems
    assert [p.code for p in raw] == ["not-portable"] and "a durable inbox" in raw[0].message
    assert validate_file(graph("det")).report.problems == []
