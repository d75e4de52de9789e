"""A blocking source whose `next_batch` never returns (a camera read, a socket recv that hangs)
does not hold a stop: the run ends within the pull's grace, delivers what the source handed on
before, says which source it left behind, and does not close the plugin under its running
call (closing a device another thread is reading could crash it or corrupt what it returns)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from schnitzel import Runtime
from schnitzel.runtime.stop_reason import StopReason
from tests.runtime import plugins
from tests.runtime.harness import assert_counts_add_up, graph_from

GUARD_S = 60.0
"""Only against a hung test."""

STUCK = """
nodes:
  - {id: cam, kind: source, plugin: "tests.runtime.plugins:Stuck", config: {count: 10}}
  - {id: good, kind: source, plugin: synthetic, config: {count: 20}}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:Recorder"}
edges:
  - {from: cam, to: out}
  - {from: good, to: out}
"""


def test_a_stop_leaves_a_stuck_next_batch_behind_names_it_and_keeps_what_it_emitted(
    tmp_path: Path,
) -> None:
    graph = graph_from(tmp_path, STUCK)
    runtime = Runtime(graph, state_dir=tmp_path / "state")

    async def scenario() -> Any:  # the report (a RunReport)
        running = asyncio.create_task(runtime.run())
        while not plugins.STUCK_AT["cam"].is_set():  # against hanging only: the guard below
            await asyncio.sleep(0.01)
        runtime.request_stop(StopReason.SIGNAL)
        return await asyncio.wait_for(running, GUARD_S)

    report = asyncio.run(asyncio.wait_for(scenario(), GUARD_S))  # the gate lets it go after
    assert (report["status"], report["stop_reason"]) == ("ok", "signal")
    assert report["nodes"]["cam"]["out"] == 10
    assert sorted(p.seq for p in plugins.RECORDS["out"] if p.source_id == "cam") == list(range(10))
    assert report["totals"]["delivered"] == 30 and report["totals"]["in_flight"] == 0
    assert_counts_add_up(report, graph)
    said = [(e.level, e.message) for e in runtime.events.recent if e.node == "cam"]
    assert any(level == "warning" and "left behind" in message for level, message in said), said
    assert "cam" not in plugins.CLOSED_WHILE_STUCK, "close() was called under its running pull"
