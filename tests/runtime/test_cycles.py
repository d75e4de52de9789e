"""Feedback cycles through delay nodes: a converging loop ends by itself, and bounded inboxes
in a cycle cannot deadlock."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from schnitzel.validate import load_graph
from tests.conftest import GRAPHS
from tests.runtime.harness import assert_counts_add_up, graph_from, run


def test_a_pid_loop_steers_the_plant_to_the_set_point_and_stops_by_itself(
    tmp_path: Path,
) -> None:
    shutil.copytree(GRAPHS, tmp_path / "graphs", ignore=shutil.ignore_patterns("out"))
    graph = load_graph(tmp_path / "graphs" / "feedback.yaml")
    report = run(graph, tmp_path)
    assert report["stop_reason"] == "sources_exhausted" and report["status"] == "ok"
    readings = [
        json.loads(line)["payload"]
        for line in (tmp_path / "graphs" / "out" / "feedback.jsonl").read_text().splitlines()
    ]
    assert len(readings) == 200
    assert readings[0]["value"] < 18  # it starts far from the set point ...
    assert abs(readings[-1]["value"] - 21.5) < 0.05  # ... and ends on it
    # every set point made one control output; every reading went round the loop once
    nodes = report["nodes"]
    assert nodes["controller"]["in"] == 200 + nodes["loop"]["out"]
    assert nodes["loop"]["out"] == 200 + 1  # the initial reading, then one per step
    assert_counts_add_up(report, graph)


@pytest.mark.slow
@pytest.mark.parametrize("inbox", [1, 2, 7])
def test_bounded_inboxes_in_a_cycle_cannot_deadlock(inbox: int, tmp_path: Path) -> None:
    # Each packet goes round the loop 5 times through inboxes far smaller than what is in
    # flight, with `block` everywhere. Edges leaving the delay node never block, so the loop
    # always moves; only the source is held back. A deadlock would trip the hang guard.
    body = f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: 3000, payload: {{hops: 5}}}}}}
  - {{id: hop, kind: transform, plugin: "tests.runtime.plugins:CountDown",
     inbox: {{max: {inbox}}}}}
  - {{id: fan, kind: transform, plugin: passthrough, inbox: {{max: {inbox}}}}}
  - {{id: loop, kind: delay, plugin: delay, config: {{initial: {{hops: 0}}}},
     inbox: {{max: {inbox}}}}}
  - {{id: out, kind: sink, plugin: "null", inbox: {{max: {inbox}}}}}
edges:
  - {{from: src, to: hop}}
  - {{from: hop, to: fan}}
  - {{from: fan, to: loop}}
  - {{from: fan, to: out}}
  - {{from: loop, to: hop}}
"""
    graph = graph_from(tmp_path, body)
    report = run(graph, tmp_path)
    assert report["stop_reason"] == "sources_exhausted"
    assert report["totals"]["dropped"] == 0
    assert report["nodes"]["out"]["in"] == 3000 * 5  # hops 4, 3, 2, 1, 0
    assert report["nodes"]["hop"]["filtered"] == 3000 + 1  # each at 0 hops, and the initial
    assert_counts_add_up(report, graph)
