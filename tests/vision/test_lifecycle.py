"""The event lifecycle alone: one `new` and one `end` per track, an `update` per zone change
or better score, the cooldown holding back repeats but never a severity change, stable ids."""

from __future__ import annotations

from typing import Any

from schnitzel_plugins.vision.lifecycle import ClassRule, Lifecycle, LifecycleSettings, TrackFrame

BOX = (10.0, 10.0, 50.0, 90.0)
SETTINGS = LifecycleSettings(
    classes={"FACE_FEMALE": ClassRule("person", "info")},
    zone_severity={"vault": "critical"},
    cooldown_s=10.0,
)


def seen(score: float = 0.8, zones: tuple[str, ...] = (), track_id: int = 1) -> TrackFrame:
    return TrackFrame(track_id, "FACE_FEMALE", BOX, score, zones, {z: 1.0 for z in zones})


def enter(zone: str, kind: str = "enter", track_id: int = 1) -> dict[str, Any]:
    return {"track_id": track_id, "zone": zone, "kind": kind}


def test_a_track_makes_new_update_on_zone_change_and_end() -> None:
    life = Lifecycle("cam", SETTINGS)
    out: list[dict[str, Any]] = []
    out += life.step(0, 0, 0.0, [seen()], [], [])[0]
    out += life.step(0, 1, 0.1, [seen()], [], [])[0]  # nothing changed: no event
    out += life.step(0, 2, 0.2, [seen(zones=("dock",))], [enter("dock")], [])[0]
    out += life.step(0, 3, 0.3, [], [], [1])[0]
    assert [e["transition"] for e in out] == ["new", "update", "end"]
    new, update, end = out
    assert new["type"] == "person" and new["severity"] == "info" and new["before"] is None
    assert update["reasons"] == ["enter:dock"]
    assert update["before"]["zones"] == [] and update["after"]["zones"] == ["dock"]
    assert update["entered_zones"] == ["dock"] and update["dwell_s"] == {"dock": 1.0}
    assert (
        end["reasons"] == ["leave:dock"] and end["zones"] == [] and end["entered_zones"] == ["dock"]
    )
    assert [e["event_id"] for e in out] == [
        "cam:0:1:new:0", "cam:0:1:update:2", "cam:0:1:end:3"
    ]  # fmt: skip
    assert life.active() == []


def test_the_cooldown_holds_back_repeats_but_a_severity_change_passes_at_once() -> None:
    life = Lifecycle("cam", SETTINGS)
    life.step(0, 0, 0.0, [seen()], [], [])
    kinds = []
    for n, (zones, change) in enumerate(
        [(("dock",), "enter"), ((), "leave"), (("dock",), "enter"), ((), "leave")], start=1
    ):
        events, _ = life.step(0, n, n * 1.0, [seen(zones=zones)], [enter("dock", change)], [])
        kinds += [e["reasons"] for e in events]
    assert kinds == [["enter:dock"], ["leave:dock"]]  # four changes in 4 s: not the repeats
    assert life.held_back == 2
    events, _ = life.step(0, 5, 5.0, [seen(zones=("vault",))], [enter("vault")], [])
    assert [(e["severity"], e["reasons"]) for e in events] == [
        ("critical", ["enter:vault", "severity"])
    ]
    events, _ = life.step(0, 30, 30.0, [seen(zones=("vault", "dock"))], [enter("dock")], [])
    assert [e["reasons"] for e in events] == [["enter:dock"]]  # 25 s later: passes again


def test_a_better_score_updates_and_marks_the_snapshot_frame() -> None:
    life = Lifecycle("cam", SETTINGS)
    _, best = life.step(0, 0, 0.0, [seen(0.5)], [], [])
    assert best == {1}
    events, best = life.step(0, 1, 0.1, [seen(0.52)], [], [])
    assert events == [] and best == {1}  # better, but by less than better_by: no event
    events, best = life.step(0, 2, 0.2, [seen(0.9)], [], [])
    assert [e["reasons"] for e in events] == [["better_score"]] and best == {1}
    assert events[0]["top_score"] == 0.9 and events[0]["best_frame"] == 2
    events, best = life.step(0, 3, 0.3, [seen(0.7)], [], [])
    assert events == [] and best == set()


def test_the_same_frames_make_the_same_event_ids_after_a_restart() -> None:
    def replay() -> list[str]:
        life = Lifecycle("cam", SETTINGS)
        ids = []
        for n in range(5):
            zones = ("dock",) if n >= 2 else ()
            changes = [enter("dock")] if n == 2 else []
            ids += [
                e["event_id"] for e in life.step(7, n, n / 10, [seen(zones=zones)], changes, [])[0]
            ]
        return ids

    assert replay() == replay() == ["cam:7:1:new:0", "cam:7:1:update:2"]
