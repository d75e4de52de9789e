"""Zones alone (no runtime): enter, leave, loiter and cross fire once each at the frames the
ground truth says, inertia eats a flicker at the edge, and new zones keep who is inside."""

from __future__ import annotations

from schnitzel_plugins.vision.zoning import (
    TrackInput,
    Transition,
    ZoneRule,
    ZoneSet,
    anchor_point,
    point_in_polygon,
)

FPS = 10.0
DOCK = ZoneRule("dock", ((200.0, 0.0), (400.0, 0.0), (400.0, 300.0), (200.0, 300.0)), inertia=3)


def walker(x: float, track_id: int = 1, cls: str = "person", detected: bool = True) -> TrackInput:
    """A 20x60 box whose bottom centre is at (x, 200)."""
    return TrackInput(track_id, (x - 10, 140.0, x + 10, 200.0), cls, 0.9, detected)


def walk(zones: ZoneSet, xs: list[float], **kw: object) -> list[tuple[int, Transition]]:
    """Feed one track along xs, a frame each; the transitions with their frame numbers."""
    out = []
    for n, x in enumerate(xs):
        _, changes = zones.update([walker(x, **kw)], [], n / FPS)  # type: ignore[arg-type]
        out += [(n, c) for c in changes]
    return out


def test_enter_and_leave_fire_once_at_the_frames_inertia_says() -> None:
    xs = [110.0 + 20 * n for n in range(30)]  # inside (x in 200..400) at frames 5..14
    truth_in = [n for n, x in enumerate(xs) if 200 < x < 400]
    fired = walk(ZoneSet([DOCK]), xs)
    assert fired == [
        (truth_in[0] + 2, Transition(1, "dock", "enter")),  # the third frame inside
        (truth_in[-1] + 3, Transition(1, "dock", "leave")),  # the third frame outside
    ]


def test_a_one_frame_flicker_at_the_edge_fires_nothing() -> None:
    xs = [190.0] * 5 + [205.0] + [190.0] * 5 + [205.0, 205.0] + [190.0] * 5
    assert walk(ZoneSet([DOCK]), xs) == []
    without_inertia = ZoneRule(DOCK.name, DOCK.points, inertia=1)
    kinds = [t.kind for _, t in walk(ZoneSet([without_inertia]), xs)]
    assert kinds == ["enter", "leave", "enter", "leave"]  # what inertia saves the operator


def test_dwell_grows_and_loiter_fires_once_per_visit() -> None:
    rule = ZoneRule("dock", DOCK.points, inertia=1, loiter_s=2.0)
    zones = ZoneSet([rule])
    loiters = []
    for n in range(60):  # 6 s inside
        inside, changes = zones.update([walker(300)], [], n / FPS)
        loiters += [n for c in changes if c.kind == "loiter"]
    assert loiters == [20]
    assert inside == {1: {"dock": 5.9}}


def test_a_line_crossing_has_a_direction_and_must_pass_between_the_ends() -> None:
    gate = ZoneRule("gate", ((300.0, 100.0), (300.0, 300.0)), inertia=2)  # vertical, y 100..300
    right = [200.0 + 20 * n for n in range(11)]  # left to right across x=300
    fired = walk(ZoneSet([gate]), right)
    assert [t for _, t in fired] == [Transition(1, "gate", "cross", "out")]
    back = walk(ZoneSet([gate]), right[::-1])
    assert [t for _, t in back] == [Transition(1, "gate", "cross", "in")]
    only_in = ZoneRule("gate", gate.points, inertia=2, direction="in")
    assert walk(ZoneSet([only_in]), right) == []
    short = ZoneRule("gate", ((300.0, 0.0), (300.0, 100.0)), inertia=2)  # ends above the walk
    assert walk(ZoneSet([short]), right) == []


def test_class_filters_and_anchors() -> None:
    cars_only = ZoneRule("dock", DOCK.points, classes=frozenset({"car"}), inertia=1)
    assert walk(ZoneSet([cars_only]), [300.0] * 5) == []
    # a box above the zone's bottom edge, hanging below it: its centre is inside, its feet not
    low = ZoneRule("band", ((0.0, 0.0), (600.0, 0.0), (600.0, 180.0), (0.0, 180.0)), inertia=1)
    assert walk(ZoneSet([low]), [300.0] * 3) == []
    centred = ZoneSet([low], anchors={"person": "center"})
    assert [t.kind for _, t in walk(centred, [300.0] * 3)] == ["enter"]
    assert anchor_point((0, 0, 10, 20), "top_center") == (5, 0)
    assert point_in_polygon((5, 5), ((0, 0), (10, 0), (10, 10), (0, 10)))
    assert not point_in_polygon((15, 5), ((0, 0), (10, 0), (10, 10), (0, 10)))


def test_coasting_keeps_membership_and_an_ended_track_leaves() -> None:
    zones = ZoneSet([ZoneRule("dock", DOCK.points, inertia=1)])
    zones.update([walker(300)], [], 0.0)
    for n in range(1, 10):  # occluded: the tracker's prediction is not evidence
        _, changes = zones.update([walker(900, detected=False)], [], n / FPS)
        assert changes == []
    inside, changes = zones.update([], [1], 1.0)
    assert changes == [Transition(1, "dock", "leave")] and inside == {}


def test_new_rules_keep_who_is_in_a_kept_zone_and_forget_removed_ones() -> None:
    zones = ZoneSet([ZoneRule("dock", DOCK.points, inertia=1), ZoneRule("yard", DOCK.points)])
    zones.update([walker(300)], [], 0.0)
    zones.update([walker(300)], [], 0.1)
    zones.update([walker(300)], [], 0.2)
    assert zones.members() == {"dock": [1], "yard": [1]}
    wider = ZoneRule("dock", ((0.0, 0.0), (600.0, 0.0), (600.0, 300.0), (0.0, 300.0)), inertia=1)
    zones.replace_rules([wider])
    inside, changes = zones.update([walker(500)], [], 0.3)
    assert changes == []  # still in the dock: no second enter
    assert inside == {1: {"dock": 0.3}}
    assert zones.members() == {"dock": [1]}


def test_a_zone_name_is_unique_per_camera() -> None:
    import pydantic
    import pytest

    from schnitzel_plugins.vision.zones import ZonesConfig

    square = [[0, 0], [1, 0], [1, 1]]
    ZonesConfig(zones=[{"name": "dock", "camera": "a", "points": square},
                       {"name": "dock", "camera": "b", "points": square}])  # fmt: skip
    for cameras in (("a", "a"), (None, "b"), ("b", None)):
        with pytest.raises(pydantic.ValidationError, match="unique per camera"):
            ZonesConfig(zones=[{"name": "dock", "camera": c, "points": square} for c in cameras])
