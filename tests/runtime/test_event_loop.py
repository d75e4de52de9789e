"""The event loop a run goes on (`--loop auto|asyncio|uvloop`, `SCHNITZEL_LOOP`): which one is
chosen, the error when uvloop is asked for and missing, and a CI-sized subset of the runtime on
uvloop — paced sources with a throttle, an async source, a compute node's threads, a durable
inbox kept across two runs, an http sink to a real loopback backend, and `schnitzel run --loop
uvloop` serving `schnitzel ctl` and draining on SIGTERM. The rest of the suite runs on uvloop
with `SCHNITZEL_LOOP=uvloop` (docs/testing.md)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import uvloop

from schnitzel import Runtime, RuntimeControl
from schnitzel.launch.event_loop import EventLoopUnavailable, choose_loop, loop_factory
from schnitzel.launch.run_command import run_loop
from tests.conftest import REPO, SCHNITZEL
from tests.http_backend import LoopbackBackend
from tests.runtime import plugins
from tests.runtime.harness import HEADER, TEST_PLUGINS, assert_counts_add_up, graph_from

GUARD_S = 60.0
"""Hang guard only: nothing here waits for a set amount of real time."""


def hide_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a box without the fast extra: `import uvloop` fails."""
    monkeypatch.setitem(sys.modules, "uvloop", None)


# --- the choice ------------------------------------------------------------------------------


def test_auto_takes_uvloop_where_it_is_installed_and_asyncio_where_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert choose_loop(None, {}) == "uvloop"
    assert choose_loop("auto", {}) == "uvloop"
    hide_uvloop(monkeypatch)
    assert choose_loop(None, {}) == "asyncio"
    assert choose_loop("auto", {"SCHNITZEL_LOOP": "auto"}) == "asyncio"


def test_the_option_wins_over_the_environment_and_the_environment_over_auto() -> None:
    assert choose_loop("asyncio", {"SCHNITZEL_LOOP": "uvloop"}) == "asyncio"
    assert choose_loop("uvloop", {"SCHNITZEL_LOOP": "asyncio"}) == "uvloop"
    assert choose_loop(None, {"SCHNITZEL_LOOP": "asyncio"}) == "asyncio"
    assert choose_loop(None, {"SCHNITZEL_LOOP": " UVLOOP "}) == "uvloop"
    assert choose_loop(None, {"SCHNITZEL_LOOP": ""}) == "uvloop"  # set but empty: auto


def test_uvloop_asked_for_where_it_is_missing_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hide_uvloop(monkeypatch)
    with pytest.raises(EventLoopUnavailable, match=r"--loop asks for uvloop.*schnitzel\[fast\]"):
        choose_loop("uvloop", {})
    with pytest.raises(EventLoopUnavailable, match=r"SCHNITZEL_LOOP asks for uvloop"):
        choose_loop(None, {"SCHNITZEL_LOOP": "uvloop"})


def test_an_unknown_loop_in_the_environment_names_the_variable_and_the_choices() -> None:
    with pytest.raises(
        EventLoopUnavailable, match=r"SCHNITZEL_LOOP='tokio'.*auto, asyncio, uvloop"
    ):
        choose_loop(None, {"SCHNITZEL_LOOP": "tokio"})


def test_run_loop_runs_the_coroutine_on_the_chosen_loop() -> None:
    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    assert run_loop(which(), "uvloop") == "uvloop"
    assert run_loop(which(), "asyncio") == "asyncio"
    with pytest.raises(ValueError, match="unknown event loop"):
        loop_factory("auto")  # auto is resolved by choose_loop first


# --- the runtime on uvloop -------------------------------------------------------------------


def on_uvloop(
    graph_body: str,
    tmp_path: Path,
    steps: Any = None,
    max_packets: int | None = None,
    drain_timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Run the graph on uvloop through `run_loop`, as `schnitzel run --loop uvloop` does,
    while `steps(runtime, control)` steers it (the run then ends by itself)."""
    graph = graph_from(tmp_path, graph_body)

    async def scenario() -> dict[str, Any]:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        runtime = Runtime(graph, state_dir=tmp_path / "state", drain_timeout_s=drain_timeout_s)
        task = asyncio.create_task(runtime.run(max_packets=max_packets))
        if steps is not None:
            await steps(runtime, RuntimeControl(runtime))
        return dict(await asyncio.wait_for(task, GUARD_S))

    report = run_loop(scenario(), "uvloop")
    assert_counts_add_up(report, graph)
    return report


async def _until(predicate: Any) -> None:
    async with asyncio.timeout(GUARD_S):
        while not predicate():
            await asyncio.sleep(0.005)


def test_paced_async_and_threaded_nodes_run_on_uvloop_and_a_throttle_wakes_a_source(
    tmp_path: Path,
) -> None:
    body = f"""
nodes:
  - {{id: slow, kind: source, plugin: synthetic, config: {{count: 50, rate_hz: 0.001}}}}
  - {{id: paced, kind: source, plugin: synthetic, config: {{count: 300, rate_hz: 3000}}}}
  - {{id: ticks, kind: source, plugin: "{TEST_PLUGINS}:AsyncTicks", config: {{count: 200}}}}
  - {{id: model, kind: compute, plugin: "{TEST_PLUGINS}:SlowCompute", config: {{delay_s: 0}},
     concurrency: 4}}
  - {{id: out, kind: sink, plugin: "null"}}
edges:
  - {{from: slow, to: model}}
  - {{from: paced, to: model}}
  - {{from: ticks, to: model}}
  - {{from: model, to: out}}
"""

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        slow = runtime.nodes["slow"].metrics
        await _until(lambda: slow.emitted >= 1)  # its next permit is 1,000 s away
        control.throttle("slow", 100_000.0)  # wakes it from its wait on the PaceClock

    report = on_uvloop(body, tmp_path, steps)
    assert (report["status"], report["stop_reason"]) == ("ok", "sources_exhausted")
    assert report["totals"]["delivered"] == 50 + 300 + 200
    assert report["nodes"]["slow"]["rate_hz"] == 100_000.0


def test_a_durable_inbox_on_uvloop_keeps_its_backlog_and_replays_it_first(
    tmp_path: Path,
) -> None:
    body = f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: 300, source_id: SOURCE}}}}
  - {{id: out, kind: sink, plugin: "{TEST_PLUGINS}:Backend",
     inbox: {{durable: {{path: state/out.db}}}}}}
edges:
  - {{from: src, to: out}}
"""
    plugins.DOWN.add("out")  # the backend is down: everything stays in the store
    first = on_uvloop(body.replace("SOURCE", "src"), tmp_path, max_packets=300, drain_timeout_s=1)
    assert first["nodes"]["out"]["durable"]["backlog"] == 300
    plugins.DOWN.clear()
    second = on_uvloop(body.replace("count: 300", "count: 50").replace("SOURCE", "later"), tmp_path)
    assert second["nodes"]["out"]["durable"]["replayed"] == 300
    delivered = [(p.source_id, p.seq) for p in plugins.RECORDS["out"]]
    assert delivered == [("src", n) for n in range(300)] + [("later", n) for n in range(50)]


def test_an_http_sink_on_uvloop_delivers_to_a_real_backend(
    tmp_path: Path, loopback_backend: LoopbackBackend
) -> None:
    body = f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: 300, payload: {{v: 1}}}}}}
  - {{id: up, kind: sink, plugin: http, config: {{url: "{loopback_backend.url}"}}}}
edges:
  - {{from: src, to: up}}
"""
    report = on_uvloop(body, tmp_path)
    assert report["status"] == "ok"
    assert report["totals"]["delivered"] == 300
    assert len(loopback_backend.accepted()) == 300


def test_schnitzel_run_on_uvloop_serves_ctl_and_drains_on_sigterm(tmp_path: Path) -> None:
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        HEADER
        + """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 2000}}
  - {id: out, kind: sink, plugin: jsonl, config: {path: out/run.jsonl}}
edges:
  - {from: src, to: out}
"""
    )
    sock, report_path = tmp_path / "ctl.sock", tmp_path / "report.json"
    cmd = [str(graph), "--loop", "uvloop", "--control-socket", str(sock)]
    process = subprocess.Popen(
        [*SCHNITZEL, "run", *cmd, "--report-json", str(report_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SCHNITZEL_LOOP": "asyncio"},  # the option wins
    )
    try:
        status = _ctl_status_when_served(sock)
        assert status["nodes"]["src"]["kind"] == "source"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=GUARD_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "event loop: uvloop" in stderr
    report = json.loads(report_path.read_text())
    assert (report["status"], report["stop_reason"]) == ("ok", "signal")
    lines = (tmp_path / "out" / "run.jsonl").read_text().splitlines()
    assert report["totals"]["emitted"] == report["totals"]["delivered"] == len(lines) > 0


def _ctl_status_when_served(sock: Path) -> dict[str, Any]:
    deadline = time.monotonic() + GUARD_S
    while True:
        done = subprocess.run(
            [*SCHNITZEL, "ctl", "--socket", str(sock), "status", "--json"],
            capture_output=True,
            text=True,
            timeout=GUARD_S,
            check=False,
        )
        if done.returncode == 0:
            return dict(json.loads(done.stdout))
        assert time.monotonic() < deadline, f"hang guard: {done.stderr}"
        time.sleep(0.05)


def test_schnitzel_run_refuses_uvloop_where_it_is_missing_naming_the_extra(
    tmp_path: Path,
) -> None:
    hidden = tmp_path / "no-uvloop"
    (hidden / "uvloop").mkdir(parents=True)
    (hidden / "uvloop" / "__init__.py").write_text(
        "raise ImportError('No module named uvloop (hidden by the test)')\n"
    )
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        HEADER
        + "nodes:\n  - {id: s, kind: source, plugin: synthetic}\n"
        + "  - {id: out, kind: sink, plugin: 'null'}\nedges:\n  - {from: s, to: out}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(hidden), "SCHNITZEL_LOOP": "uvloop"}
    done = subprocess.run(
        [*SCHNITZEL, "run", str(graph), "--max-packets", "5"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=GUARD_S,
        check=False,
        env=env,
    )
    assert done.returncode == 2, done.stderr
    assert "SCHNITZEL_LOOP asks for uvloop, which is not installed" in done.stderr
    assert "pip install 'schnitzel[fast]'" in done.stderr and "nothing was run" in done.stderr
    auto = subprocess.run(
        [*SCHNITZEL, "run", str(graph), "--max-packets", "5", "--loop", "auto"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=GUARD_S,
        check=False,
        env=env,
    )
    assert auto.returncode == 0, auto.stderr
    assert "event loop: asyncio" in auto.stderr  # auto falls back without a word of error
