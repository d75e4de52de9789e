"""Error policies (skip, dead_letter, stop), errors kept with their packet ids, and graphs
that cannot start refused with the reason."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from schnitzel.errors import RuntimeStartError
from schnitzel.runtime import Runtime
from tests.runtime import plugins
from tests.runtime.harness import assert_counts_add_up, graph_from, run

FLAKY = """
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: 30}}}}
  - {{id: flaky, kind: transform, plugin: "tests.runtime.plugins:Flaky", config: {{every: 3}},
     {policy}}}
  - {{id: out, kind: sink, plugin: "tests.runtime.plugins:Recorder"}}
  - {{id: dead, kind: sink, plugin: "tests.runtime.plugins:Recorder"}}
edges:
  - {{from: src, to: flaky}}
  - {{from: flaky, to: out}}
  - {{from: src, to: dead}}
"""


def test_skip_counts_each_error_keeps_its_packet_id_and_goes_on(tmp_path: Path) -> None:
    graph = graph_from(tmp_path, FLAKY.format(policy="on_error: skip"))
    report = run(graph, tmp_path)
    flaky = report["nodes"]["flaky"]
    assert flaky["errors"] == 10 and flaky["out"] == 20
    assert [p.seq for p in plugins.RECORDS["out"]] == [s for s in range(30) if s % 3]
    recent = flaky["recent_errors"]
    assert len(recent) == 10
    failed_ids = {p.packet_id for p in plugins.RECORDS["dead"] if p.seq % 3 == 0}
    assert {e["packet_id"] for e in recent} == failed_ids
    assert recent[0]["error"] == "ValueError" and "multiple of 3" in recent[0]["message"]
    assert report["status"] == "degraded" and report["stop_reason"] == "sources_exhausted"
    assert_counts_add_up(report, graph)


def test_dead_letter_sends_failed_packets_with_the_reason_to_the_named_sink(
    tmp_path: Path,
) -> None:
    body = FLAKY.format(policy="on_error: dead_letter, dead_letter: dead").replace(
        "  - {from: src, to: dead}\n", ""
    )
    graph = graph_from(tmp_path, body)
    report = run(graph, tmp_path)
    letters = plugins.RECORDS["dead"]
    assert [p.seq for p in letters] == list(range(0, 30, 3))
    assert letters[0].meta["error"] == {
        "node": "flaky",
        "error": "ValueError",
        "message": "seq 0 is a multiple of 3",
    }
    assert report["nodes"]["dead"]["in"] == 10
    assert_counts_add_up(report, graph)


def test_stop_policy_drains_and_ends_the_run_with_status_error(tmp_path: Path) -> None:
    body = FLAKY.format(policy="on_error: stop").replace("{count: 30}", "{count: null}")
    graph = graph_from(tmp_path, body)
    report = run(graph, tmp_path)
    assert report["stop_reason"] == "error" and report["status"] == "error"
    assert "flaky" in report["stop_detail"] and "multiple of 3" in report["stop_detail"]
    assert report["totals"]["in_flight"] == 0
    assert_counts_add_up(report, graph)


@pytest.mark.parametrize("plugin", ["AsyncTicks", "BrokenGenerator"])
def test_a_failing_source_ends_with_its_error_counted_while_the_others_finish(
    plugin: str, tmp_path: Path
) -> None:
    body = f"""
nodes:
  - {{id: bad, kind: source, plugin: "tests.runtime.plugins:{plugin}",
     config: {{count: 100, fail_at: 5}}}}
  - {{id: good, kind: source, plugin: synthetic, config: {{count: 100}}}}
  - {{id: out, kind: sink, plugin: "null"}}
edges:
  - {{from: bad, to: out}}
  - {{from: good, to: out}}
"""
    report = run(graph_from(tmp_path, body), tmp_path)
    bad = report["nodes"]["bad"]
    assert bad["out"] == 5 and bad["errors"] == 1
    assert bad["recent_errors"][0]["packet_id"] is None
    assert "at 5" in bad["recent_errors"][0]["message"]
    assert report["nodes"]["out"]["in"] == 105
    assert report["status"] == "degraded"


def test_a_source_error_under_stop_ends_the_run_with_status_error(tmp_path: Path) -> None:
    body = """
nodes:
  - {id: bad, kind: source, plugin: "tests.runtime.plugins:AsyncTicks",
     config: {count: 100, fail_at: 5}, on_error: stop}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: bad, to: out}
"""
    report = run(graph_from(tmp_path, body), tmp_path)
    assert (report["status"], report["stop_reason"]) == ("error", "error")


def test_a_sink_that_fails_on_some_packets_counts_them_and_delivers_the_rest(
    tmp_path: Path,
) -> None:
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 50}}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:Recorder", config: {every: 10}}
edges:
  - {from: src, to: out}
"""
    graph = graph_from(tmp_path, body)
    report = run(graph, tmp_path)
    assert report["nodes"]["out"]["errors"] == 5
    assert report["nodes"]["out"]["out"] == report["totals"]["delivered"] == 45
    assert_counts_add_up(report, graph)


def test_a_plugin_that_cannot_open_stops_the_start_with_the_node_named(tmp_path: Path) -> None:
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 5}}
  - {id: backend, kind: sink, plugin: "tests.runtime.plugins:RefusesToOpen"}
edges:
  - {from: src, to: backend}
"""
    with pytest.raises(RuntimeStartError, match=r"node 'backend' .* refused the connection"):
        run(graph_from(tmp_path, body), tmp_path)


def test_a_refusal_to_open_that_names_its_node_names_it_once(tmp_path: Path) -> None:
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 5}}
  - {id: backend, kind: sink, plugin: "tests.runtime.plugins:RefusesNamingItself"}
edges:
  - {from: src, to: backend}
"""
    with pytest.raises(RuntimeStartError) as refused:
        run(graph_from(tmp_path, body), tmp_path)
    assert str(refused.value) == (
        "node 'backend' (tests.runtime.plugins:RefusesNamingItself) could not open: backend refused"
    )


def test_a_plugin_without_processing_methods_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    """The validator names such a plugin (tests/test_validator.py); a graph built by hand,
    past the validator, is still refused before anything runs."""
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 5}}
  - {id: mid, kind: transform, plugin: passthrough}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: mid}
  - {from: mid, to: out}
"""
    graph = graph_from(tmp_path, body)
    by_hand = dataclasses.replace(graph.nodes["mid"], plugin=plugins.DeclaredOnly)
    graph = dataclasses.replace(graph, nodes={**graph.nodes, "mid": by_hand})
    with pytest.raises(RuntimeStartError) as refused:
        Runtime(graph)
    assert str(refused.value) == (
        "node 'mid': plugin 'declared-only' declares itself but does not implement process(), "
        "so it cannot run: its class needs `def process(self, packet)` "
        "(docs/plugins.md#at-run-time); install a release of its pack that has it"
    )


def test_a_node_whose_task_fails_stops_the_run_and_counts_what_it_held(tmp_path: Path) -> None:
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: null}}
  - {id: bad, kind: transform, plugin: "tests.runtime.plugins:Escapes", inbox: {max: 8}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: bad}
  - {from: bad, to: out}
"""
    graph = graph_from(tmp_path, body)
    report = run(graph, tmp_path)
    bad = report["nodes"]["bad"]
    assert (report["status"], report["stop_reason"]) == ("error", "error")
    assert "escaped the plugin" in report["stop_detail"]
    assert bad["health"] == "failing" and "stopped with an error" in bad["health_reason"]
    assert set(bad["dropped_by_reason"]) == {"node_failed"}
    assert report["totals"]["in_flight"] == 0
    assert_counts_add_up(report, graph)


def test_packets_routed_to_a_port_the_plugin_lacks_fail_one_by_one(tmp_path: Path) -> None:
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 20}}
  - {id: bad, kind: transform, plugin: "tests.runtime.plugins:MisRouted"}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: bad}
  - {from: bad, to: out}
"""
    graph = graph_from(tmp_path, body)
    report = run(graph, tmp_path)
    bad = report["nodes"]["bad"]
    assert (bad["in"], bad["out"], bad["errors"]) == (20, 0, 20)
    assert "unknown port 'nowhere'; ports: out" in bad["recent_errors"][0]["message"]
    assert_counts_add_up(report, graph)


def test_a_plugin_raising_cancelled_error_stops_its_node_instead_of_hanging_the_run(
    tmp_path: Path,
) -> None:
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 10}}
  - {id: t, kind: transform, plugin: "tests.runtime.plugins:CancelsItself"}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: t}
  - {from: t, to: out}
"""
    graph = graph_from(tmp_path, body)
    report = run(graph, tmp_path)
    assert (report["status"], report["stop_reason"]) == ("error", "error")
    assert "backend connection cancelled" in report["stop_detail"]
    assert_counts_add_up(report, graph)


def test_a_sink_mixing_async_and_plain_delivery_is_refused_at_start(tmp_path: Path) -> None:
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 5}}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:MixedSink"}
edges:
  - {from: src, to: out}
"""
    with pytest.raises(RuntimeStartError, match=r"an async deliver_batch\(\) but a plain deliver"):
        Runtime(graph_from(tmp_path, body))
