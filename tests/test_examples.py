"""Every example graph validates, and editors' schema validators accept it."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from schnitzel.registry.registry import PluginRegistry
from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph, validate_file
from schnitzel.validate.schema import graph_json_schema
from tests.conftest import GENERATED_INPUTS, GRAPHS, example_graphs


@pytest.fixture(scope="module")
def schema(registry: PluginRegistry) -> dict:
    schema = graph_json_schema(registry)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def test_there_are_example_graphs() -> None:
    assert len(example_graphs()) >= 4


@pytest.fixture(scope="module")
def with_generated_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Copies of the example graphs of GENERATED_INPUTS, each beside its input, made as the
    demo makes it (graphs/vision/make_scene.py)."""
    directory = tmp_path_factory.mktemp("generated-inputs")
    spec = importlib.util.spec_from_file_location("make_scene", GRAPHS / "vision" / "make_scene.py")
    assert spec is not None and spec.loader is not None
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    copies = {}
    for name, made in GENERATED_INPUTS.items():
        maker.main(directory / made)
        copies[name] = directory / name
        shutil.copy(GRAPHS / name, copies[name])
    return copies


@pytest.mark.parametrize("path", example_graphs(), ids=lambda p: p.name)
def test_example_graph_is_valid(
    path: Path, registry: PluginRegistry, with_generated_inputs: dict[str, Path]
) -> None:
    result = validate_file(with_generated_inputs.get(path.name, path), registry)
    assert result.report.problems == [], [p.render() for p in result.report.problems]
    assert result.graph is not None


@pytest.mark.parametrize("path", example_graphs(), ids=lambda p: p.name)
def test_editor_schema_accepts_example_graph(path: Path, schema: dict) -> None:
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(path.read_text()))


def test_editor_schema_checks_plugin_configs(schema: dict) -> None:
    graph = {
        "version": 2,
        "nodes": [{"id": "s", "kind": "transform", "plugin": "sample", "config": {"every": 0}}],
    }
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(graph))
    assert any("every" in str(e.absolute_path) or "minimum" in e.message for e in errors)


def test_editor_schema_refuses_unknown_keys(schema: dict) -> None:
    graph = {
        "version": 2,
        "nodes": [{"id": "s", "kind": "source", "plugin": "synthetic"}],
        "extra": 1,
    }
    assert not jsonschema.Draft202012Validator(schema).is_valid(graph)


def test_schema_command_prints_the_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "schnitzel.cli.main", "schema"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    printed = json.loads(out)
    assert printed["$schema"].endswith("2020-12/schema")
    assert "synthetic" in json.dumps(printed["$defs"]["NodeSpec"])


def test_worked_plugin_example_validates_as_the_docs_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = Path(__file__).resolve().parent.parent / "docs" / "examples"
    monkeypatch.syspath_prepend(str(examples))
    monkeypatch.setenv("SCHNITZEL_ALLOW_MODULES", "threshold_pack")
    graph = tmp_path / "threshold.yaml"
    graph.write_text(
        "version: 2\nnodes:\n"
        "  - {id: temp, kind: source, plugin: synthetic, config: {payload: {celsius: 21}}}\n"
        "  - id: hot\n    kind: policy\n    plugin: threshold_pack:Threshold\n"
        "    config: {key: celsius, above: 30}\n"
        "  - {id: out, kind: sink, plugin: 'null'}\n"
        "edges: [{from: temp, to: hot}, {from: hot, to: out}]\n"
    )
    result = validate_file(graph)
    assert result.report.problems == [], [p.render() for p in result.report.problems]
    assert result.graph is not None and result.graph.nodes["hot"].plugin.name == "threshold"


def test_worked_plugin_example_runs_as_the_docs_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = Path(__file__).resolve().parent.parent / "docs" / "examples"
    monkeypatch.syspath_prepend(str(examples))
    monkeypatch.setenv("SCHNITZEL_ALLOW_MODULES", "threshold_pack")
    readings = [{"celsius": c} for c in (21, 35, 29, 40, "hot")]
    (tmp_path / "readings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in readings))
    graph = tmp_path / "threshold.yaml"
    graph.write_text(
        "version: 2\nnodes:\n"
        "  - {id: temp, kind: source, plugin: jsonl, config: {path: readings.jsonl, "
        "kind: sensor}}\n"
        "  - id: hot\n    kind: policy\n    plugin: threshold_pack:Threshold\n"
        "    config: {key: celsius, above: 30, alert_kind: alert, annotate: {room: lab}}\n"
        "  - {id: out, kind: sink, plugin: jsonl, config: {path: alerts.jsonl}}\n"
        "edges: [{from: temp, to: hot}, {from: hot, to: out}]\n"
    )
    report = asyncio.run(Runtime(load_graph(graph), state_dir=tmp_path).run())
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [(a["kind"], a["payload"]["celsius"], a["meta"]["room"]) for a in alerts] == [
        ("alert", 35, "lab"),
        ("alert", 40, "lab"),
    ]
    keys = [a["meta"]["idempotency_key"] for a in alerts]  # set by the jsonl source
    assert [key.split(":")[-1] for key in keys] == ["1", "3"]
    hot = report["nodes"]["hot"]
    assert (hot["in"], hot["out"], hot["filtered"], hot["errors"]) == (5, 2, 2, 1)
    assert "must be a number" in hot["recent_errors"][0]["message"]
