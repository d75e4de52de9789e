"""The control object: live snapshot in the run-report shape, throttle, pause and resume."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from schnitzel import Runtime, RuntimeControl
from schnitzel.errors import ControlError
from schnitzel.runtime.runners import BATCH
from tests.runtime.harness import graph_from, steer

ENDLESS = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 2000.0}}
  - {id: mid, kind: transform, plugin: passthrough, inbox: {max: 64}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: mid}
  - {from: mid, to: out}
"""
REPORT_NODE_KEYS = {
    "kind", "plugin", "in", "out", "dropped", "errors", "queue_depth", "queue_depth_max",
    "latency_ms", "health",
}  # fmt: skip


async def _until(predicate: Any, guard_s: float = 60.0) -> None:
    async with asyncio.timeout(guard_s):
        while not predicate():
            await asyncio.sleep(0.01)


def _steer(tmp_path: Path, steps: Any) -> dict[str, Any]:
    return steer(graph_from(tmp_path, ENDLESS), tmp_path, steps, guard_s=60)


def test_snapshot_has_the_run_report_shape_while_running(tmp_path: Path) -> None:
    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await _until(lambda: runtime.nodes["out"].metrics.delivered > 100)
        live = control.snapshot()
        assert live["status"] == "running" and live["stop_reason"] is None
        assert set(live["totals"]) >= {"emitted", "delivered", "dropped", "errors"}
        for node in live["nodes"].values():
            assert set(node) >= REPORT_NODE_KEYS
            assert set(node["latency_ms"]) == {"p50", "p99"}
        json.dumps(live)  # a snapshot goes over sockets as JSON as it is

    report = _steer(tmp_path, steps)
    assert report["status"] == "ok" and report["stop_reason"] == "signal"


def test_a_paused_source_produces_nothing_until_resumed(tmp_path: Path) -> None:
    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        source = runtime.nodes["src"].metrics
        await _until(lambda: source.emitted > 10)
        assert control.pause("src")["paused"] == {"before": False, "after": True}
        held = source.emitted
        await asyncio.sleep(0.3)  # a window to see packets in, were any produced
        # At most the one batch the source had already been granted when the pause came (on a
        # busy machine it may not be out yet); at 2000/s, 600 in this window otherwise.
        assert source.emitted - held <= BATCH
        assert control.snapshot()["nodes"]["src"]["paused"] is True
        control.resume("src")
        await _until(lambda: source.emitted > held)
        messages = [e["message"] for e in control.events()]
        assert any(m.startswith("paused by ") for m in messages)
        assert any(m.startswith("resumed by ") for m in messages)

    _steer(tmp_path, steps)


def test_a_paused_node_lets_its_inbox_fill_and_holds_the_source_back(tmp_path: Path) -> None:
    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        control.throttle("src", None)
        control.pause("mid")
        await _until(lambda: len(runtime.nodes["mid"].inbox or ()) == 64)
        await asyncio.sleep(0.1)
        assert runtime.nodes["mid"].metrics.processed == 0
        control.resume("mid")
        await _until(lambda: runtime.nodes["out"].metrics.delivered > 64)

    report = _steer(tmp_path, steps)
    assert report["totals"]["dropped"] == 0
    assert report["nodes"]["mid"]["queue_depth_max"] == 64


def test_throttle_paces_a_source_to_the_new_rate(tmp_path: Path) -> None:
    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        source = runtime.nodes["src"].metrics
        await _until(lambda: source.emitted > 10)
        answer = control.throttle("src", 0.5)
        assert answer == {"node": "src", "changes": {"rate_hz": {"before": 2000.0, "after": 0.5}}}
        held, started = source.emitted, time.monotonic()
        await asyncio.sleep(0.3)  # a window to count packets in
        # One permit per 2 s over the time that really passed (a busy machine may stretch the
        # window), plus one already earned and the batch granted before the throttle came (on
        # a busy machine it may not be out yet); at 2000/s, 600 in this window otherwise.
        allowed = BATCH + 1 + 0.5 * (time.monotonic() - started)
        assert source.emitted - held <= allowed
        assert control.snapshot()["nodes"]["src"]["rate_hz"] == 0.5

    _steer(tmp_path, steps)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (lambda c: c.throttle("mid", 10.0), "rate_hz paces sources only"),
        (lambda c: c.throttle("src", 0.0), r"outside the allowed range \[0.001, 1000000\]"),
        (lambda c: c.throttle("src", float("nan")), "must be a number of packets per second"),
        (lambda c: c.throttle("src", "fast"), "must be a number of packets per second"),
        (lambda c: c.pause("camera"), "no node 'camera' in this graph; nodes: mid, out, src"),
    ],
)
def test_commands_that_cannot_apply_say_why(command: Any, message: str, tmp_path: Path) -> None:
    control = RuntimeControl(Runtime(graph_from(tmp_path, ENDLESS), state_dir=tmp_path))
    with pytest.raises(ControlError, match=message):
        command(control)


SECRETS = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 5.0}}
  - id: ingest
    kind: sink
    plugin: http
    config:
      url: "http://ingest:s3cr3t-pw@127.0.0.1:9/x"
      token_env: INGEST_TOKEN
      headers:
        X-API-Key: AKIA-LEAKED
        Proxy-Authorization: "Basic dXNlcjpwdw=="
        X-Auth-Token: tok123
        Cookie: "session=abc"
        X-Site: north
  - id: backup
    kind: sink
    plugin: http
    config:
      url: "http://user:pw@backup.example/x?site=north"
      headers: {Authorization: "Bearer eyJ-LEAKED"}
edges:
  - {from: src, to: ingest}
  - {from: src, to: backup}
"""


def test_describe_masks_secret_headers_and_url_passwords_but_keeps_names_of_env_vars(
    tmp_path: Path,
) -> None:
    control = RuntimeControl(Runtime(graph_from(tmp_path, SECRETS), state_dir=tmp_path))
    configs = {node["id"]: node["config"] for node in control.describe()["nodes"]}
    ingest, backup = configs["ingest"], configs["backup"]
    assert ingest["headers"] == {
        "X-API-Key": "***",
        "Proxy-Authorization": "***",
        "X-Auth-Token": "***",
        "Cookie": "***",
        "X-Site": "north",
    }
    assert backup["headers"] == {"Authorization": "***"}
    assert ingest["url"] == "http://ingest:***@127.0.0.1:9/x"
    assert backup["url"] == "http://user:***@backup.example/x?site=north"
    assert ingest["token_env"] == "INGEST_TOKEN"  # where the token is, not the token
    shown = json.dumps(configs)
    for secret in ("AKIA-LEAKED", "dXNlcjpwdw", "tok123", "session=abc", "s3cr3t-pw", "eyJ"):
        assert secret not in shown
