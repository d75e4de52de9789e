"""The controller's rules and guardrails, driven by a fluid model of a small graph and a fake
clock: one `step` per simulated second, no runtime and no sleeping.

The model stands in for our own narrow `ControlApi` (snapshot, describe, throttle, note): it
answers snapshots in the run-report shape and applies throttles to its own numbers, so a
change the controller makes shows up in the next snapshot as it would in a real run.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from schnitzel.control import controller as controller_module
from schnitzel.control.actor import Actor
from schnitzel.control.controller import EXPIRE_S, VETO_S, Controller
from schnitzel.errors import ControlError

NOT_GIVEN: Any = object()
OPERATOR = Actor("alice", 1000, 4242, "10.0.0.7 50000 10.0.0.1 22", "console")
SUGGESTION_KEYS = {
    "id", "node", "created", "status", "action", "before", "rationale", "expected", "metric",
    "decided_by", "decided_at", "verdict",
}  # fmt: skip


@dataclass(frozen=True)
class Settings:
    mode: str = "suggest"
    window_s: float = 10.0
    cooldown_s: float = 30.0
    verify_s: float = 15.0
    max_step: float = 0.5
    fill_threshold: float = 0.8


@dataclass
class Plant:
    """`sources -> [mid ->] up`, as flows: each source sends at its rate (its natural rate
    when unlimited); `up` takes `speed(concurrency) * sample_every` packets per second from
    an inbox of `capacity`, whose overflow drops or blocks the sources; a durable `up` keeps
    everything (its backlog grows)."""

    sources: dict[str, float] = field(default_factory=lambda: {"cam": 200.0})
    """Natural rate of each source (what it sends when not limited)."""
    rate_hz: dict[str, float | None] = field(default_factory=dict)
    """Configured rate of each source (None: unlimited); default: its natural rate."""
    speed: Callable[[int], float] = lambda concurrency: 50.0 * concurrency
    capacity: int = 50
    overflow: str = "drop_oldest"
    durable: bool = False
    mid: bool = False
    concurrency: int = 1
    sample_every: int = 1
    limits: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {"up": {"concurrency": [1, 8]}}
    )
    """Declared limits per node."""
    paused_up: bool = False
    refuse: str | None = None
    """throttle() raises ControlError with this message."""
    calls: list[dict[str, Any]] = field(default_factory=list)
    notes: list[tuple[str, str, str | None]] = field(default_factory=list)
    depth: float = 0.0
    counters: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for source, natural in self.sources.items():
            self.rate_hz.setdefault(source, natural)
        for node in [*self.sources, "mid", "up"]:
            self.counters[node] = {"received": 0, "in": 0, "out": 0, "dropped": 0}

    # -- the flows --------------------------------------------------------------------------

    def rate_of(self, source: str) -> float:
        configured = self.rate_hz[source]
        return self.sources[source] if configured is None else min(configured, 1e9)

    def advance(self, seconds: float = 1.0) -> None:
        sending = {s: self.rate_of(s) * seconds for s in self.sources}
        wanted = sum(sending.values())
        can = 0.0 if self.paused_up else self.speed(self.concurrency) * self.sample_every * seconds
        if self.overflow == "block" and not self.durable:
            accepted = min(wanted, can + self.capacity - self.depth)
        else:
            accepted = wanted
        share = accepted / wanted if wanted else 0.0
        for source, amount in sending.items():
            self.counters[source]["out"] += amount * share
        if self.mid:
            for counter in ("received", "in", "out"):
                self.counters["mid"][counter] += accepted
        handled = min(can, self.depth + accepted)
        depth = self.depth + accepted - handled
        dropped = 0.0 if self.durable else max(depth - self.capacity, 0.0)
        self.depth = depth - dropped
        up = self.counters["up"]
        up["received"] += accepted
        up["in"] += handled
        up["out"] += handled / self.sample_every
        up["dropped"] += dropped

    # -- the ControlApi -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        nodes: dict[str, Any] = {}
        for source in self.sources:
            nodes[source] = {
                "kind": "source",
                "out": int(self.counters[source]["out"]),
                "throttle": {"rate_hz": self.rate_hz[source]},
                "limits": self._effective(source, {"rate_hz": [0.001, 1e6]}),
                "generation": 0,
            }
        if self.mid:
            nodes["mid"] = self._worker("mid", "transform", 0.0, 1024, {})
        nodes["up"] = self._worker("up", "sink", self.depth, self.capacity, {})
        nodes["up"]["throttle"] = {
            "sample_every": self.sample_every,
            "concurrency": self.concurrency,
        }
        nodes["up"]["paused"] = self.paused_up
        if self.durable:
            nodes["up"]["durable"] = {"backlog": int(self.depth), "oldest_age_s": 1.0}
            nodes["up"]["queue_capacity"] = 0
        return {"status": "running", "nodes": copy.deepcopy(nodes)}

    def _worker(
        self, node: str, kind: str, depth: float, capacity: int, extra: dict[str, Any]
    ) -> dict[str, Any]:
        c = self.counters[node]
        return {
            "kind": kind,
            "in": int(c["in"]),
            "out": int(c["out"]),
            "received": int(c["received"]),
            "dropped": int(c["dropped"]),
            "queue_depth": int(depth),
            "queue_capacity": capacity,
            "overflow": self.overflow if node == "up" else "block",
            "paused": False,
            "throttle": {"sample_every": 1, "concurrency": 1},
            "limits": self._effective(node, {"sample_every": [1, 1e6], "concurrency": [1, 256]}),
            "generation": 0,
            **extra,
        }

    def _effective(self, node: str, defaults: dict[str, list[float]]) -> dict[str, list[float]]:
        return {**defaults, **self.limits.get(node, {})}

    def describe(self) -> dict[str, Any]:
        names = [*self.sources, *(["mid"] if self.mid else []), "up"]
        nodes = [
            {"id": n, "limits": self.snapshot()["nodes"][n]["limits"],
             "declared_limits": self.limits.get(n, {})}
            for n in names
        ]  # fmt: skip
        into = "mid" if self.mid else "up"
        edges = [{"from": s, "to": into} for s in self.sources]
        if self.mid:
            edges.append({"from": "mid", "to": "up"})
        return {"nodes": nodes, "edges": edges}

    def throttle(
        self,
        node_id: str,
        rate_hz: Any = NOT_GIVEN,
        sample_every: Any = NOT_GIVEN,
        concurrency: Any = NOT_GIVEN,
        *,
        actor: Actor,
        why: str = "",
        suggestion: str | None = None,
        action: str = "throttle",
    ) -> dict[str, Any]:
        given = {"rate_hz": rate_hz, "sample_every": sample_every, "concurrency": concurrency}
        args = {k: v for k, v in given.items() if v is not NOT_GIVEN}
        self.calls.append({"node": node_id, "args": args, "actor": actor, "why": why,
                           "suggestion": suggestion})  # fmt: skip
        if self.refuse:
            raise ControlError(self.refuse)
        changes = {}
        for knob, value in args.items():
            if knob == "rate_hz":
                changes[knob] = {"before": self.rate_hz[node_id], "after": value}
                self.rate_hz[node_id] = value
            else:
                changes[knob] = {"before": getattr(self, knob), "after": value}
                setattr(self, knob, value)
        return {"node": node_id, "changes": changes}

    def note(self, level: str, message: str, node: str | None = None) -> None:
        self.notes.append((level, message, node))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(plant: Plant, **settings: Any) -> tuple[Controller, Clock]:
    clock = Clock()
    controller = Controller(plant, Settings(**settings), _logger(), clock=clock)
    return controller, clock


def _logger() -> logging.Logger:
    return logging.getLogger("tests.controller")


def drive(controller: Controller, plant: Plant, clock: Clock, seconds: int) -> None:
    """Let `seconds` pass: the plant flows, the controller looks once a second."""
    for _ in range(seconds):
        plant.advance(1.0)
        clock.now += 1.0
        controller.step(plant.snapshot(), clock.now)


def open_ones(controller: Controller) -> list[dict[str, Any]]:
    return [s for s in controller.suggestions() if s["status"] == "open"]


def approve(controller: Controller, suggestion_id: str) -> dict[str, Any]:
    return asyncio.run(controller.approve(suggestion_id, OPERATOR, "looks right"))


# -- pressure -----------------------------------------------------------------------------------


def test_pressure_shorter_than_the_window_suggests_nothing() -> None:
    plant = Plant()
    controller, clock = make(plant)
    drive(controller, plant, clock, 9)
    assert controller.suggestions() == []
    drive(controller, plant, clock, 3)
    assert len(controller.suggestions()) == 1


def test_a_full_inbox_dropping_packets_gets_more_concurrency_with_numbers() -> None:
    plant = Plant()
    controller, clock = make(plant)
    drive(controller, plant, clock, 13)
    [s] = controller.suggestions()
    assert set(s) >= SUGGESTION_KEYS
    json.dumps(s)
    assert s["id"] == "s-1" and s["node"] == "up" and s["status"] == "open"
    assert s["action"] == {"command": "throttle", "node": "up", "args": {"concurrency": 2}}
    assert s["before"] == {"concurrency": 1}
    assert "inbox of 'up' 100% full for 1" in s["rationale"]
    assert "150 drops/s" in s["rationale"]
    assert "it delivers 50/s while 'cam' sends 200/s" in s["rationale"]
    assert "'up' handles up to ~100/s" in s["expected"]
    assert "drops on 'up' fall from 150/s to about 100/s" in s["expected"]
    assert s["metric"] == {"name": "drop_rate_per_s", "node": "up", "baseline": 150.0,
                           "after": None}  # fmt: skip
    assert s["decided_by"] is None and s["verdict"] is None
    assert s["created"].endswith("Z")
    [(_level, message, node)] = plant.notes
    assert node == "up" and "s-1 suggested" in message and "approve or reject" in message
    assert plant.calls == []  # suggest mode waits for an operator


def test_the_expected_effect_says_drops_stop_when_the_step_is_enough() -> None:
    plant = Plant(sources={"cam": 80.0})
    controller, clock = make(plant)
    drive(controller, plant, clock, 12)
    [s] = controller.suggestions()
    assert "drops on 'up' fall to 0 and its inbox drains below 80% within ~15 s" in s["expected"]


@pytest.mark.parametrize(
    ("current", "bounds", "max_step", "expected"),
    [(1, [1, 8], 0.5, 2), (4, [1, 8], 0.5, 6), (7, [1, 8], 0.5, 8), (4, [1, 16], 1.0, 8),
     (10, [1, 64], 0.1, 11)],
)  # fmt: skip
def test_a_concurrency_step_is_bounded_by_max_step_and_the_limits(
    current: int, bounds: list[float], max_step: float, expected: int
) -> None:
    plant = Plant(concurrency=current, limits={"up": {"concurrency": bounds}},
                  speed=lambda c: 5.0 * c)  # fmt: skip
    controller, clock = make(plant, max_step=max_step)
    drive(controller, plant, clock, 12)
    [s] = controller.suggestions()
    assert s["action"]["args"] == {"concurrency": expected}


def test_fill_without_drops_is_not_pressure_unless_the_inbox_blocks() -> None:
    plant = Plant(sources={"cam": 50.0}, capacity=50)
    plant.depth = 45  # full, but it keeps up: nothing is lost
    controller, clock = make(plant)
    drive(controller, plant, clock, 30)
    assert controller.suggestions() == []


def test_a_full_blocking_inbox_is_pressure_judged_by_its_fill() -> None:
    plant = Plant(overflow="block")
    controller, clock = make(plant)
    drive(controller, plant, clock, 13)
    [s] = controller.suggestions()
    assert "overflow block: backpressure holds the sources back" in s["rationale"]
    assert "'cam' sends 50/s" in s["rationale"]  # held back from its 200/s
    assert s["metric"]["name"] == "inbox_fill" and s["metric"]["baseline"] == 1.0


def test_a_node_held_back_by_a_blocking_node_downstream_is_not_blamed() -> None:
    plant = Plant(overflow="block", mid=True, limits={"up": {}, "mid": {"concurrency": [1, 8]}})
    controller, clock = make(plant)
    # mid's inbox is full too, as the real one is when `up` blocks it
    real_snapshot = plant.snapshot

    def snapshot() -> dict[str, Any]:
        snap = real_snapshot()
        snap["nodes"]["mid"].update(queue_depth=1024, queue_capacity=1024)
        return snap

    plant.snapshot = snapshot  # type: ignore[method-assign]
    drive(controller, plant, clock, 20)
    assert all(s["node"] == "up" for s in controller.suggestions())


def test_a_durable_backlog_growing_for_the_window_is_pressure() -> None:
    plant = Plant(durable=True)
    controller, clock = make(plant)
    drive(controller, plant, clock, 12)
    [s] = controller.suggestions()
    assert "durable backlog of 'up' grew" in s["rationale"]
    assert "(+150/s)" in s["rationale"]
    assert s["metric"]["name"] == "backlog_growth_per_s"
    assert s["metric"]["baseline"] == 150.0
    assert "the backlog of 'up' grows ~100/s (not 0 yet)" in s["expected"]


def test_a_durable_backlog_that_drains_is_not_pressure() -> None:
    plant = Plant(durable=True, sources={"cam": 40.0})
    plant.depth = 5000
    controller, clock = make(plant)
    drive(controller, plant, clock, 30)
    assert controller.suggestions() == []


def test_a_node_that_handles_nothing_is_not_given_a_throttle() -> None:
    plant = Plant(paused_up=False, speed=lambda c: 0.0)
    controller, clock = make(plant)
    drive(controller, plant, clock, 30)
    assert controller.suggestions() == []
    stuck = [m for level, m, _ in plant.notes if level == "warning"]
    assert len(stuck) == 1 and "not a capacity problem" in stuck[0]


def test_a_paused_node_is_the_operator_s_doing() -> None:
    plant = Plant(paused_up=True)
    controller, clock = make(plant)
    drive(controller, plant, clock, 30)
    assert controller.suggestions() == []


# -- what it proposes, in order ---------------------------------------------------------------


def test_at_its_concurrency_limit_the_biggest_source_upstream_is_slowed() -> None:
    plant = Plant(
        sources={"cam": 150.0, "lidar": 50.0},
        mid=True,
        concurrency=8,
        speed=lambda c: 10.0 * c,  # 80/s
        limits={"up": {"concurrency": [1, 8]}, "cam": {"rate_hz": [10, 500]},
                "lidar": {"rate_hz": [10, 500]}},
    )  # fmt: skip
    controller, clock = make(plant)
    drive(controller, plant, clock, 12)
    [s] = controller.suggestions()
    # the sources should send 72/s (90% of 80/s) instead of 200/s: cam gives up what it can,
    # half its rate at most
    assert s["node"] == "up"
    assert s["action"] == {"command": "throttle", "node": "cam", "args": {"rate_hz": 75.0}}
    assert s["before"] == {"rate_hz": 150.0}
    assert "'cam' 150/s and 'lidar' 50/s send" in s["rationale"]
    assert "about 125/s arrive at 'up'" in s["expected"]


def test_a_lowered_rate_aims_below_what_the_node_handles() -> None:
    plant = Plant(sources={"cam": 60.0}, concurrency=8, speed=lambda c: 6.25 * c,
                  limits={"up": {"concurrency": [1, 8]}, "cam": {"rate_hz": [1, 100]}})  # fmt: skip
    controller, clock = make(plant)
    drive(controller, plant, clock, 20)  # 10/s too many: the inbox fills in 5 s
    [s] = controller.suggestions()
    assert s["action"]["args"] == {"rate_hz": 45.0}  # 90% of 50/s
    assert "drops on 'up' fall to 0" in s["expected"]


def test_a_lowered_rate_never_goes_below_the_lower_limit() -> None:
    limits = {"up": {"concurrency": [1, 8]}, "cam": {"rate_hz": [55, 100]}}
    plant = Plant(sources={"cam": 60.0}, concurrency=8, speed=lambda c: 6.25 * c, limits=limits)
    controller, clock = make(plant)
    drive(controller, plant, clock, 20)
    [s] = controller.suggestions()
    assert s["action"]["args"] == {"rate_hz": 55.0}


def test_an_unlimited_source_is_slowed_from_what_it_measurably_sends() -> None:
    limits = {"up": {"concurrency": [1, 8]}, "cam": {"rate_hz": [1, 1000]}}
    plant = Plant(sources={"cam": 120.0}, rate_hz={"cam": None}, concurrency=8,
                  speed=lambda c: 12.5 * c, limits=limits)  # fmt: skip
    controller, clock = make(plant)
    drive(controller, plant, clock, 12)
    [s] = controller.suggestions()
    assert s["action"]["args"] == {"rate_hz": 90.0}  # 90% of 100/s
    assert s["before"] == {"rate_hz": None}
    assert "from unlimited, ~120/s to 90/s" in s["summary"]


def test_sampling_comes_last_and_says_it_is_lossy() -> None:
    plant = Plant(concurrency=8, speed=lambda c: 10.0 * c,
                  limits={"up": {"concurrency": [1, 8], "sample_every": [1, 4]}})  # fmt: skip
    controller, clock = make(plant)
    drive(controller, plant, clock, 12)
    [s] = controller.suggestions()
    assert s["action"]["args"] == {"sample_every": 2}
    assert "LOSSY" in s["rationale"] and "skips 1 of every 2 packets" in s["rationale"]


def test_knobs_without_declared_limits_are_left_alone() -> None:
    plant = Plant(limits={})  # the runtime allows concurrency 1..256, the graph says nothing
    controller, clock = make(plant)
    drive(controller, plant, clock, 40)
    assert controller.suggestions() == []
    stuck = [m for level, m, _ in plant.notes if level == "warning"]
    assert len(stuck) == 1 and "no knob with declared limits" in stuck[0]


# -- approving, verifying, rolling back ---------------------------------------------------------


def test_approving_applies_through_the_control_api_with_the_suggestion_id() -> None:
    plant = Plant()
    controller, clock = make(plant)
    drive(controller, plant, clock, 12)
    [s] = controller.suggestions()
    done = approve(controller, s["id"])
    assert done["status"] == "approved" and done["decided_by"] == OPERATOR.to_json()
    assert done["decided_at"] is not None
    [call] = plant.calls
    assert call["node"] == "up" and call["args"] == {"concurrency": 2}
    assert call["suggestion"] == "s-1" and call["actor"].via == "controller"
    assert "s-1 approved by alice via console" in call["why"]
    assert plant.concurrency == 2


def test_a_change_that_helps_is_kept_with_a_verdict_in_numbers() -> None:
    plant = Plant()
    controller, clock = make(plant)
    drive(controller, plant, clock, 12)
    approve(controller, "s-1")
    drive(controller, plant, clock, 14)
    assert controller.suggestions()[0]["status"] == "approved"  # still being verified
    drive(controller, plant, clock, 1)
    s = controller.suggestions()[0]
    assert s["status"] == "applied"
    assert s["verdict"] == "drops on 'up' 150/s -> 100/s: better; kept"
    assert s["metric"]["after"] == 100.0
    assert any("s-1 verified" in m for _, m, _ in plant.notes)
    assert len(plant.calls) == 1


def test_a_change_that_makes_it_worse_is_rolled_back_and_not_proposed_again() -> None:
    # a backend that thrashes: two calls at once are slower than one
    limits = {"up": {"concurrency": [1, 8]}, "cam": {"rate_hz": [10, 500]}}
    plant = Plant(speed=lambda c: 50.0 if c == 1 else 20.0, limits=limits)
    controller, clock = make(plant)
    drive(controller, plant, clock, 12)
    approve(controller, "s-1")
    drive(controller, plant, clock, 15)
    s = controller.suggestions()[0]
    assert s["status"] == "rolled_back"
    assert s["verdict"] == (
        "drops on 'up' 150/s -> 180/s: worse; rolled back 'up' (concurrency 2 -> 1)"
    )
    rollback = plant.calls[-1]
    assert rollback["args"] == {"concurrency": 1} and rollback["suggestion"] == "s-1"
    assert rollback["why"].startswith("auto-rollback: drops on 'up' 150/s -> 180/s")
    assert plant.concurrency == 1
    assert any(level == "warning" and "s-1 rolled back" in m for level, m, _ in plant.notes)
    # after the cooldown the next rule is offered, never the rolled back change
    drive(controller, plant, clock, 29)
    assert len(controller.suggestions()) == 1
    drive(controller, plant, clock, 2)
    assert [s["action"]["args"] for s in open_ones(controller)] == [{"rate_hz": 100.0}]


def test_a_change_within_noise_is_kept() -> None:
    plant = Plant(speed=lambda c: 50.0 if c == 1 else 49.5)
    controller, clock = make(plant)
    drive(controller, plant, clock, 12)
    approve(controller, "s-1")
    drive(controller, plant, clock, 15)
    s = controller.suggestions()[0]
    assert s["status"] == "applied" and s["verdict"].endswith(": no worse; kept")


def test_auto_mode_applies_at_once_and_rolls_back_what_made_it_worse() -> None:
    plant = Plant(speed=lambda c: 50.0 if c == 1 else 20.0)
    controller, clock = make(plant, mode="auto")
    drive(controller, plant, clock, 12)
    [s] = controller.suggestions()
    assert s["status"] == "approved" and s["decided_by"]["via"] == "controller"
    assert plant.concurrency == 2
    assert "applied automatically" in plant.notes[0][1]
    drive(controller, plant, clock, 15)
    assert controller.suggestions()[0]["status"] == "rolled_back"
    assert plant.concurrency == 1


def test_verification_is_skipped_when_someone_changed_the_node_meanwhile() -> None:
    plant = Plant(speed=lambda c: 50.0 if c == 1 else 20.0)
    controller, clock = make(plant, mode="auto")
    drive(controller, plant, clock, 12)
    plant.concurrency = 5  # an operator, by hand
    drive(controller, plant, clock, 15)
    s = controller.suggestions()[0]
    assert s["status"] == "applied"
    assert s["verdict"].startswith("not judged: 'up' was changed again meanwhile")
    assert plant.concurrency == 5  # never rolled back over an operator's change


def test_a_refused_change_fails_with_the_reason() -> None:
    plant = Plant(refuse="node 'up': concurrency 2 is outside its declared limits [1, 1]")
    controller, clock = make(plant)
    drive(controller, plant, clock, 12)
    with pytest.raises(ControlError, match="could not be applied: the control API refused"):
        approve(controller, "s-1")
    s = controller.suggestions()[0]
    assert s["status"] == "failed" and "outside its declared limits" in s["verdict"]


# -- guardrails -------------------------------------------------------------------------------


def test_one_suggestion_per_node_at_a_time() -> None:
    plant = Plant()
    controller, clock = make(plant)
    drive(controller, plant, clock, 60)
    assert len(controller.suggestions()) == 1


def test_an_operator_change_starts_a_cooldown_and_supersedes_the_open_suggestion() -> None:
    plant = Plant(concurrency=1)
    controller, clock = make(plant)
    drive(controller, plant, clock, 12)
    plant.concurrency = 3  # by hand, not through the suggestion
    drive(controller, plant, clock, 1)
    s = controller.suggestions()[0]
    assert s["status"] == "expired" and s["verdict"].startswith("superseded")
    drive(controller, plant, clock, 28)
    assert len(controller.suggestions()) == 1  # cooling down
    drive(controller, plant, clock, 2)
    assert [s["action"]["args"] for s in open_ones(controller)] == [{"concurrency": 5}]


def test_after_an_applied_change_the_next_step_waits_for_the_cooldown() -> None:
    plant = Plant(sources={"cam": 400.0})
    controller, clock = make(plant, mode="auto")
    drive(controller, plant, clock, 11)  # full from the first second: pressure at the 11th
    assert plant.concurrency == 2
    drive(controller, plant, clock, 29)
    assert plant.concurrency == 2
    drive(controller, plant, clock, 1)
    assert plant.concurrency == 3
    assert [s["status"] for s in controller.suggestions()] == ["applied", "approved"]


def test_an_open_suggestion_expires_when_the_pressure_is_gone() -> None:
    plant = Plant(limits={"up": {"concurrency": [1, 8]}})
    controller, clock = make(plant)
    drive(controller, plant, clock, 12)
    plant.sources["cam"] = 10.0  # the camera slows by itself (no throttle changed)
    plant.rate_hz["cam"] = 10.0
    drive(controller, plant, clock, 9)
    assert controller.suggestions()[0]["status"] == "open"
    drive(controller, plant, clock, 2)
    s = controller.suggestions()[0]
    assert s["status"] == "expired" and s["verdict"] == "the pressure on 'up' is gone"


def test_an_undecided_suggestion_expires_after_ten_minutes() -> None:
    plant = Plant()
    controller, clock = make(plant)
    drive(controller, plant, clock, 11)
    drive(controller, plant, clock, int(EXPIRE_S) - 1)
    assert controller.suggestions()[0]["status"] == "open"
    drive(controller, plant, clock, 1)
    s = controller.suggestions()[0]
    assert s["status"] == "expired" and "nobody decided within 10 min" in s["verdict"]


def test_a_rejected_change_is_not_offered_again_but_the_next_one_is() -> None:
    plant = Plant(limits={"up": {"concurrency": [1, 8]}, "cam": {"rate_hz": [10, 500]}})
    controller, clock = make(plant)
    drive(controller, plant, clock, 12)
    done = controller.reject("s-1", OPERATOR, "the backend team says no")
    assert done["status"] == "rejected" and done["verdict"] == "the backend team says no"
    assert done["decided_by"]["user"] == "alice"
    drive(controller, plant, clock, 1)
    [offer] = open_ones(controller)
    assert offer["action"] == {"command": "throttle", "node": "cam", "args": {"rate_hz": 100.0}}
    controller.reject(offer["id"], OPERATOR)
    drive(controller, plant, clock, int(VETO_S) - 5)
    assert open_ones(controller) == []
    drive(controller, plant, clock, 10)
    assert len(open_ones(controller)) == 1


def test_approving_an_out_of_date_suggestion_is_refused() -> None:
    plant = Plant()
    controller, clock = make(plant)
    drive(controller, plant, clock, 12)
    plant.concurrency = 4  # between two steps: the controller has not seen it yet
    with pytest.raises(ControlError, match="out of date: concurrency is now 4"):
        approve(controller, "s-1")
    assert controller.suggestions()[0]["status"] == "expired"
    assert plant.calls == []


def test_unknown_and_decided_suggestions_cannot_be_decided() -> None:
    plant = Plant()
    controller, clock = make(plant)
    with pytest.raises(ControlError, match="no suggestion 's-9'; open ones: none"):
        controller.reject("s-9", OPERATOR)
    drive(controller, plant, clock, 12)
    controller.reject("s-1", OPERATOR)
    with pytest.raises(ControlError, match="s-1 is rejected, not open"):
        approve(controller, "s-1")


def test_off_mode_watches_nothing() -> None:
    plant = Plant()
    controller, clock = make(plant, mode="off")
    drive(controller, plant, clock, 60)
    assert controller.suggestions() == [] and plant.notes == []


def test_a_failing_step_does_not_stop_the_controller(monkeypatch: pytest.MonkeyPatch) -> None:
    plant = Plant()
    controller, _clock = make(plant)
    monkeypatch.setattr(controller_module, "STEP_S", 0.0)
    looks = 0

    def broken() -> dict[str, Any]:
        nonlocal looks
        looks += 1
        raise KeyError("nodes")

    plant.snapshot = broken  # type: ignore[method-assign]

    async def scenario() -> None:
        task = asyncio.create_task(controller.run())
        while looks < 5:
            await asyncio.sleep(0)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_verification_is_skipped_when_the_node_was_swapped_meanwhile() -> None:
    plant = Plant(speed=lambda c: 50.0 if c == 1 else 20.0)
    controller, clock = make(plant, mode="auto")
    drive(controller, plant, clock, 12)
    real_snapshot = plant.snapshot

    def swapped() -> dict[str, Any]:
        snap = real_snapshot()
        snap["nodes"]["up"]["generation"] = 1
        return snap

    plant.snapshot = swapped  # type: ignore[method-assign]
    drive(controller, plant, clock, 15)
    s = controller.suggestions()[0]
    assert s["status"] == "applied" and s["verdict"] == "not judged: 'up' was swapped meanwhile"
    assert plant.concurrency == 2


# -- regressions ------------------------------------------------------------------------------


def test_an_approval_between_two_looks_is_judged_against_the_newest_samples() -> None:
    # a window of one look: an approval a second after that look once measured a baseline of
    # 0 drops/s over no samples at all, and rolled back a change that had helped
    plant = Plant()
    controller, clock = make(plant, window_s=1.0, verify_s=3.0, cooldown_s=2.0)
    drive(controller, plant, clock, 4)
    [offer] = open_ones(controller)
    clock.now += 1.0
    done = approve(controller, offer["id"])
    assert done["metric"]["baseline"] == 150.0
    drive(controller, plant, clock, 4)
    s = controller.suggestions()[0]
    assert s["status"] == "applied", s["verdict"]
    assert s["verdict"] == "drops on 'up' 150/s -> 75/s: better; kept"


def test_a_refused_change_is_vetoed_and_its_node_cools_down() -> None:
    limits = {"up": {"concurrency": [1, 8]}, "cam": {"rate_hz": [10, 500]}}
    plant = Plant(refuse="node 'up': concurrency 2 is outside its limits [1, 1]", limits=limits)
    controller, clock = make(plant, mode="auto")
    drive(controller, plant, clock, 12)
    assert [s["status"] for s in controller.suggestions()] == ["failed"]
    plant.refuse = None
    drive(controller, plant, clock, 28)
    assert len(controller.suggestions()) == 1  # not every second: the node cools down
    drive(controller, plant, clock, 2)
    # then the next rule, never the refused change again
    assert [c["args"] for c in plant.calls] == [{"concurrency": 2}, {"rate_hz": 100.0}]
    assert plant.concurrency == 1


def test_a_lowered_rate_never_goes_above_the_upper_limit() -> None:
    # the limits were narrowed (a reload) below the rate the source is still set to
    limits = {"up": {"concurrency": [1, 8]}, "cam": {"rate_hz": [10, 150]}}
    plant = Plant(sources={"cam": 400.0}, concurrency=8, speed=lambda c: 25.0 * c, limits=limits)
    controller, clock = make(plant)
    drive(controller, plant, clock, 12)
    [s] = controller.suggestions()
    assert s["action"]["args"] == {"rate_hz": 150.0}
    assert s["before"] == {"rate_hz": 400.0}


def test_an_unlimited_source_is_not_cut_to_its_top_where_a_rollback_could_not_undo_it() -> None:
    # a rollback sets an unlimited source with declared rate limits to their top: cutting it
    # to that top could not be undone
    limits = {"up": {}, "cam": {"rate_hz": [1, 100]}}
    plant = Plant(sources={"cam": 2000.0}, rate_hz={"cam": None}, limits=limits)
    controller, clock = make(plant)
    drive(controller, plant, clock, 20)
    assert controller.suggestions() == []
    assert plant.rate_hz["cam"] is None


def test_rolling_back_a_cut_of_an_unlimited_source_restores_the_top_of_its_limits() -> None:
    limits = {"up": {"concurrency": [1, 8]}, "cam": {"rate_hz": [1, 1000]}}
    plant = Plant(sources={"cam": 120.0}, rate_hz={"cam": None}, concurrency=8,
                  speed=lambda c: 12.5 * c, limits=limits)  # fmt: skip
    controller, clock = make(plant)
    drive(controller, plant, clock, 12)
    [offer] = open_ones(controller)
    assert "a rollback would set it to 1000/s, the top of its limits" in offer["rationale"]
    approve(controller, offer["id"])
    plant.speed = lambda c: 2.5 * c  # the backend slows down: drops rise whatever the rate
    drive(controller, plant, clock, 15)
    s = controller.suggestions()[0]
    assert s["status"] == "rolled_back", s["verdict"]
    assert s["verdict"].endswith(
        "rolled back 'cam' (rate_hz 90 -> 1000; it was unlimited, which its declared limits "
        "do not allow: set to their top, 1000/s)"
    )
    assert plant.calls[-1]["args"] == {"rate_hz": 1000.0}  # never rate_hz None: refused
    assert plant.rate_hz["cam"] == 1000.0


@pytest.mark.parametrize(
    ("natural", "max_step", "expected"),
    [(2469.0, 0.5, 1240.0), (1234.5, 0.5, 618.0), (150.0, 0.5, 75.0), (999.0, 0.1, 900.0)],
)  # fmt: skip
def test_a_rounded_rate_never_cuts_more_than_max_step(
    natural: float, max_step: float, expected: float
) -> None:
    limits = {"up": {}, "cam": {"rate_hz": [1, 10000]}}
    plant = Plant(sources={"cam": natural}, limits=limits)
    controller, clock = make(plant, max_step=max_step)
    drive(controller, plant, clock, 12)
    [s] = controller.suggestions()
    new = s["action"]["args"]["rate_hz"]
    assert new == expected
    assert new >= natural * (1 - max_step)


def test_a_source_s_counter_restart_starts_its_rate_over() -> None:
    limits = {"up": {"concurrency": [1, 8]}, "cam": {"rate_hz": [1, 1000]}}
    plant = Plant(sources={"cam": 120.0}, rate_hz={"cam": None}, concurrency=8,
                  speed=lambda c: 12.5 * c, limits=limits)  # fmt: skip
    controller, clock = make(plant)
    drive(controller, plant, clock, 6)
    plant.counters["cam"]["out"] = 0  # the source restarted: its `out` starts over
    drive(controller, plant, clock, 6)
    [s] = controller.suggestions()
    assert "'cam' sends 120/s" in s["rationale"]
    assert s["action"]["args"] == {"rate_hz": 90.0}


def test_a_node_s_counter_restart_starts_its_pressure_window_over() -> None:
    plant = Plant()
    controller, clock = make(plant)
    drive(controller, plant, clock, 9)
    plant.counters["up"] = {"received": 0, "in": 0, "out": 0, "dropped": 0}
    drive(controller, plant, clock, 9)
    assert controller.suggestions() == []  # not 10 s of pressure in this run yet
    drive(controller, plant, clock, 2)
    assert len(open_ones(controller)) == 1


def test_an_approval_of_an_out_of_date_suggestion_says_it_expired() -> None:
    plant = Plant()
    controller, clock = make(plant)
    drive(controller, plant, clock, 12)
    plant.concurrency = 4
    with pytest.raises(ControlError):
        approve(controller, "s-1")
    assert any("s-1 expired: superseded: 'up' changed" in m for _, m, _ in plant.notes)


def test_a_change_whose_rollback_was_refused_is_not_stepped_further() -> None:
    plant = Plant(speed=lambda c: 50.0 if c == 1 else 20.0)
    controller, clock = make(plant, mode="auto")
    drive(controller, plant, clock, 12)
    assert plant.concurrency == 2
    plant.refuse = "node 'up': the runtime is busy"
    drive(controller, plant, clock, 15)
    s = controller.suggestions()[0]
    assert s["status"] == "failed" and "rolling back was refused" in s["verdict"]
    plant.refuse = None
    drive(controller, plant, clock, 60)
    assert plant.concurrency == 2 and len(controller.suggestions()) == 1
