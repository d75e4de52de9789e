"""A source whose iterator calls `sys.exit()` (a library giving up) ends that source as any
exception from it would: counted, reported, the other sources go on and the run drains and
reports. Only KeyboardInterrupt still ends the run (processing/delivery calls: see
test_plugin_mistakes.py)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from tests.runtime.harness import assert_counts_add_up, graph_from, run

EXITS_AT = 5

TWO_SOURCES = """
nodes:
  - {{id: bad, kind: source, plugin: "tests.runtime.plugins:{plugin}",
     config: {{count: 100, fail_at: {fail_at}, fail_with: {fail_with}{extra}}}}}
  - {{id: good, kind: source, plugin: synthetic, config: {{count: 100}}}}
  - {{id: out, kind: sink, plugin: "null"}}
edges:
  - {{from: bad, to: out}}
  - {{from: good, to: out}}
"""


def graph_text(plugin: str, fail_with: str, extra: str = "") -> str:
    return TWO_SOURCES.format(plugin=plugin, fail_at=EXITS_AT, fail_with=fail_with, extra=extra)


# (plugin, extra config, packets made before the exit): `next_batch` makes none of the batch
# it exits in; a generator hands on what it yielded before; None: a paced `next_batch`, asked
# for as many as its permits allow (one, or more after a late wake-up), makes 0 to EXITS_AT
SOURCES: dict[str, tuple[str, str, int | None]] = {
    "generator": ("BrokenGenerator", "", EXITS_AT),
    "generator_in_thread": ("BlockingBrokenGenerator", "", EXITS_AT),
    "generator_paced": ("BrokenGenerator", ", rate_hz: 1000", EXITS_AT),  # on the pace clock
    "next_batch": ("Batches", "", 0),
    "next_batch_paced": ("Batches", ", rate_hz: 1000", None),
    "next_batch_in_thread": ("BlockingBatches", "", 0),
    "async_waiting": ("AsyncTicks", "", EXITS_AT),
    "async_ready": ("AsyncTicks", ", ready: true", EXITS_AT),
}


@pytest.mark.parametrize("source", list(SOURCES))
def test_a_source_calling_sys_exit_ends_only_that_source_counted_and_reported(
    tmp_path: Path, source: str
) -> None:
    plugin, extra, made = SOURCES[source]
    graph = graph_from(tmp_path, graph_text(plugin, "exit", extra))
    report = run(graph, tmp_path)
    bad = report["nodes"]["bad"]
    assert report["stop_reason"] == "sources_exhausted", report["stop_detail"]
    assert report["status"] == "degraded"
    if made is None:
        made = bad["out"]
        assert 0 <= made <= EXITS_AT, bad
    assert (bad["out"], bad["errors"]) == (made, 1), bad
    message = bad["recent_errors"][0]["message"]
    assert "the plugin called sys.exit(3): a plugin cannot end the run" in message
    assert report["nodes"]["out"]["in"] == made + 100
    assert report["totals"]["in_flight"] == 0
    assert_counts_add_up(report, graph)


# the run is interrupted as it starts: the node tasks it had made but not started yet are
# collected unawaited, which Python reports
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
@pytest.mark.parametrize("source", ["generator", "next_batch_in_thread", "async_ready"])
def test_a_source_raising_keyboard_interrupt_still_ends_the_run(
    tmp_path: Path, source: str
) -> None:
    plugin, extra, _made = SOURCES[source]
    graph = graph_from(tmp_path, graph_text(plugin, "interrupt", extra))
    with pytest.raises(KeyboardInterrupt):
        run(graph, tmp_path)
    gc.collect()  # those reports come now, not in a later test


def test_a_source_whose_packets_call_exits_stops_its_node_and_the_run_with_a_report(
    tmp_path: Path,
) -> None:
    """`packets()` itself calling sys.exit() (before any iterator exists) stops the node as an
    exception there does: the run stops with status error and says why."""
    body = """
nodes:
  - {id: bad, kind: source, plugin: "tests.runtime.plugins:ExitsAtStart"}
  - {id: good, kind: source, plugin: synthetic, config: {count: 100}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: bad, to: out}
  - {from: good, to: out}
"""
    graph = graph_from(tmp_path, body)
    report = run(graph, tmp_path)
    assert (report["status"], report["stop_reason"]) == ("error", "error")
    assert "the plugin called sys.exit(3)" in report["stop_detail"]
    assert report["nodes"]["bad"]["health"] == "failing"
    assert report["totals"]["in_flight"] == 0
    assert_counts_add_up(report, graph)
