"""The operator is told why an http sink retries: a real `schnitzel run` sending to a closed
loopback port shows `connection refused` in `ctl events`, in the node's health reason, its
recent errors and its `trouble` entry; a backend that comes back ends the trouble with one
`recovered` event; a dead backend does not flood the event log; HTTP 503s are said in words
and counted as retries, not errors."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schnitzel import Runtime, RuntimeControl
from schnitzel.runtime.troubles import CHANGE_EVERY_S
from tests.control.harness import GUARD_S, socket_dir
from tests.control.test_ctl_end_to_end import ctl, ctl_json, start_run, stop, until_answering
from tests.http_backend import LoopbackBackend
from tests.runtime.harness import assert_counts_add_up, graph_from


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def uplink(url: str) -> str:
    return f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{rate_hz: 200.0}}}}
  - id: out
    kind: sink
    plugin: http
    config: {{url: "{url}", retry_initial_s: 0.01, retry_max_s: 0.05,
              breaker_failures: 3, breaker_cooldown_s: 0.05, breaker_max_cooldown_s: 0.1}}
    inbox: {{durable: {{path: state/out.db}}}}
edges:
  - {{from: src, to: out}}
"""


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with socket_dir() as directory:
        yield directory


def test_connection_refused_reaches_ctl_events_and_the_node_status(
    tmp_path: Path, short_dir: Path
) -> None:
    graph_from(tmp_path, uplink(f"http://127.0.0.1:{closed_port()}/ingest"))
    sock = short_dir / "run.sock"
    state = str(tmp_path / "state")
    process = start_run(tmp_path, "--state-dir", state, "--control-socket", str(sock))
    try:
        until_answering(sock, process)

        def refused_events() -> list[dict[str, Any]]:
            events = ctl_json(sock, "events", "--limit", "500")
            return [e for e in events if e.get("node") == "out" and "refused" in e["message"]]

        wait_until(lambda: refused_events() != [])
        first = refused_events()[0]
        assert first["level"] == "warning"
        assert "connection refused" in first["message"] and "retrying" in first["message"]
        assert "connection refused" in ctl(sock, "events").stdout

        def out() -> dict[str, Any]:
            return dict(ctl_json(sock, "status")["nodes"]["out"])

        wait_until(lambda: "circuit open" in (out()["trouble"] or {}).get("reason", ""))
        node = out()
        assert node["trouble"]["retries"] >= 3 and node["retries"] >= node["trouble"]["retries"]
        assert node["errors"] == 0  # retried, not failed: the packets wait in the store
        wait_until(lambda: "connection refused" in out()["health_reason"])
        assert "retries" in out()["health_reason"] and out()["health"] != "ok"
        recent = [e for e in out()["recent_errors"] if e["error"] == "retrying"]
        assert recent and "connection refused" in recent[0]["message"]
        assert "connection refused" in ctl(sock, "status").stdout  # the text form too
        # Coalesced: hundreds of refused attempts, a handful of events.
        up_s = ctl_json(sock, "status")["duration_s"]
        told = [e for e in refused_events() if not e["message"].startswith("health ")]
        assert len(told) <= 2 + up_s / CHANGE_EVERY_S, told  # the health changes aside
    finally:
        stop(process, exit_code=4)  # its backend never answered: the run ends degraded


def test_a_backend_that_comes_back_ends_the_trouble_with_one_event(tmp_path: Path) -> None:
    backend = LoopbackBackend().start()
    backend.stop()  # down, on a port it will come back on
    graph = graph_from(tmp_path, uplink(backend.url))
    seen: dict[str, Any] = {}

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await until(lambda: any("refused" in e["message"] for e in control.events(500)))
        seen["trouble"] = control.snapshot()["nodes"]["out"]["trouble"]
        backend.start()
        await until(lambda: any("recovered" in e["message"] for e in control.events(500)))
        seen["events"] = control.events(500)
        seen["after"] = control.snapshot()["nodes"]["out"]

    try:
        report = steer_run(graph, tmp_path, steps)
    finally:
        backend.close()
    assert "connection refused" in seen["trouble"]["reason"]
    assert seen["after"]["trouble"] is None
    mine = [e for e in seen["events"] if e["node"] == "out" and e["level"] != "info"]
    ended = [e for e in seen["events"] if e["node"] == "out" and "recovered" in e["message"]]
    assert mine and len(ended) == 1 and "retries" in ended[0]["message"]
    assert report["totals"]["errors"] == 0
    assert_counts_add_up(report, graph)


def steer_run(graph: Any, tmp_path: Path, steps: Any) -> dict[str, Any]:
    async def scenario() -> dict[str, Any]:
        runtime = Runtime(graph, state_dir=tmp_path / "state")
        control = RuntimeControl(runtime)
        task = asyncio.create_task(runtime.run())
        try:
            await asyncio.wait_for(steps(runtime, control), GUARD_S * 2)
        finally:
            control.stop()
        return await asyncio.wait_for(task, GUARD_S * 2)

    return asyncio.run(scenario())


async def until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.05)


def wait_until(condition: Any) -> None:
    deadline = time.monotonic() + GUARD_S * 2
    while not condition():
        assert time.monotonic() < deadline, "hang guard"
        time.sleep(0.1)


def test_http_503_is_told_in_words_and_counted_as_retries_not_errors(tmp_path: Path) -> None:
    with LoopbackBackend() as backend:
        backend.fail_next(6, 503)
        graph = graph_from(tmp_path, uplink(backend.url).replace("rate_hz: 200.0", "count: 50"))
        runtime = Runtime(graph, state_dir=tmp_path / "state")
        report = asyncio.run(asyncio.wait_for(runtime.run(), GUARD_S * 2))
    out = report["nodes"]["out"]
    assert out["delivered"] == 50 and out["errors"] == 0
    assert out["retries"] == 6 and out["trouble"] is None  # over: the backend answered
    told = [e.message for e in runtime.events.recent if e.node == "out"]
    assert any("HTTP 503" in m for m in told), told
    assert any("recovered" in m for m in told), told
    assert_counts_add_up(report, graph)
