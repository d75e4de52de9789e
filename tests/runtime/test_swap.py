"""Hot swap and rollback on a running graph: validated first, nothing queued lost, state
handed over, every change audited; and the live throttles (sampling, concurrency)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from schnitzel import Runtime, RuntimeControl
from schnitzel.control.actor import Actor
from schnitzel.errors import ControlError, RuntimeStartError
from tests.http_backend import LoopbackBackend
from tests.runtime import plugins
from tests.runtime.harness import graph_from, steer

TEST_PLUGINS = "tests.runtime.plugins"
OPERATOR = Actor("ops", 1000, 42, "10.0.0.7 5555 10.0.0.1 22", "ctl")

UNDER_LOAD = f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: 60000}}}}
  - {{id: mid, kind: policy, plugin: dedup, config: {{window: 1000}}, inbox: {{max: 256}}}}
  - {{id: out, kind: sink, plugin: "{TEST_PLUGINS}:Recorder"}}
edges:
  - {{from: src, to: mid}}
  - {{from: mid, to: out}}
"""

TRANSFORM = UNDER_LOAD.replace(
    "{id: mid, kind: policy, plugin: dedup, config: {window: 1000}",
    "{id: mid, kind: transform, plugin: passthrough",
)

ENDLESS_TRANSFORM = TRANSFORM.replace("count: 60000", "count: null")
"""`TRANSFORM` until the test stops it: steps that take a while (a swap validates the whole
graph, then a rollback) never race the end of a finite source, however fast it runs."""

Steps = Callable[[Runtime, RuntimeControl], Awaitable[None]]


def _run(tmp_path: Path, body: str, steps: Steps, stop: bool = False) -> dict[str, Any]:
    return steer(graph_from(tmp_path, body), tmp_path / "state", steps, stop=stop)


async def _until(predicate: Callable[[], bool], guard_s: float = 60.0) -> None:
    async with asyncio.timeout(guard_s):
        while not predicate():
            await asyncio.sleep(0.005)


def _audit(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "state" / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_swapping_back_and_forth_under_load_loses_and_reorders_nothing(tmp_path: Path) -> None:
    swaps = 0

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        nonlocal swaps
        out = runtime.nodes["out"]
        while not runtime.stopping and out.metrics.delivered < 50_000:
            window = 1000 if swaps % 2 else 2000
            await control.swap("mid", "dedup", {"window": window}, actor=OPERATOR)
            swaps += 1
            await asyncio.sleep(0.002)

    report = _run(tmp_path, UNDER_LOAD, steps)
    seqs = [p.seq for p in plugins.RECORDS["out"]]
    assert seqs == list(range(60_000))  # every packet once, in order
    assert swaps >= 5, swaps
    assert report["nodes"]["mid"]["generation"] == swaps
    assert report["nodes"]["mid"]["filtered"] == 0
    assert len(_audit(tmp_path)) == swaps


def test_a_swap_to_another_plugin_and_a_rollback(tmp_path: Path) -> None:
    results: dict[str, Any] = {}

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await _until(lambda: runtime.nodes["out"].metrics.delivered > 1000)
        preview = await control.swap("mid", "sample", {"every": 2}, actor=OPERATOR, dry_run=True)
        assert preview["applied"] is False and runtime.nodes["mid"].generation == 0
        assert "-plugin: passthrough" in preview["diff"] and "+plugin: sample" in preview["diff"]
        results["swap"] = await control.swap(
            "mid", "sample", {"every": 2}, actor=OPERATOR, why="halve the load"
        )
        await asyncio.sleep(0.05)
        results["rollback"] = await control.rollback("mid", actor=OPERATOR, why="undo")
        with pytest.raises(ControlError, match=r"no swap to undo \(never swapped, or every"):
            await control.rollback("mid", actor=OPERATOR)

    report = _run(tmp_path, ENDLESS_TRANSFORM, steps, stop=True)
    swap, rollback = results["swap"], results["rollback"]
    assert swap["before"]["plugin"] == "passthrough" and swap["after"]["plugin"] == "sample"
    assert swap["generation"] == 1 and rollback["generation"] == 2
    assert rollback["after"] == {"plugin": "passthrough", "config": {}}
    assert report["nodes"]["mid"]["plugin"] == "passthrough"
    assert report["nodes"]["mid"]["filtered"] > 0  # the sample version dropped some on purpose
    entries = _audit(tmp_path)
    assert [e["action"] for e in entries] == ["swap", "rollback", "rollback"]
    assert [e["outcome"] for e in entries] == ["applied", "applied", "refused"]
    assert entries[0]["who"]["user"] == "ops" and entries[0]["who"]["ssh"].startswith("10.0.0.7")
    assert entries[0]["why"] == "halve the load"
    assert entries[0]["before"]["plugin"] == "passthrough"
    assert entries[0]["after"] == {"plugin": "sample", "config": {"every": 2}}


def test_the_swap_history_is_the_control_planes_and_the_report_reads_it(
    tmp_path: Path,
) -> None:
    seen: dict[str, bool] = {}

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await _until(lambda: runtime.nodes["out"].metrics.delivered > 1000)
        seen["before"] = runtime.snapshot()["nodes"]["mid"]["can_rollback"]
        await control.swap("mid", "sample", {"every": 2}, actor=OPERATOR)
        seen["after_swap"] = runtime.snapshot()["nodes"]["mid"]["can_rollback"]
        other = RuntimeControl(runtime)  # a second client of the same run: the same history
        await other.rollback("mid", actor=OPERATOR)
        seen["after_rollback"] = runtime.snapshot()["nodes"]["mid"]["can_rollback"]
        await other.swap("mid", "sample", {"every": 3}, actor=OPERATOR)

    report = _run(tmp_path, ENDLESS_TRANSFORM, steps, stop=True)
    assert seen == {"before": False, "after_swap": True, "after_rollback": False}
    assert report["nodes"]["mid"]["can_rollback"] is True  # the final report asks too
    assert report["nodes"]["out"]["can_rollback"] is False


def test_the_dedup_window_is_handed_over(tmp_path: Path) -> None:
    body = f"""
nodes:
  - {{id: src, kind: source, plugin: "{TEST_PLUGINS}:AsyncTicks", config: {{count: 400}}}}
  - {{id: again, kind: source, plugin: "{TEST_PLUGINS}:AsyncTicks", config: {{count: 400}}}}
  - {{id: mid, kind: policy, plugin: dedup, config: {{key: packet_id}}}}
  - {{id: out, kind: sink, plugin: "{TEST_PLUGINS}:Recorder"}}
edges:
  - {{from: src, to: mid}}
  - {{from: again, to: mid}}
  - {{from: mid, to: out}}
"""
    handed: list[bool] = []

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await _until(lambda: runtime.nodes["mid"].metrics.processed >= 100)
        result = await control.swap("mid", "dedup", {"key": "idempotency_key"}, actor=OPERATOR)
        handed.append(result["state_handed_over"])

    _run(tmp_path, body, steps)
    assert handed == [True]
    keys = [p.idempotency_key for p in plugins.RECORDS["out"]]
    assert len(keys) == len(set(keys))  # the new dedup remembered what the old one had seen


@pytest.mark.parametrize(
    ("plugin", "config", "reason"),
    [
        ("nope", {}, "nope"),  # unknown plugin: named in the validator's words
        ("dedup", {"window": 0}, "window"),
        ("dedup", {"colour": "red"}, "colour"),
        ("null", {}, "policy"),  # a sink plugin for a policy node
        ("sample", {"every": 2}, "not a policy"),
    ],
)
def test_an_invalid_swap_is_refused_and_changes_nothing(
    tmp_path: Path, plugin: str, config: dict[str, Any], reason: str
) -> None:
    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await _until(lambda: runtime.nodes["out"].metrics.delivered > 100)
        mid = runtime.nodes["mid"]
        before = mid.plugin
        with pytest.raises(ControlError, match="swap refused") as refused:
            await control.swap("mid", plugin, config, actor=OPERATOR)
        assert reason in str(refused.value) or plugin in str(refused.value)
        assert mid.plugin is before and mid.generation == 0

    _run(tmp_path, UNDER_LOAD, steps)
    entries = _audit(tmp_path)
    assert [(e["action"], e["outcome"]) for e in entries] == [("swap", "refused")]
    assert len(plugins.RECORDS["out"]) == 60_000


def test_sources_and_delays_are_not_swapped_live(tmp_path: Path) -> None:
    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        with pytest.raises(ControlError, match="needs a restart"):
            await control.swap("src", "synthetic", {"count": 5}, actor=OPERATOR)

    _run(tmp_path, UNDER_LOAD, steps)


def test_a_plugin_that_fails_to_open_leaves_the_old_one_running(tmp_path: Path) -> None:
    body = f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{rate_hz: 500.0}}}}
  - {{id: out, kind: sink, plugin: "{TEST_PLUGINS}:Recorder"}}
edges:
  - {{from: src, to: out}}
"""

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await _until(lambda: runtime.nodes["out"].metrics.delivered > 10)
        with pytest.raises(ControlError, match="could not open"):
            await control.swap("out", f"{TEST_PLUGINS}:RefusesToOpen", {}, actor=OPERATOR)
        count = runtime.nodes["out"].metrics.delivered
        await _until(lambda: runtime.nodes["out"].metrics.delivered > count + 10)

    report = _run(tmp_path, body, steps, stop=True)
    assert report["nodes"]["out"]["generation"] == 0


def test_a_blocking_node_is_swapped_between_its_thread_calls(tmp_path: Path) -> None:
    body = f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: 3000}}}}
  - id: slow
    kind: compute
    plugin: "{TEST_PLUGINS}:SlowCompute"
    config: {{delay_s: 0.0005}}
    concurrency: 2
    limits: {{concurrency: [1, 4]}}
  - {{id: out, kind: sink, plugin: "{TEST_PLUGINS}:Recorder"}}
edges:
  - {{from: src, to: slow}}
  - {{from: slow, to: out}}
"""

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await _until(lambda: runtime.nodes["out"].metrics.delivered > 200)
        await control.swap("slow", f"{TEST_PLUGINS}:SlowCompute", {"delay_s": 0.0001})
        control.throttle("slow", concurrency=4, actor=OPERATOR)

    report = _run(tmp_path, body, steps)
    assert sorted(p.seq for p in plugins.RECORDS["out"]) == list(range(3000))
    assert report["nodes"]["slow"]["throttle"]["concurrency"] == 4


def test_sampling_throttle_keeps_one_in_n_and_counts_the_rest_as_filtered(
    tmp_path: Path,
) -> None:
    body = f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: 10000}}}}
  - id: out
    kind: sink
    plugin: "{TEST_PLUGINS}:Recorder"
    limits: {{sample_every: [1, 10]}}
edges:
  - {{from: src, to: out}}
"""

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        result = control.throttle("out", sample_every=4, actor=OPERATOR)
        assert result["changes"] == {"sample_every": {"before": 1, "after": 4}}
        with pytest.raises(ControlError) as refused:
            control.throttle("out", sample_every=11, actor=OPERATOR)
        assert str(refused.value) == (
            "node 'out': sample_every 11 is outside its declared limits [1, 10]; give a value "
            "within them, or widen the node's `limits:` in the graph file (a restart applies it)"
        )

    report = _run(tmp_path, body, steps)
    out = report["nodes"]["out"]
    assert out["delivered"] + out["filtered"] == 10_000
    assert out["delivered"] == 2500
    assert [e["outcome"] for e in _audit(tmp_path)] == ["applied", "refused"]


def test_throttles_refuse_what_does_not_apply_to_the_node(tmp_path: Path) -> None:
    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        with pytest.raises(ControlError, match="paces sources only"):
            control.throttle("mid", rate_hz=5.0)
        with pytest.raises(ControlError, match="one call at a time"):
            control.throttle("mid", concurrency=2)
        with pytest.raises(ControlError, match="a source is throttled by rate_hz only"):
            control.throttle("src", sample_every=2)
        with pytest.raises(ControlError, match="say what to change"):
            control.throttle("mid")
        with pytest.raises(ControlError, match="whole number"):
            control.throttle("mid", sample_every=2.5)

    _run(tmp_path, UNDER_LOAD, steps)


def test_async_sink_concurrency_runs_calls_at_once(tmp_path: Path) -> None:
    body = f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: 400}}}}
  - id: out
    kind: sink
    plugin: "{TEST_PLUGINS}:Recorder"
    config: {{delay_s: 0.005}}
    limits: {{concurrency: [1, 8]}}
edges:
  - {{from: src, to: out}}
"""

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        control.throttle("out", concurrency=8, actor=OPERATOR)

    report = _run(tmp_path, body, steps)
    assert sorted(p.seq for p in plugins.RECORDS["out"]) == list(range(400))
    assert plugins.MOST_AT_ONCE["out"] > 1
    assert report["nodes"]["out"]["limits"]["concurrency"] == [1, 8]


def test_a_refused_state_hand_over_changes_nothing_and_closes_the_new_plugin(
    tmp_path: Path,
) -> None:
    body = TRANSFORM.replace("plugin: passthrough", f'plugin: "{TEST_PLUGINS}:KeepsState"')

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await _until(lambda: runtime.nodes["out"].metrics.delivered > 100)
        with pytest.raises(ControlError, match="refused the old one's state"):
            await control.swap("mid", f"{TEST_PLUGINS}:RefusesState", {}, actor=OPERATOR)
        assert runtime.nodes["mid"].generation == 0
        assert plugins.CLOSED == ["mid"]

    _run(tmp_path, body, steps)
    assert len(plugins.RECORDS["out"]) == 60_000


def test_two_swaps_of_one_node_at_once_run_one_after_the_other(tmp_path: Path) -> None:
    results: list[dict[str, Any]] = []

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await _until(lambda: runtime.nodes["out"].metrics.delivered > 100)
        results.extend(
            await asyncio.gather(
                control.swap("mid", "dedup", {"window": 10}, actor=OPERATOR),
                control.swap("mid", "dedup", {"window": 20}, actor=OPERATOR),
            )
        )
        await control.rollback("mid", actor=OPERATOR)
        assert runtime.nodes["mid"].plugin.config.window == 10  # back one version, not two

    _run(tmp_path, UNDER_LOAD, steps)
    assert [r["generation"] for r in results] == [1, 2]
    assert results[1]["before"]["config"] == {"window": 10}


def test_a_masked_config_sent_back_keeps_its_secrets(tmp_path: Path) -> None:
    """What `describe` shows (passwords in URLs and secret keys masked) can be sent back as
    is; a masked value that does not match what was shown is refused, never sent as ***."""
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 50.0}}
  - id: out
    kind: sink
    plugin: http
    config:
      url: "http://alice:s3cret@127.0.0.1:9/in"
      headers: {Authorization: "Bearer t0ken"}
      timeout_s: 1
      max_retries: 0
edges:
  - {from: src, to: out}
"""

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        [shown] = [n for n in control.describe()["nodes"] if n["id"] == "out"]
        assert "s3cret" not in str(shown) and "t0ken" not in str(shown)
        config = {**shown["config"], "timeout_s": 2.0}
        result = await control.swap("out", "http", config, actor=OPERATOR)
        assert "s3cret" not in str(result) and "t0ken" not in str(result)
        swapped = runtime.nodes["out"].plugin.config
        assert swapped.url == "http://alice:s3cret@127.0.0.1:9/in"
        assert swapped.headers == {"Authorization": "Bearer t0ken"}
        assert swapped.timeout_s == 2.0
        moved = {**shown["config"], "url": "http://alice:***@10.0.0.9:9/in"}
        with pytest.raises(ControlError, match="masked secret"):
            await control.swap("out", "http", moved, actor=OPERATOR)

    _run(tmp_path, body, steps, stop=True)


def test_a_huge_config_is_refused_before_it_is_validated(tmp_path: Path) -> None:
    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        config = {"window": 5, "note": ["x" * 10] * 10_000}
        with pytest.raises(ControlError, match="at most 65536"):
            await control.swap("mid", "dedup", config, actor=OPERATOR, dry_run=True)

    _run(tmp_path, UNDER_LOAD, steps)


def test_a_source_rate_outside_its_declared_limits_is_refused_at_start(tmp_path: Path) -> None:
    body = """
nodes:
  - id: src
    kind: source
    plugin: synthetic
    config: {rate_hz: 2000.0}
    limits: {rate_hz: [1, 100]}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: out}
"""
    with pytest.raises(RuntimeStartError, match=r"runs at 2000/s, outside its limits.rate_hz"):
        Runtime(graph_from(tmp_path, body), state_dir=tmp_path / "state")


@pytest.mark.slow
def test_a_durable_sink_stuck_on_a_dead_backend_is_swapped_to_a_live_one(
    tmp_path: Path, loopback_backend: LoopbackBackend
) -> None:
    """The operator's way out of an outage: point the uplink elsewhere. The old plugin keeps
    retrying its batch for ever, so the swap interrupts it; the batch goes back to the front
    of the durable inbox and the new plugin delivers everything, each packet at least once."""
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 600, rate_hz: 2000.0}}
  - id: up
    kind: sink
    plugin: http
    config: {url: "http://127.0.0.1:9/in", timeout_s: 1}
    inbox: {durable: {path: state/up.db}}
edges:
  - {from: src, to: up}
"""
    interrupted: list[str] = []

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        up = runtime.nodes["up"]
        await _until(
            lambda: up.metrics.processed > 0 and runtime.nodes["src"].metrics.emitted == 600
        )
        result = await control.swap(
            "up", "http", {"url": loopback_backend.url, "timeout_s": 1}, actor=OPERATOR
        )
        assert result["applied"]
        interrupted.extend(e["message"] for e in control.events() if "goes back" in e["message"])

    report = _run(tmp_path, body, steps)
    assert interrupted, "the swap should have interrupted the stuck batch"
    assert report["nodes"]["up"]["delivered"] == 600
    assert report["nodes"]["up"]["errors"] == 0
    keys = set(loopback_backend.count_by_key()) - {None}
    assert keys == {f"src:{n}" for n in range(600)}
