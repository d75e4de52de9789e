"""A plugin's bug in an unusual place (a malformed `Routed`, an iterable that raises, an
exception that cannot be printed, a `process_batch` that returns its input changed) fails
the packets it concerns, or stops the node: either way every packet is accounted for —
`emitted == delivered + dropped + errors + filtered` and every edge adds up — with a durable
inbox downstream as with a memory one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from schnitzel import ValidatedGraph
from tests.runtime.harness import assert_counts_add_up, graph_from, run

COUNT = 20
DURABLE = ", inbox: {durable: {path: state/out.db}}"


def mistaken_graph(tmp_path: Path, mistake: str, sink_inbox: str) -> ValidatedGraph:
    return graph_from(
        tmp_path,
        f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: {COUNT}}}}}
  - {{id: bad, kind: transform, plugin: "tests.runtime.plugins:Mistaken",
     config: {{mistake: {mistake}}}}}
  - {{id: out, kind: sink, plugin: "null"{sink_inbox}}}
edges:
  - {{from: src, to: bad}}
  - {{from: bad, to: out}}
""",
    )


def assert_every_packet_counted(report: dict[str, Any], graph: ValidatedGraph) -> None:
    totals = report["totals"]
    accounted = totals["delivered"] + totals["dropped"] + totals["errors"] + totals["filtered"]
    assert totals["emitted"] == accounted, totals
    assert totals["in_flight"] == 0, totals
    assert_counts_add_up(report, graph)


@pytest.mark.parametrize("sink_inbox", ["", DURABLE], ids=["memory", "durable"])
@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ("routed_junk", "Routed holding dict"),
        ("routed_unhashable", "Routed to port of type list"),
        ("broken_iterable", "the plugin's iterable broke"),
        ("unprintable", "<_Unprintable: str() raised RuntimeError>"),
        ("exits", "the plugin called sys.exit(3): a plugin cannot end the run"),
    ],
)
def test_a_plugin_mistake_fails_only_the_packet_it_concerns(
    tmp_path: Path, mistake: str, message: str, sink_inbox: str
) -> None:
    graph = mistaken_graph(tmp_path, mistake, sink_inbox)
    report = run(graph, tmp_path)
    bad = report["nodes"]["bad"]
    assert report["stop_reason"] == "sources_exhausted", report["stop_detail"]
    assert (bad["in"], bad["out"], bad["errors"]) == (COUNT, COUNT - 1, 1), bad
    assert message in bad["recent_errors"][0]["message"], bad["recent_errors"]
    assert report["totals"]["delivered"] == COUNT - 1
    assert_every_packet_counted(report, graph)


@pytest.mark.parametrize("mistake", ["batch_grown", "batch_junk"])
def test_a_process_batch_that_puts_junk_in_its_input_falls_back_to_process(
    tmp_path: Path, mistake: str
) -> None:
    """The batch a node gives `process_batch` came from an inbox, so it is trusted when it
    comes back unchanged; changed, it is checked like any other result, and junk in it sends
    the batch through `process()` one by one (with the packets the node took, not the junk)."""
    graph = mistaken_graph(tmp_path, mistake, DURABLE)
    report = run(graph, tmp_path)
    bad = report["nodes"]["bad"]
    assert report["stop_reason"] == "sources_exhausted", report["stop_detail"]
    assert (bad["in"], bad["out"], bad["errors"]) == (COUNT, COUNT, 0), bad
    assert report["totals"]["delivered"] == COUNT
    assert_every_packet_counted(report, graph)


def test_a_process_batch_filtering_the_list_it_was_given_counts_what_it_filtered(
    tmp_path: Path,
) -> None:
    """Filtering in place and returning the same list is allowed: the packets left out are
    counted as filtered (they were counted as nothing, the inbox's list being the result)."""
    graph = mistaken_graph(tmp_path, "batch_filtered_in_place", "")
    report = run(graph, tmp_path)
    bad = report["nodes"]["bad"]
    assert (bad["in"], bad["out"], bad["filtered"]) == (COUNT, COUNT // 2, COUNT // 2), bad
    assert_every_packet_counted(report, graph)


def test_outputs_a_node_counted_but_could_not_hand_on_are_dropped_where_they_were_going(
    tmp_path: Path,
) -> None:
    """A packet whose payload cannot tell its size (`nbytes` raises) cannot go into an inbox
    bounded in bytes: the put raises and the node stops. Its outputs were already counted as
    passed on: they are counted as dropped at the inbox they never reached (node_failed),
    not lost from the report."""
    graph = mistaken_graph(tmp_path, "broken_size", ", inbox: {max_bytes: 1000000}")
    report = run(graph, tmp_path)
    assert (report["status"], report["stop_reason"]) == ("error", "error")
    assert "the payload cannot tell its size" in report["stop_detail"]
    out = report["nodes"]["out"]
    assert out["dropped_by_reason"].get("node_failed", 0) > 0, out
    assert_every_packet_counted(report, graph)


def test_packets_a_source_counted_but_could_not_hand_on_are_dropped_where_they_were_going(
    tmp_path: Path,
) -> None:
    graph = graph_from(
        tmp_path,
        """
nodes:
  - {id: src, kind: source, plugin: "tests.runtime.plugins:YieldsBrokenSize"}
  - {id: out, kind: sink, plugin: "null", inbox: {max_bytes: 1000000}}
edges:
  - {from: src, to: out}
""",
    )
    report = run(graph, tmp_path)
    assert (report["status"], report["stop_reason"]) == ("error", "error")
    out = report["nodes"]["out"]
    assert out["dropped_by_reason"].get("node_failed", 0) > 0, out
    assert_every_packet_counted(report, graph)
