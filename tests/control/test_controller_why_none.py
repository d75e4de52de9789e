"""The controller says why it suggests nothing: before its first look, no pressure, no
declared limits, a cooldown after a change, a paused node, a run draining to stop; and the
control API and `ctl controller` pass it on. The same fluid model and fake clock as
test_controller.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from schnitzel import Runtime, RuntimeControl
from schnitzel.cli.ctl_command import _show_controller
from schnitzel.control.actor import Actor
from schnitzel.control.commands import READ_ONLY_COMMANDS, dispatch
from schnitzel.validate.validator import load_graph
from tests.control.test_controller import Plant, drive, make, open_ones
from tests.runtime.harness import graph_from


def test_before_its_first_look_and_without_pressure_it_says_so() -> None:
    plant = Plant(sources={"cam": 10.0})  # far below what `up` takes
    controller, clock = make(plant)
    assert controller.why_none() == ["the controller has not looked at the metrics yet (every 1 s)"]
    drive(controller, plant, clock, 20)
    assert controller.suggestions() == []
    (why,) = controller.why_none()
    assert why.startswith("no pressure: no inbox stayed 80% full") and "10 s" in why


def test_without_declared_limits_it_says_that_it_turns_no_knob() -> None:
    plant = Plant(limits={})
    controller, clock = make(plant)
    drive(controller, plant, clock, 15)
    assert controller.suggestions() == []
    why = controller.why_none()
    assert any("no node declares `limits:`" in line for line in why), why
    assert any("'up'" in line and "no knob with declared limits" in line for line in why), why


def test_after_a_change_it_names_the_cooldown() -> None:
    plant = Plant(concurrency=1)
    controller, clock = make(plant)
    drive(controller, plant, clock, 12)
    assert open_ones(controller)
    plant.concurrency = 3  # by hand: the suggestion is superseded, a cooldown starts
    drive(controller, plant, clock, 5)
    assert not open_ones(controller)
    why = controller.why_none()
    assert any("'up' is under pressure, but was changed" in line for line in why), why
    assert any("cooldown of 30 s" in line for line in why), why


def test_a_paused_node_is_said() -> None:
    plant = Plant(paused_up=True)
    controller, clock = make(plant)
    drive(controller, plant, clock, 15)
    assert controller.why_none() == ["'up' is under pressure, but paused by an operator"]


def test_a_draining_run_is_no_time_for_suggestions() -> None:
    plant = Plant()
    controller, clock = make(plant)
    snapshot = plant.snapshot()
    controller.step({**snapshot, "stopping": True}, clock.now)
    assert controller.why_none() == ["the run is draining to stop: nothing is suggested meanwhile"]


def test_the_control_api_says_why_with_the_controller_off_or_on(tmp_path: Path) -> None:
    assert "controller" in READ_ONLY_COMMANDS
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 50}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: out}
"""
    off = Runtime(graph_from(tmp_path, body), state_dir=tmp_path / "state")
    state = asyncio.run(dispatch(RuntimeControl(off), "controller", {}, Actor.local("t")))
    assert state["mode"] == "off" and "the controller is off" in state["why_none"][0]

    on = tmp_path / "on"
    on.mkdir()
    path = on / "graph.yaml"
    path.write_text("version: 2\nruntime: {controller: {mode: suggest}}\n" + body)
    graph = load_graph(path)
    found: dict[str, object] = {}

    async def scenario() -> None:
        runtime = Runtime(graph, state_dir=on / "state")
        control = RuntimeControl(runtime)
        task = asyncio.create_task(runtime.run())
        while True:
            state = control.controller()
            if any(line.startswith("no pressure") for line in state["why_none"]):
                found.update(state)
                break
            await asyncio.sleep(0.05)
        control.stop()
        await asyncio.wait_for(task, 60)

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert found["mode"] == "suggest" and found["open"] == 0
    assert any("no node declares `limits:`" in str(line) for line in found["why_none"])  # type: ignore[attr-defined]


def test_ctl_controller_prints_the_mode_and_each_reason(capsys: pytest.CaptureFixture[str]) -> None:
    _show_controller({"mode": "suggest", "open": 0, "why_none": ["no pressure: ...", "x"]})
    assert capsys.readouterr().out.splitlines() == [
        "controller suggest, 0 open suggestions",
        "  no pressure: ...",
        "  x",
    ]


def test_a_change_being_verified_is_said() -> None:
    plant = Plant(sources={"cam": 400.0})
    controller, clock = make(plant, mode="auto")
    drive(controller, plant, clock, 12)
    assert [s["status"] for s in controller.suggestions()] == ["approved"]
    why = controller.why_none()
    assert any("s-1 is being verified" in line and "verify_s" in line for line in why), why
