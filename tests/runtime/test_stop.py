"""Stop conditions: max packets, duration, sources exhausted, stop requests, drain timeout."""

from __future__ import annotations

import asyncio
from pathlib import Path

from schnitzel import Runtime, RuntimeControl
from tests.runtime import plugins
from tests.runtime.harness import assert_counts_add_up, graph_from, run

TWO_ENDLESS = """
nodes:
  - {id: a, kind: source, plugin: synthetic}
  - {id: b, kind: source, plugin: synthetic, config: {rate_hz: 20000.0}}
  - {id: mid, kind: transform, plugin: passthrough}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: a, to: mid}
  - {from: b, to: mid}
  - {from: mid, to: out}
"""


def test_max_packets_counts_every_source_together_and_drains(tmp_path: Path) -> None:
    graph = graph_from(tmp_path, TWO_ENDLESS)
    report = run(graph, tmp_path, max_packets=12_345)
    assert report["stop_reason"] == "max_packets" and report["status"] == "ok"
    assert report["totals"]["emitted"] == 12_345
    assert report["totals"]["delivered"] == 12_345
    assert_counts_add_up(report, graph)


def test_duration_stops_endless_sources_and_drains(tmp_path: Path) -> None:
    graph = graph_from(tmp_path, TWO_ENDLESS)
    report = run(graph, tmp_path, duration_s=0.3)
    assert report["stop_reason"] == "duration"
    assert report["totals"]["emitted"] == report["totals"]["delivered"] > 0
    assert report["duration_s"] >= 0.3


def test_sources_exhausted_ends_the_run_by_itself(tmp_path: Path) -> None:
    body = """
nodes:
  - {id: a, kind: source, plugin: synthetic, config: {count: 7}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: a, to: out}
"""
    report = run(graph_from(tmp_path, body), tmp_path)
    assert report["stop_reason"] == "sources_exhausted"
    assert report["totals"] == {
        "emitted": 7,
        "delivered": 7,
        "dropped": 0,
        "errors": 0,
        "filtered": 0,
        "in_flight": 0,
    }


def test_a_stop_does_not_wait_for_a_source_waiting_on_data_that_never_comes(
    tmp_path: Path,
) -> None:
    body = """
nodes:
  - {id: quiet, kind: source, plugin: "tests.runtime.plugins:Forever"}
  - {id: slow, kind: source, plugin: synthetic, config: {rate_hz: 0.001}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: quiet, to: out}
  - {from: slow, to: out}
"""
    report = run(graph_from(tmp_path, body), tmp_path, duration_s=0.2)
    assert report["stop_reason"] == "duration"
    # A stop that waited for the sources would wait out the whole drain timeout (30 s).
    assert report["duration_s"] < 30


def test_a_drain_that_cannot_finish_times_out_and_counts_what_was_left(tmp_path: Path) -> None:
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 50}}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:Gated", inbox: {max: 100}}
edges:
  - {from: src, to: out}
"""
    graph = graph_from(tmp_path, body)

    async def scenario() -> dict:
        runtime = Runtime(graph, state_dir=tmp_path, drain_timeout_s=0.3)
        task = asyncio.create_task(runtime.run())
        while runtime.nodes["src"].metrics.emitted < 50:
            await asyncio.sleep(0.005)
        RuntimeControl(runtime).stop()
        report = await asyncio.wait_for(task, 30)
        plugins.GATES["out"].set()
        return report

    report = asyncio.run(scenario())
    out = report["nodes"]["out"]
    assert report["stop_reason"] == "signal" and report["status"] == "degraded"
    # the sink had taken all 50 into its (stuck) thread: lost as errors, not dropped unseen
    assert (out["in"], out["errors"], out["out"], out["dropped"]) == (50, 50, 0, 0)
    assert out["recent_errors"][-1]["error"] == "Abandoned"
    assert report["totals"]["in_flight"] == 0
    assert_counts_add_up(report, graph)


def test_a_paused_node_resumes_to_drain_when_the_run_stops(tmp_path: Path) -> None:
    graph = graph_from(tmp_path, TWO_ENDLESS)

    async def scenario() -> dict:
        runtime = Runtime(graph, state_dir=tmp_path)
        control = RuntimeControl(runtime)
        task = asyncio.create_task(runtime.run(duration_s=0.3))
        await asyncio.sleep(0)
        control.pause("mid")
        return await asyncio.wait_for(task, 30)

    report = asyncio.run(scenario())
    assert report["stop_reason"] == "duration"
    assert report["totals"]["in_flight"] == 0 and report["totals"]["dropped"] == 0
    assert report["totals"]["delivered"] == report["totals"]["emitted"]


def test_max_packets_on_a_loop_that_never_goes_quiet_ends_after_the_drain_timeout(
    tmp_path: Path,
) -> None:
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic}
  - {id: spin, kind: transform, plugin: passthrough}
  - {id: loop, kind: delay, plugin: delay, config: {initial: {n: 0}}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: spin}
  - {from: spin, to: loop}
  - {from: loop, to: spin}
  - {from: spin, to: out}
"""
    graph = graph_from(tmp_path, body)
    report = run(graph, tmp_path, max_packets=100, drain_timeout_s=0.3)
    assert report["stop_reason"] == "max_packets" and report["totals"]["emitted"] == 100
    assert report["totals"]["in_flight"] == 0
    abandoned = sum(n["dropped_by_reason"].get("shutdown", 0) for n in report["nodes"].values())
    assert abandoned > 0  # whatever was going round when the drain gave up
    assert_counts_add_up(report, graph)


def test_a_silent_device_read_in_a_thread_does_not_hold_up_a_stop(tmp_path: Path) -> None:
    body = """
nodes:
  - {id: dev, kind: source, plugin: "tests.runtime.plugins:GatedSource", config: {count: 5}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: dev, to: out}
"""
    report = run(graph_from(tmp_path, body), tmp_path, duration_s=0.2, drain_timeout_s=20)
    plugins.GATES["dev"].set()  # let the thread go
    assert (report["status"], report["stop_reason"]) == ("ok", "duration")
    assert report["duration_s"] < 20  # it did not wait out the drain timeout
    assert report["nodes"]["dev"]["health"] == "ok"


def test_max_packets_is_met_exactly_when_a_thread_pulled_source_ends_short(
    tmp_path: Path,
) -> None:
    # The file source reserves a whole batch before its thread reads 10 lines; the endless
    # source must wait for that reservation to come back, not end the run early.
    (tmp_path / "ten.jsonl").write_text("".join(f'{{"n": {n}}}\n' for n in range(10)))
    body = """
nodes:
  - {id: file, kind: source, plugin: jsonl, config: {path: ten.jsonl, resume: false}}
  - {id: gen, kind: source, plugin: synthetic}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: file, to: out}
  - {from: gen, to: out}
"""
    report = run(graph_from(tmp_path, body), tmp_path, max_packets=1000)
    assert report["stop_reason"] == "max_packets"
    assert report["totals"]["emitted"] == report["totals"]["delivered"] == 1000
    assert report["nodes"]["file"]["out"] == 10


def test_a_stop_while_a_plugin_hangs_in_open_ends_the_run(tmp_path: Path) -> None:
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 5}}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:HangsOnOpen"}
edges:
  - {from: src, to: out}
"""
    graph = graph_from(tmp_path, body)

    async def scenario() -> dict:
        runtime = Runtime(graph, state_dir=tmp_path)
        task = asyncio.create_task(runtime.run())
        await asyncio.sleep(0.05)
        RuntimeControl(runtime).stop()
        return await asyncio.wait_for(task, 10)

    report = asyncio.run(scenario())
    assert report["stop_reason"] == "signal" and report["totals"]["emitted"] == 0


def test_a_forced_stop_in_the_middle_of_a_fan_out_still_accounts_for_every_packet(
    tmp_path: Path,
) -> None:
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic}
  - {id: t, kind: transform, plugin: passthrough, inbox: {max: 4}}
  - {id: stuck, kind: sink, plugin: "tests.runtime.plugins:Gated", inbox: {max: 4}}
  - {id: fine, kind: sink, plugin: "null"}
edges:
  - {from: src, to: t}
  - {from: t, to: stuck}
  - {from: t, to: fine}
"""
    graph = graph_from(tmp_path, body)
    # Two packets, then stop: `stuck` holds one (and blocks the fan-out), the drain gives up.
    report = run(graph, tmp_path, max_packets=2, drain_timeout_s=0.3)
    plugins.GATES["stuck"].set()
    assert report["stop_reason"] == "max_packets" and report["totals"]["in_flight"] == 0
    assert report["nodes"]["stuck"]["abandoned"] > 0
    assert_counts_add_up(report, graph)
