"""An async source's packets are taken in batches: after a wait, everything the source
gives without waiting goes on together. Order, counts, bad records, the packet budget, a
failure and a stop behave as when each packet was pulled alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from schnitzel import Runtime, RuntimeControl
from schnitzel.contract.run_report import RunReport
from tests.runtime import plugins
from tests.runtime.harness import assert_counts_add_up, graph_from, run

GRAPH = """
nodes:
  - {{id: src, kind: source, plugin: "tests.runtime.plugins:AsyncBursts",
     config: {{script: "{script}"}}{options}}}
  - {{id: out, kind: sink, plugin: "tests.runtime.plugins:Recorder"}}
edges:
  - {{from: src, to: out}}
"""


def _seqs(script: str, steps: str = "pw") -> list[int]:
    return [seq for seq, step in enumerate(script) if step in steps]


def test_ready_packets_and_waits_arrive_in_order_and_counted(tmp_path: Path) -> None:
    script = "p" * 300 + "w" + "p" * 5 + "wwpnp" + "p" * 600 + "w"
    graph = graph_from(tmp_path, GRAPH.format(script=script, options=""))
    report = run(graph, tmp_path)
    assert [p.seq for p in plugins.RECORDS["out"]] == _seqs(script)
    assert report["nodes"]["src"]["out"] == len(_seqs(script))
    assert report["stop_reason"] == "sources_exhausted"
    assert plugins.BURSTS_CLOSED == ["src"]
    assert_counts_add_up(report, graph)


def test_a_bad_record_among_ready_packets_is_dealt_with_after_the_packets_before_it(
    tmp_path: Path,
) -> None:
    script = "ppppbppbbpw"
    graph = graph_from(tmp_path, GRAPH.format(script=script, options=", on_error: skip"))
    report = run(graph, tmp_path)
    assert [p.seq for p in plugins.RECORDS["out"]] == _seqs(script)
    assert report["nodes"]["src"]["errors"] == 3
    assert_counts_add_up(report, graph)


def test_a_bad_record_under_stop_ends_the_source_there(tmp_path: Path) -> None:
    script = "pppbppp"
    graph = graph_from(tmp_path, GRAPH.format(script=script, options=", on_error: stop"))
    report = run(graph, tmp_path)
    assert [p.seq for p in plugins.RECORDS["out"]] == [0, 1, 2]
    assert report["status"] == "error"


def test_the_packet_budget_holds_across_ready_batches(tmp_path: Path) -> None:
    script = "p" * 1000
    graph = graph_from(tmp_path, GRAPH.format(script=script, options=""))
    report = run(graph, tmp_path, max_packets=257)
    assert [p.seq for p in plugins.RECORDS["out"]] == list(range(257))
    assert report["stop_reason"] == "max_packets"
    assert_counts_add_up(report, graph)


def test_the_packet_budget_holds_when_a_pull_waits_between_two_batches(tmp_path: Path) -> None:
    script = "p" * 5 + "w" + "p" * 10
    graph = graph_from(tmp_path, GRAPH.format(script=script, options=""))
    runtime = Runtime(graph, state_dir=tmp_path / "state")
    report = asyncio.run(asyncio.wait_for(runtime.run(max_packets=8), 60))
    assert [p.seq for p in plugins.RECORDS["out"]] == list(range(8))
    assert report["stop_reason"] == "max_packets"
    assert plugins.BURSTS_CLOSED == ["src"]
    assert not [e.message for e in runtime.events.recent if e.level == "error"]
    assert_counts_add_up(report, graph)


@pytest.mark.parametrize("script", ["ppppx", "ppwppx"])
def test_a_failure_after_ready_packets_keeps_the_packets_before_it(
    tmp_path: Path, script: str
) -> None:
    graph = graph_from(tmp_path, GRAPH.format(script=script, options=""))
    report = run(graph, tmp_path)
    assert [p.seq for p in plugins.RECORDS["out"]] == _seqs(script)
    src = report["nodes"]["src"]
    assert src["errors"] == 1 and "connection lost" in src["recent_errors"][0]["message"]
    assert_counts_add_up(report, graph)


def test_a_stop_while_the_source_waits_after_a_burst_closes_it_cleanly(tmp_path: Path) -> None:
    script = "p" * 10 + "h"
    graph = graph_from(tmp_path, GRAPH.format(script=script, options=""))

    runtime = Runtime(graph, state_dir=tmp_path / "state")

    async def scenario() -> RunReport:
        task = asyncio.create_task(runtime.run())
        async with asyncio.timeout(60):  # only against hanging
            while len(plugins.RECORDS["out"]) < 10:
                await asyncio.sleep(0.01)
        RuntimeControl(runtime).stop()
        return await asyncio.wait_for(task, 60)

    report = asyncio.run(scenario())
    assert [p.seq for p in plugins.RECORDS["out"]] == list(range(10))
    assert report["stop_reason"] != "error" and report["status"] == "ok"
    assert plugins.BURSTS_CLOSED == ["src"]
    errors = [e.message for e in runtime.events.recent if e.level == "error"]
    assert not errors


def test_a_stop_while_a_burst_waits_for_room_downstream_closes_the_source_cleanly(
    tmp_path: Path,
) -> None:
    # the source's pull of the item after the burst is already waiting when the stop comes
    # while the burst still waits for room: the pull is cancelled where it waits
    script = "p" * 10 + "h"
    body = GRAPH.format(script=script, options="").replace(
        'plugin: "tests.runtime.plugins:Recorder"}',
        'plugin: "tests.runtime.plugins:Gated", inbox: {max: 2}}',
    )
    graph = graph_from(tmp_path, body)
    runtime = Runtime(graph, state_dir=tmp_path / "state")

    async def scenario() -> RunReport:
        task = asyncio.create_task(runtime.run())
        src = runtime.workers["src"]
        async with asyncio.timeout(60):  # only against hanging
            while not src.waiting_downstream and runtime.nodes["out"].metrics.received < 2:
                await asyncio.sleep(0.01)
        RuntimeControl(runtime).stop()
        plugins.GATES["out"].set()
        return await asyncio.wait_for(task, 60)

    report = asyncio.run(scenario())
    assert [p.seq for p in plugins.RECORDS["out"]] == list(range(10))
    assert report["status"] == "ok"
    assert plugins.BURSTS_CLOSED == ["src"]
    errors = [e.message for e in runtime.events.recent if e.level == "error"]
    assert not errors


def test_an_async_iterator_whose_anext_is_not_a_coroutine_gives_every_packet(
    tmp_path: Path,
) -> None:
    graph = graph_from(
        tmp_path,
        GRAPH.replace("AsyncBursts", "AsyncFutures").format(script="", options=""),
    )
    report = run(graph, tmp_path)
    assert [p.seq for p in plugins.RECORDS["out"]] == list(range(10))
    assert report["stop_reason"] == "sources_exhausted"
    assert report["status"] != "error"


def test_a_source_whose_own_timeout_expires_while_its_burst_waits_downstream_gets_it(
    tmp_path: Path,
) -> None:
    graph = graph_from(
        tmp_path,
        """
nodes:
  - {id: src, kind: source, plugin: "tests.runtime.plugins:AsyncDeadline", config: {script: ""}}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:Gated", inbox: {max: 2}}
edges:
  - {from: src, to: out}
""",
    )

    async def scenario() -> RunReport:
        runtime = Runtime(graph, state_dir=tmp_path / "state")
        run_task = asyncio.create_task(runtime.run())
        async with asyncio.timeout(60):  # hang guard only
            while "src" not in runtime.workers or runtime.workers["src"]._task is None:
                await asyncio.sleep(0.005)
            source = runtime.workers["src"]._task
            # the burst waits for room downstream; the source's timeout cancels the task
            while not (source.cancelling() or source.done()):
                await asyncio.sleep(0.005)
            plugins.GATES["out"].set()
            return await run_task

    report = asyncio.run(scenario())
    assert [p.seq for p in plugins.RECORDS["out"]] == [*range(10), 1000]
    assert report["status"] == "ok", report["nodes"]["src"]["health_reason"]
    assert_counts_add_up(report, graph)


def test_a_source_whose_own_timeout_expires_while_it_is_paused_gets_it_once_resumed(
    tmp_path: Path,
) -> None:
    graph = graph_from(
        tmp_path,
        GRAPH.replace("AsyncBursts", "AsyncHeldDeadline").format(script="", options=""),
    )

    async def scenario() -> RunReport:
        runtime = Runtime(graph, state_dir=tmp_path / "state")
        control = RuntimeControl(runtime)
        run_task = asyncio.create_task(runtime.run())
        # paused as the read after the burst starts: the burst goes on, then the pause holds
        plugins.ON_DEADLINE["src"] = lambda: control.pause("src")
        async with asyncio.timeout(60):  # hang guard only
            while "src" not in plugins.DEADLINES:
                await asyncio.sleep(0.005)
            worker = runtime.workers["src"]
            while not worker._waiting:  # in the pause
                await asyncio.sleep(0.005)
            plugins.DEADLINES["src"].reschedule(asyncio.get_running_loop().time())
            while not worker._task.cancelling() and not worker._task.done():
                await asyncio.sleep(0.005)
            control.resume("src")
            return await run_task

    report = asyncio.run(scenario())
    assert [p.seq for p in plugins.RECORDS["out"]] == [*range(10), 1000]
    assert report["status"] == "ok", report["nodes"]["src"]["health_reason"]
    assert_counts_add_up(report, graph)


HAND_FED = """
nodes:
  - {{id: src, kind: source, plugin: "tests.runtime.plugins:AsyncHandFed",
     config: {{ready: {ready}}}}}
  - {{id: out, kind: sink, plugin: "tests.runtime.plugins:{sink}"{inbox}}}
edges:
  - {{from: src, to: out}}
"""


@pytest.mark.parametrize(
    "where",
    [
        "awaited",  # the source's first Future, awaited by the pump itself
        "after_a_ready_packet",  # the pull that had to wait after a ready packet
        "while_a_burst_waits_downstream",  # that pull, never awaited: the burst ends the pump
    ],
)
def test_a_packet_a_future_holds_when_the_stop_cancels_its_wait_is_delivered_or_counted(
    tmp_path: Path, where: str
) -> None:
    """An async source's `__anext__` may give a Future. One resolved in the loop pass of a
    stop that cancels the source's wait for it (or that ends the source before it awaited
    it) holds a packet the source produced: it was neither emitted nor counted as dropped,
    so it was gone without a trace. It is delivered, or counted `shutdown` at the source."""
    ready = {"awaited": 0, "after_a_ready_packet": 1, "while_a_burst_waits_downstream": 3}[where]
    gated = where == "while_a_burst_waits_downstream"
    graph = graph_from(
        tmp_path,
        HAND_FED.format(
            ready=ready,
            sink="Gated" if gated else "Recorder",
            inbox=", inbox: {max: 1}" if gated else "",
        ),
    )
    runtime = Runtime(graph, state_dir=tmp_path / "state")

    def pending() -> bool:
        """The source asked for the Future the test resolves (and is past what came before)."""
        if len(plugins.HANDED["src"]) <= ready:
            return False
        if gated:  # the sink holds packet 0, packet 1 fills its inbox: 2 waits for room
            return runtime.nodes["out"].metrics.received == 2
        return len(plugins.RECORDS["out"]) == ready

    async def scenario() -> RunReport:
        task = asyncio.create_task(runtime.run())
        async with asyncio.timeout(60):  # only against hanging
            while not pending():
                await asyncio.sleep(0.01)
        # one loop pass: the Future holds its packet, and the stop cancels the wait for it
        plugins.HANDED["src"][ready].set_result(plugins.hand_fed_packet("src", ready))
        RuntimeControl(runtime).stop()
        plugins.GATES["out"].set()
        return await asyncio.wait_for(task, 60)

    report = asyncio.run(scenario())
    delivered = [p.seq for p in plugins.RECORDS["out"]]
    source = report["nodes"]["src"]
    counted = source["dropped_by_reason"].get("shutdown", 0)
    assert delivered == list(range(len(delivered))), delivered
    assert len(delivered) + counted == ready + 1, (delivered, source["dropped_by_reason"])
    assert report["status"] != "error", report
    assert_counts_add_up(report, graph)


def test_a_future_still_pending_when_the_stop_ends_the_source_is_cancelled(
    tmp_path: Path,
) -> None:
    """The pull the pump never awaits (the stop came while its burst waited downstream) is
    cancelled as a stop cancels a wait: a Future still pending is cancelled, so the source
    can tell its item was not taken (left pending, an item set on it later was lost)."""
    graph = graph_from(tmp_path, HAND_FED.format(ready=3, sink="Gated", inbox=", inbox: {max: 1}"))
    runtime = Runtime(graph, state_dir=tmp_path / "state")

    async def scenario() -> RunReport:
        task = asyncio.create_task(runtime.run())
        async with asyncio.timeout(60):  # only against hanging
            while len(plugins.HANDED["src"]) < 4 or runtime.nodes["out"].metrics.received < 2:
                await asyncio.sleep(0.01)
        RuntimeControl(runtime).stop()
        plugins.GATES["out"].set()
        return await asyncio.wait_for(task, 60)

    report = asyncio.run(scenario())
    assert [p.seq for p in plugins.RECORDS["out"]] == [0, 1, 2]
    assert plugins.HANDED["src"][3].cancelled()
    assert report["status"] == "ok", report
    assert_counts_add_up(report, graph)
