"""graphs/vision/detect_file.yaml validates and runs as its comments say, once its video is
there (the repository ships neither the video nor the model: the test writes the one and the
vision-test extra installs the other)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import jsonschema
import yaml

from schnitzel.registry.registry import PluginRegistry
from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph, validate_file
from schnitzel.validate.schema import graph_json_schema
from tests.vision.scenes import iou, write_scene

EXAMPLE = Path(__file__).resolve().parents[2] / "graphs" / "vision" / "detect_file.yaml"


def test_the_example_names_its_missing_video_and_nothing_else() -> None:
    problems = validate_file(EXAMPLE).report.problems
    assert [(p.code, "media/street.mp4" in p.message) for p in problems] == [("environment", True)]


def test_the_example_runs_and_finds_the_face(tmp_path: Path) -> None:
    graph = tmp_path / EXAMPLE.name
    shutil.copy(EXAMPLE, graph)
    (tmp_path / "media").mkdir()
    scene = write_scene(tmp_path / "media" / "street.mp4", frames=12)
    assert validate_file(graph).report.problems == []
    jsonschema.Draft202012Validator(graph_json_schema(PluginRegistry.from_entry_points())).validate(
        yaml.safe_load(graph.read_text())
    )
    report = asyncio.run(Runtime(load_graph(graph), state_dir=tmp_path / "state").run())
    assert report["status"] == "ok"
    lines = [json.loads(x) for x in (tmp_path / "detections.jsonl").read_text().splitlines()]
    assert len(lines) == len(scene.faces)
    hits = sum(
        any(
            iou(d["bbox"], scene.faces[x["payload"]["frame_index"]]) >= 0.5
            for d in x["payload"]["detections"]
        )
        for x in lines
    )
    assert hits >= 0.9 * len(lines)
