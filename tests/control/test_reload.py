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
from tests.runtime import plugins
from tests.runtime.harness import graph_from, steer

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
    tmp_path: Path,
    edit: Callable[[str], str],
    check: Callable[[Runtime, Any], Awaitable[None]],
    body: str = BODY,
) -> dict[str, Any]:
    """Run `body`, write `edit` of its file once packets flow, reload, and `check` what the
    reload did (its summary, or the ControlError that refused it)."""

    async def steps(runtime: Runtime, control: RuntimeControl, path: Path) -> None:
        await check(runtime, await _edit_and_reload(control, path, edit))

    return _steered(tmp_path, body, steps)


def _steered(
    tmp_path: Path,
    body: str,
    steps: Callable[[Runtime, RuntimeControl, Path], Awaitable[None]],
) -> dict[str, Any]:
    """Run `body` and, once packets flow, `steps(runtime, control, graph file)`."""

    async def flowing(runtime: Runtime, control: RuntimeControl) -> None:
        async with asyncio.timeout(10):
            while runtime.nodes["out"].metrics.delivered < 50:
                await asyncio.sleep(0.01)
        await steps(runtime, control, tmp_path / "graph.yaml")

    return steer(graph_from(tmp_path, body), tmp_path / "state", flowing, guard_s=30)


async def _edit_and_reload(control: RuntimeControl, path: Path, edit: Callable[[str], str]) -> Any:
    """Write `edit` of the graph file, reload; the summary, or the ControlError refusing it."""
    path.write_text(edit(path.read_text()))
    try:
        return await control.reload(actor=OPERATOR, why="tuning")
    except ControlError as exc:
        return exc


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


LIMITED = BODY.replace("{rate_hz: 2000.0}}", "{rate_hz: 2000.0}, limits: {rate_hz: [5, 4000]}}")
"""BODY with the source's rate limits declared."""


@pytest.mark.parametrize(("written", "rate"), [("10.0", 10.0), ("0.0123456789", 0.0123456789),
                                               ("null", None)])  # fmt: skip
def test_a_source_rate_changed_in_the_file_is_applied_as_a_throttle(
    tmp_path: Path, written: str, rate: float | None
) -> None:
    async def check(runtime: Runtime, outcome: Any) -> None:
        assert not isinstance(outcome, Exception), outcome
        assert outcome["applied"] == [
            {"node": "src", "throttle": {"rate_hz": {"before": 2000.0, "after": rate}}}
        ]
        assert runtime.nodes["src"].pacer is not None
        assert runtime.nodes["src"].pacer.rate_hz == rate
        assert runtime.nodes["src"].generation == 0

    _reload(tmp_path, lambda t: t.replace("rate_hz: 2000.0", f"rate_hz: {written}"), check)
    actions = [(e["action"], e["node"], e["outcome"]) for e in _audit(tmp_path)]
    assert actions == [("throttle", "src", "applied"), ("reload", None, "applied")]


def test_reloads_go_on_working_once_a_throttled_rate_is_written_into_the_file(
    tmp_path: Path,
) -> None:
    """The operator throttles as the refused reload's hint said, then writes the same rate
    into the file: that reload and every later one are applied, at the throttled rate."""

    async def steps(runtime: Runtime, control: RuntimeControl, path: Path) -> None:
        control.throttle("src", rate_hz=500.0, actor=OPERATOR)
        written = await _edit_and_reload(
            control, path, lambda t: t.replace("rate_hz: 2000.0", "rate_hz: 500.0")
        )
        assert not isinstance(written, Exception), written
        swapped = await _edit_and_reload(
            control, path, lambda t: t.replace("{every: 2}", "{every: 3}")
        )
        assert not isinstance(swapped, Exception), swapped
        assert [a["node"] for a in swapped["applied"]] == ["thin"]
        assert runtime.nodes["thin"].plugin.config.every == 3
        assert runtime.nodes["src"].pacer is not None
        assert runtime.nodes["src"].pacer.rate_hz == 500.0
        shown = {n["id"]: n for n in control.describe()["nodes"]}
        assert shown["src"]["config"]["rate_hz"] == 500.0

    _steered(tmp_path, LIMITED, steps)


def test_a_reload_keeps_the_throttles_made_since_the_previous_reload(tmp_path: Path) -> None:
    """Throttles are not in the file: a later reload that changes neither knob in the file
    leaves them as the operator set them."""

    async def steps(runtime: Runtime, control: RuntimeControl, path: Path) -> None:
        first = await _edit_and_reload(
            control,
            path,
            lambda t: t.replace("concurrency: 1", "concurrency: 3").replace(
                "rate_hz: 2000.0", "rate_hz: 1000.0"
            ),
        )
        assert not isinstance(first, Exception), first
        control.throttle("slow", concurrency=4, actor=OPERATOR)
        control.throttle("src", rate_hz=300.0, actor=OPERATOR)
        second = await _edit_and_reload(
            control, path, lambda t: t.replace("{every: 2}", "{every: 3}")
        )
        assert not isinstance(second, Exception), second
        assert [a["node"] for a in second["applied"]] == ["thin"]
        assert runtime.nodes["slow"].concurrency == 4
        assert runtime.nodes["src"].pacer is not None
        assert runtime.nodes["src"].pacer.rate_hz == 300.0

    _steered(tmp_path, BODY, steps)


def test_a_source_rate_outside_its_declared_limits_refuses_the_whole_reload(
    tmp_path: Path,
) -> None:
    def edit(text: str) -> str:
        return text.replace("rate_hz: 2000.0", "rate_hz: 9000.0").replace(
            "{every: 2}", "{every: 3}"
        )

    async def check(runtime: Runtime, outcome: Any) -> None:
        assert isinstance(outcome, ControlError)
        assert "node 'src': rate_hz 9000 is outside its declared limits [5, 4000]" in str(outcome)
        assert runtime.nodes["src"].pacer is not None
        assert runtime.nodes["src"].pacer.rate_hz == 2000.0
        assert runtime.nodes["thin"].generation == 0

    _reload(tmp_path, edit, check, body=LIMITED)
    assert [(e["action"], e["outcome"]) for e in _audit(tmp_path)] == [("reload", "refused")]


DEVICE = BODY.replace(
    "{id: src, kind: source, plugin: synthetic, config: {rate_hz: 2000.0}}",
    '{id: src, kind: source, plugin: "tests.runtime.plugins:DeviceRate", '
    "config: {rate_hz: 2000.0}}",
)


def test_a_source_config_rate_the_runtime_does_not_pace_by_needs_a_restart(
    tmp_path: Path,
) -> None:
    """The pace the runtime keeps a source to is its `rate_hz()` (docs/plugins.md), not a
    config key that happens to be named `rate_hz`. A reload took any change of that key
    alone as a throttle: here it began pacing an unpaced source at the file's rate while the
    device went on sampling at the old one, and said it applied the file. Only a source
    whose `rate_hz()` is its config's `rate_hz` is throttled; this one needs a restart."""

    async def check(runtime: Runtime, outcome: Any) -> None:
        assert isinstance(outcome, ControlError), outcome
        assert "node 'src': a source's plugin or config changed" in str(outcome)
        assert runtime.nodes["src"].pacer is not None
        assert runtime.nodes["src"].pacer.rate_hz is None

    _reload(tmp_path, lambda t: t.replace("rate_hz: 2000.0", "rate_hz: 50.0"), check, DEVICE)
    assert [(e["action"], e["outcome"]) for e in _audit(tmp_path)] == [("reload", "refused")]


def test_a_source_paced_by_its_config_rate_is_throttled_by_a_reload(tmp_path: Path) -> None:
    """The same plugin, paced by its config's `rate_hz`: that rate changes live."""
    body = DEVICE.replace("config: {rate_hz: 2000.0}", "config: {rate_hz: 2000.0, paced: true}")

    async def check(runtime: Runtime, outcome: Any) -> None:
        assert not isinstance(outcome, Exception), outcome
        assert runtime.nodes["src"].pacer is not None
        assert runtime.nodes["src"].pacer.rate_hz == 500.0

    _reload(tmp_path, lambda t: t.replace("rate_hz: 2000.0", "rate_hz: 500.0"), check, body)


def test_a_swap_never_gives_a_plugin_more_calls_at_once_than_it_takes(tmp_path: Path) -> None:
    """A node throttled to 4 calls at once, then swapped by a reload to a plugin that takes
    at most 2 (`max_calls_at_once`): the swap was validated against the file's concurrency
    (1) and kept the live 4, so the new plugin got twice the calls it rests on. The swap is
    refused (nothing applied) while the node runs at more than the plugin takes."""
    body = BODY.replace("    limits: {concurrency: [1, 4]}\n", "")

    async def steps(runtime: Runtime, control: RuntimeControl, path: Path) -> None:
        control.throttle("slow", concurrency=4, actor=OPERATOR)
        outcome = await _edit_and_reload(
            control, path, lambda t: t.replace("plugins:SlowCompute", "plugins:CappedCompute")
        )
        node = runtime.nodes["slow"]
        assert isinstance(outcome, ControlError), outcome
        assert "takes at most 2 call(s) at once" in str(outcome), outcome
        assert "throttle" in str(outcome), outcome
        assert type(node.plugin).__name__ == "SlowCompute"
        assert node.concurrency == 4

    _steered(tmp_path, body, steps)
    assert [(e["action"], e["outcome"]) for e in _audit(tmp_path)] == [
        ("throttle", "applied"),
        ("reload", "refused"),
    ]


TWO_COMPUTES = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 2000.0}}
  - {id: gate, kind: transform, plugin: sample, config: {every: 1}}
  - id: a
    kind: compute
    plugin: "tests.runtime.plugins:SlowCompute"
    concurrency: 1
    limits: {concurrency: [1, 4]}
  - id: b
    kind: compute
    plugin: "tests.runtime.plugins:SlowCompute"
    concurrency: 1
    limits: {concurrency: [1, 4]}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: gate}
  - {from: gate, to: a}
  - {from: a, to: b}
  - {from: b, to: out}
"""


def test_a_reload_that_fails_part_way_undoes_its_throttles_too(tmp_path: Path) -> None:
    """A reload swaps `gate` and throttles `a` and `b`. While the new `gate` opens, an
    operator swaps `b` to a plugin that runs one call at a time, so the reload's throttle of
    `b` fails after that of `a` was made. The reload said it 'failed and was undone' and
    rolled the swap back, but `a` kept the concurrency it was given: neither the file's last
    loaded value nor what the reply said."""
    plugins.OPEN_GATES.clear()
    plugins.OPENING.clear()

    async def steps(runtime: Runtime, control: RuntimeControl, path: Path) -> None:
        plugins.OPEN_GATES["gate"] = asyncio.Event()
        plugins.OPENING["gate"] = asyncio.Event()
        path.write_text(
            path.read_text()
            .replace(
                "plugin: sample, config: {every: 1}", 'plugin: "tests.runtime.plugins:GatedOpen"'
            )
            .replace(
                "    concurrency: 1\n    limits: {concurrency: [1, 4]}\n  - id: b",
                "    concurrency: 2\n    limits: {concurrency: [1, 4]}\n  - id: b",
            )
            .replace(
                "    concurrency: 1\n    limits: {concurrency: [1, 4]}\n  - {id: out",
                "    concurrency: 3\n    limits: {concurrency: [1, 4]}\n  - {id: out",
            )
        )
        reloading = asyncio.ensure_future(control.reload(actor=OPERATOR, why="tuning"))
        await asyncio.wait_for(plugins.OPENING["gate"].wait(), 30)
        await control.swap("b", "tests.runtime.plugins:InlineCompute", {}, actor=OPERATOR)
        plugins.OPEN_GATES["gate"].set()
        with pytest.raises(ControlError, match="failed and was undone"):
            await reloading
        assert runtime.nodes["a"].concurrency == 1
        assert runtime.nodes["gate"].generation == 2  # swapped, and rolled back

    _steered(tmp_path, TWO_COMPUTES, steps)


THREE_STAGES = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 2000.0}}
  - {id: t0, kind: transform, plugin: "tests.runtime.plugins:GatedOpen"}
  - {id: t1, kind: transform, plugin: "tests.runtime.plugins:GatedOpen"}
  - {id: t2, kind: transform, plugin: sample, config: {every: 1}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: t0}
  - {from: t0, to: t1}
  - {from: t1, to: t2}
  - {from: t2, to: out}
"""


def test_a_rollback_that_fails_leaves_the_others_undone_and_is_said(tmp_path: Path) -> None:
    """A reload swaps t0, t1 and t2; t2's new plugin does not open, so the reload is undone,
    and t1's old plugin no longer opens either: its rollback fails. The other rollback (t0)
    is still made, the reload is answered and audited as failed, naming t1 as not put back,
    instead of the rollback's error escaping with t0 left swapped and no audit entry."""
    plugins.FAIL_OPEN.clear()

    async def steps(runtime: Runtime, control: RuntimeControl, path: Path) -> None:
        path.write_text(
            path.read_text()
            .replace(
                '{id: t0, kind: transform, plugin: "tests.runtime.plugins:GatedOpen"}',
                "{id: t0, kind: transform, plugin: passthrough}",
            )
            .replace(
                '{id: t1, kind: transform, plugin: "tests.runtime.plugins:GatedOpen"}',
                "{id: t1, kind: transform, plugin: passthrough}",
            )
            .replace(
                "plugin: sample, config: {every: 1}", 'plugin: "tests.runtime.plugins:GatedOpen"'
            )
        )
        plugins.FAIL_OPEN.update({"t1", "t2"})  # t1's old plugin and t2's new one
        try:
            with pytest.raises(ControlError, match="could not be put back: 't1'") as raised:
                await control.reload(actor=OPERATOR, why="tuning")
        finally:
            plugins.FAIL_OPEN.clear()
        assert "no longer opens" in str(raised.value)
        assert runtime.nodes["t0"].generation == 2  # swapped, and rolled back
        assert type(runtime.nodes["t0"].plugin).__name__ == "GatedOpen"
        assert type(runtime.nodes["t1"].plugin).__name__ != "GatedOpen"  # could not go back
        # the running graph says what runs: t1 the file's new version, t0 its old one again
        assert runtime.graph.nodes["t1"].spec.plugin == "passthrough"
        assert runtime.graph.nodes["t0"].spec.plugin == "tests.runtime.plugins:GatedOpen"

    _steered(tmp_path, THREE_STAGES, steps)
    reloads = [e for e in _audit(tmp_path) if e["action"] == "reload"]
    assert len(reloads) == 1 and "could not be put back: 't1'" in reloads[0]["error"]
