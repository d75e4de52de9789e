"""Counts add up in every topology: emitted = delivered + dropped + filtered, node by node."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from schnitzel.validate import load_graph
from tests.conftest import GRAPHS
from tests.runtime.harness import assert_counts_add_up, assert_one_to_one, graph_from, run

TOPOLOGIES = {
    "linear": """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 5000}}
  - {id: a, kind: transform, plugin: passthrough}
  - {id: b, kind: transform, plugin: passthrough}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: a}
  - {from: a, to: b}
  - {from: b, to: out}
""",
    "fan-in-fan-out-with-drops": """
nodes:
  - {id: s1, kind: source, plugin: synthetic, config: {count: 3000}}
  - {id: s2, kind: source, plugin: synthetic, config: {count: 2000}}
  - {id: s3, kind: source, plugin: synthetic, config: {count: 1000}}
  - {id: thin, kind: transform, plugin: sample, config: {every: 3},
     inbox: {max: 64, overflow: drop_oldest}}
  - {id: fast, kind: sink, plugin: "null"}
  - {id: tiny, kind: sink, plugin: "null", inbox: {max: 4, overflow: drop_new}}
  - {id: slow, kind: sink, plugin: "tests.runtime.plugins:Recorder",
     config: {delay_s: 0.0001}, inbox: {max: 16, overflow: drop_new}}
edges:
  - {from: s1, to: thin}
  - {from: s2, to: thin}
  - {from: s3, to: thin}
  - {from: thin, to: fast}
  - {from: thin, to: tiny}
  - {from: thin, to: slow}
""",
    "diamond-with-dedup": """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 4000}}
  - {id: left, kind: transform, plugin: passthrough}
  - {id: right, kind: transform, plugin: sample, config: {every: 2}}
  - {id: unique, kind: policy, plugin: dedup, inbox: {max: 8}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: left}
  - {from: src, to: right}
  - {from: left, to: unique}
  - {from: right, to: unique}
  - {from: unique, to: out}
""",
    "errors-dead-lettered": """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 1000}}
  - {id: flaky, kind: transform, plugin: "tests.runtime.plugins:Flaky", config: {every: 7},
     on_error: dead_letter, dead_letter: dead}
  - {id: out, kind: sink, plugin: "null"}
  - {id: dead, kind: sink, plugin: "tests.runtime.plugins:Recorder"}
edges:
  - {from: src, to: flaky}
  - {from: flaky, to: out}
""",
    "blocking-compute-in-threads": """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 300}}
  - {id: model, kind: compute, plugin: "tests.runtime.plugins:SlowCompute",
     config: {delay_s: 0.0005}, concurrency: 3, inbox: {max: 16}}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:Recorder"}
edges:
  - {from: src, to: model}
  - {from: model, to: out}
""",
}


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_counts_add_up_in_every_topology(name: str, tmp_path: Path) -> None:
    graph = graph_from(tmp_path, TOPOLOGIES[name])
    report = run(graph, tmp_path)
    assert report["stop_reason"] == "sources_exhausted"
    assert_counts_add_up(report, graph)
    for node_id, node in report["nodes"].items():
        if node["kind"] in ("transform", "policy", "compute"):
            assert_one_to_one(report, node_id)
        assert node["queue_depth"] == 0
    assert report["totals"]["in_flight"] == 0


def test_fan_in_drops_are_counted_by_reason_and_nothing_else_is_lost(tmp_path: Path) -> None:
    graph = graph_from(tmp_path, TOPOLOGIES["fan-in-fan-out-with-drops"])
    report = run(graph, tmp_path)
    nodes = report["nodes"]
    assert nodes["fast"]["in"] == nodes["thin"]["out"]  # block: the fast sink got everything
    assert set(nodes["tiny"]["dropped_by_reason"]) <= {"inbox_full"}
    assert set(nodes["thin"]["dropped_by_reason"]) <= {"displaced"}
    assert report["status"] in ("ok", "degraded")


@pytest.mark.slow
@pytest.mark.parametrize("example", ["demo.yaml", "fan.yaml", "feedback.yaml"])
def test_example_graphs_run_to_the_end_with_counts_adding_up(example: str, tmp_path: Path) -> None:
    shutil.copytree(GRAPHS, tmp_path / "graphs", ignore=shutil.ignore_patterns("out"))
    graph = load_graph(tmp_path / "graphs" / example)
    report = run(graph, tmp_path)
    assert report["stop_reason"] == "sources_exhausted"
    assert_counts_add_up(report, graph)
    assert report["totals"]["errors"] == 0
    written = tmp_path / "graphs" / "out" / example.replace(".yaml", ".jsonl")
    archive = next(n for n in report["nodes"].values() if n["plugin"] == "jsonl")
    assert len(written.read_text().splitlines()) == archive["out"]
