"""Reloading the graph file into a running graph: live changes applied as swaps and
throttles, anything else refused as a whole with the reason, everything audited."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from schnitzel import Runtime, RuntimeControl
from schnitzel.control.actor import Actor
from schnitzel.errors import ControlError
from tests.runtime.harness import HEADER, graph_from, steer

OPERATOR = Actor("ops", 1000, 42, None, "reload")
BODY = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 2000.0}}
  - {id: thin, kind: transform, plugin: sample, config: {every: 2}}
  - id: slow
    kind: compute
    plugin: "tests.runtime.plugins:SlowCompute"
    config: {delay_s: 0.0}
    concurrency: 1
    limits: {concurrency: [1, 4]}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: thin}
  - {from: thin, to: slow}
  - {from: slow, to: out}
"""


def _reload(
    tmp_path: Path, edit: Callable[[str], str], check: Callable[[Runtime, Any], Awaitable[None]]
) -> dict[str, Any]:
    """Run BODY, write `edit` of its file once packets flow, reload, and `check` what the
    reload did (its summary, or the ControlError that refused it)."""

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        async with asyncio.timeout(10):
            while runtime.nodes["out"].metrics.delivered < 50:
                await asyncio.sleep(0.01)
        (tmp_path / "graph.yaml").write_text(edit(HEADER + BODY))
        try:
            outcome: Any = await control.reload(actor=OPERATOR, why="tuning")
        except ControlError as exc:
            outcome = exc
        await check(runtime, outcome)

    return steer(graph_from(tmp_path, BODY), tmp_path / "state", steps, guard_s=30)


def _audit(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "state" / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_changed_config_and_concurrency_are_applied_live(tmp_path: Path) -> None:
    def edit(text: str) -> str:
        return text.replace("{every: 2}", "{every: 3}").replace("concurrency: 1", "concurrency: 3")

    async def check(runtime: Runtime, outcome: Any) -> None:
        assert not isinstance(outcome, Exception), outcome
        assert [a["node"] for a in outcome["applied"]] == ["thin", "slow"]
        assert runtime.nodes["thin"].generation == 1
        assert runtime.nodes["thin"].plugin.config.every == 3
        assert runtime.nodes["slow"].concurrency == 3

    report = _reload(tmp_path, edit, check)
    assert report["nodes"]["thin"]["generation"] == 1
    actions = [(e["action"], e["node"], e["outcome"]) for e in _audit(tmp_path)]
    assert actions == [
        ("swap", "thin", "applied"),
        ("throttle", "slow", "applied"),
        ("reload", None, "applied"),
    ]


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda t: t + "  - {from: src, to: slow}\n", "edges changed: src -> slow"),
        (
            lambda t: t.replace("{every: 2}", "{every: 3}").replace(
                "{id: out, kind: sink", "{id: out, kind: sink, inbox: {max: 8}"
            ),
            "node 'out': inbox changed",
        ),
        (
            lambda t: t.replace("rate_hz: 2000.0", "rate_hz: 10.0"),
            "node 'src': a source's rate_hz changed (change it live instead: "
            "`schnitzel ctl throttle src --rate-hz 10`)",
        ),
        (
            lambda t: t.replace("rate_hz: 2000.0", "rate_hz: 0.0123456789"),
            "`schnitzel ctl throttle src --rate-hz 0.0123456789`",
        ),
        (lambda t: t.replace("rate_hz: 2000.0", "rate_hz: null"), "--rate-hz none`"),
        (
            lambda t: t.replace("rate_hz: 2000.0", "rate_hz: 2000.0, count: 10"),
            "node 'src': a source's plugin or config changed",
        ),
        (lambda t: t.replace("{every: 2}", "{every: 0}"), "is invalid"),
        (lambda t: t.replace("nodes:", "nodes: [").replace("edges:", "]\nedges:"), "is invalid"),
        (lambda t: t.replace("concurrency: 1\n", "concurrency: 9\n"), "limits.concurrency"),
    ],
)
def test_changes_that_need_a_restart_refuse_the_whole_reload(
    tmp_path: Path, edit: Callable[[str], str], reason: str
) -> None:
    async def check(runtime: Runtime, outcome: Any) -> None:
        assert isinstance(outcome, ControlError)
        assert reason in str(outcome)
        assert all(node.generation == 0 for node in runtime.nodes.values())
        assert runtime.nodes["thin"].plugin.config.every == 2

    _reload(tmp_path, edit, check)
    entries = _audit(tmp_path)
    assert [(e["action"], e["outcome"]) for e in entries] == [("reload", "refused")]
    assert entries[0]["who"]["user"] == "ops" and entries[0]["why"] == "tuning"
