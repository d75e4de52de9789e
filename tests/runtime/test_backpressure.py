"""Backpressure reaches the source under `block`; drop policies drop what they say."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from schnitzel import Runtime, RuntimeControl
from schnitzel.runtime.runners import BATCH
from tests.runtime import plugins
from tests.runtime.harness import assert_counts_add_up, graph_from, run

GATED = """
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: {count}}}}}
  - {{id: mid, kind: transform, plugin: passthrough, inbox: {{max: 8}}}}
  - {{id: out, kind: sink, plugin: "tests.runtime.plugins:Gated",
     inbox: {{max: {max}, overflow: {overflow}}}}}
edges:
  - {{from: src, to: mid}}
  - {{from: mid, to: out}}
"""


def test_block_backpressure_reaches_the_source_and_loses_nothing(tmp_path: Path) -> None:
    graph = graph_from(tmp_path, GATED.format(count="null", max=8, overflow="block"))

    async def scenario() -> dict:
        runtime = Runtime(graph, state_dir=tmp_path)
        control = RuntimeControl(runtime)
        task = asyncio.create_task(runtime.run())
        stuck = None
        for _ in range(200):  # until the source has stopped producing (hang guard: ~2 s)
            await asyncio.sleep(0.01)
            emitted = control.snapshot()["totals"]["emitted"]
            if emitted and emitted == stuck:
                break
            stuck = emitted
        before = control.snapshot()["totals"]["emitted"]
        await asyncio.sleep(0.2)
        held = control.snapshot()
        assert held["totals"]["emitted"] == before  # the endless source is held back
        # what is held: two inboxes of 8, a batch in the sink's hand, one in mid's, one in
        # the source's (at most BATCH each)
        assert before <= 8 + 8 + 3 * BATCH
        plugins.GATES["out"].set()
        control.stop()
        return await asyncio.wait_for(task, 30)

    report = asyncio.run(scenario())
    assert report["stop_reason"] == "signal"
    assert report["totals"]["dropped"] == 0
    assert report["totals"]["delivered"] == report["totals"]["emitted"] > 0
    assert_counts_add_up(report, graph)


@pytest.mark.parametrize(
    ("overflow", "kept", "reason"),
    [("drop_new", range(10), "inbox_full"), ("drop_oldest", range(90, 100), "displaced")],
)
def test_drop_policies_drop_what_they_say(
    overflow: str, kept: range, reason: str, tmp_path: Path
) -> None:
    # The source pulls its 100 packets as one batch into an inbox of 10 while the sink's gate
    # is shut, so exactly which packets survive is decided by the policy alone.
    body = GATED.format(count=100, max=10, overflow=overflow).replace(
        "inbox: {max: 8}", "inbox: {max: 100}"
    )
    graph = graph_from(tmp_path, body)

    async def scenario() -> dict:
        runtime = Runtime(graph, state_dir=tmp_path)
        task = asyncio.create_task(runtime.run())
        for _ in range(500):
            await asyncio.sleep(0.005)
            if runtime.nodes["mid"].metrics.emitted == 100:
                break
        plugins.GATES["out"].set()
        return await asyncio.wait_for(task, 30)

    report = asyncio.run(scenario())
    delivered = [p.seq for p in plugins.RECORDS["out"]]
    assert delivered == list(kept)
    assert report["nodes"]["out"]["dropped_by_reason"] == {reason: 90}
    assert report["status"] == "degraded"
    assert_counts_add_up(report, graph)


def test_nothing_is_dropped_unless_the_graph_says_so(tmp_path: Path) -> None:
    body = """
nodes:
  - {id: fast, kind: source, plugin: synthetic, config: {count: 2000}}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:Recorder", config: {delay_s: 0.00001},
     inbox: {max: 2}}
edges:
  - {from: fast, to: out}
"""
    report = run(graph_from(tmp_path, body), tmp_path)
    assert report["totals"]["dropped"] == 0
    assert [p.seq for p in plugins.RECORDS["out"]] == list(range(2000))
    assert report["nodes"]["out"]["queue_depth_max"] <= 2
