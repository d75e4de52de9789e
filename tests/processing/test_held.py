"""The runtime's flush of plugins that hold packets (schnitzel/runtime/held.py): what they
release goes on, by port, and counts; a flush that fails is an error, not a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from schnitzel.validate import ValidatedGraph
from schnitzel.validate.validator import validate_text
from tests.runtime import plugins
from tests.runtime.harness import run

HELD = "tests.processing.held_plugins"


def _graph(tmp_path: Path, plugin: str) -> ValidatedGraph:
    text = f"""version: 2
runtime: {{allow_modules: [{HELD}, tests.runtime.plugins]}}
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: 10}}}}
  - {{id: held, kind: transform, plugin: "{HELD}:{plugin}"}}
  - {{id: even, kind: sink, plugin: "tests.runtime.plugins:Recorder"}}
  - {{id: odd, kind: sink, plugin: "tests.runtime.plugins:Recorder"}}
edges:
  - {{from: src, to: held}}
  - {{from: held.out, to: even}}
  - {{from: held.odd, to: odd}}
"""
    path = tmp_path / "graph.yaml"
    path.write_text(text)
    result = validate_text(text, source=str(path), path=path)
    assert result.graph is not None, [p.render() for p in result.report.problems]
    return result.graph


def test_what_a_flush_releases_goes_on_by_port_and_counts(tmp_path: Path) -> None:
    report = run(_graph(tmp_path, "HoldsAll"), tmp_path)
    assert [p.seq for p in plugins.RECORDS["even"]] == [0, 2, 4, 6, 8]
    assert [p.seq for p in plugins.RECORDS["odd"]] == [1, 3, 5, 7, 9]
    held = report["nodes"]["held"]
    assert (held["in"], held["filtered"], held["out"]) == (10, 10, 10)
    assert report["totals"]["delivered"] == 10


@pytest.mark.parametrize(
    ("plugin", "words"), [("FlushFails", "lost the windows"), ("FlushReturnsText", "str")]
)
def test_a_flush_that_fails_is_an_error_of_its_node(
    tmp_path: Path, plugin: str, words: str
) -> None:
    report = run(_graph(tmp_path, plugin), tmp_path)
    held = report["nodes"]["held"]
    assert held["errors"] == 1
    assert words in held["recent_errors"][-1]["message"]
    assert report["stop_reason"] == "sources_exhausted"
    assert plugins.RECORDS["even"] == [] and plugins.RECORDS["odd"] == []
