"""Zones and lines of one camera, and which tracks are in them (pure, no imports beyond stdlib).

A track is placed by one point of its box, the **anchor** (the bottom centre by default: where
a person's feet or a car's wheels touch the ground). Per zone:

- **filters**: classes it cares about, a least score;
- **inertia**: frames in a row inside before the track has "entered", and outside before it
  has "left", so a box flickering over the edge makes no enter/leave pairs;
- **loiter_s**: seconds inside after which one `loiter` transition fires (per entry);
- for a **line** (two points): a `cross` when a track's anchor ends up, for `inertia` frames,
  on the other side of it, having passed between its ends; `in` is the side on the right as
  one walks from the first point to the second (image coordinates, y down), `out` the other.

Times are the frames' presentation times (`pts_s`), so a replayed file gives the same dwell.
A track that coasts (not detected in this frame) keeps its state: an occlusion is not a leave.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Anchor", "TrackInput", "Transition", "ZoneRule", "ZoneSet", "anchor_point"]

Point = tuple[float, float]
Anchor = Literal["bottom_center", "center", "top_center"]


@dataclass(frozen=True, slots=True)
class ZoneRule:
    """One zone (3+ points) or line (2 points), in pixels."""

    name: str
    points: tuple[Point, ...]
    classes: frozenset[str] | None = None
    """Class names it watches; None: all."""
    min_confidence: float = 0.0
    inertia: int = 3
    loiter_s: float | None = None
    direction: Literal["any", "in", "out"] = "any"
    """For a line: which crossings count."""

    @property
    def is_line(self) -> bool:
        """Two points: a line to cross, not an area."""
        return len(self.points) == 2

    def watches(self, class_name: str, confidence: float) -> bool:
        """Whether a detection of this class and score may enter."""
        if self.classes is not None and class_name not in self.classes:
            return False
        return confidence >= self.min_confidence


@dataclass(frozen=True, slots=True)
class TrackInput:
    """What the zones need of a track in one frame."""

    track_id: int
    bbox: tuple[float, float, float, float]
    class_name: str
    confidence: float
    detected: bool
    """False while the track coasts: its state then stays as it was."""


@dataclass(frozen=True, slots=True)
class Transition:
    """A track entered, left, crossed or loitered in a zone."""

    track_id: int
    zone: str
    kind: Literal["enter", "leave", "cross", "loiter"]
    direction: str | None = None


@dataclass(slots=True)
class _Membership:
    inside: bool = False
    streak: int = 0
    """Frames in a row on the other side of `inside` (inertia counter)."""
    entered_at: float | None = None
    loitered: bool = False
    side: int = 0
    """For a line: the confirmed side (-1, 1; 0 unknown)."""
    side_point: Point | None = None
    """For a line: the anchor when the side was last confirmed."""


@dataclass
class ZoneSet:
    """One camera's zones and the tracks' membership in each. `update` once per frame."""

    rules: list[ZoneRule]
    anchors: dict[str, Anchor] = field(default_factory=dict)
    """Per class name; others use `default_anchor`."""
    default_anchor: Anchor = "bottom_center"
    _state: dict[tuple[int, str], _Membership] = field(default_factory=dict)

    def update(
        self, tracks: list[TrackInput], ended: list[int], now_s: float
    ) -> tuple[dict[int, dict[str, float]], list[Transition]]:
        """One frame. Returns, per track, the zones it is in with seconds since it entered
        each; and this frame's transitions (ended tracks leave the zones they were in)."""
        transitions: list[Transition] = []
        for track in tracks:
            if not track.detected:
                continue
            point = anchor_point(
                track.bbox, self.anchors.get(track.class_name, self.default_anchor)
            )
            for rule in self.rules:
                state = self._state.setdefault((track.track_id, rule.name), _Membership())
                if rule.is_line:
                    self._cross(rule, state, track, point, transitions)
                else:
                    self._area(rule, state, track, point, now_s, transitions)
        gone = set(ended)
        for key in [k for k in self._state if k[0] in gone]:
            state = self._state.pop(key)
            if state.inside:
                transitions.append(Transition(key[0], key[1], "leave"))
        inside: dict[int, dict[str, float]] = {}
        for (track_id, zone), state in self._state.items():
            if state.inside and state.entered_at is not None:
                inside.setdefault(track_id, {})[zone] = max(0.0, now_s - state.entered_at)
        return inside, transitions

    def members(self) -> dict[str, list[int]]:
        """Per zone (lines included, always empty), the tracks inside it now."""
        out: dict[str, list[int]] = {r.name: [] for r in self.rules}
        for (track_id, zone), state in self._state.items():
            if state.inside and zone in out:
                out[zone].append(track_id)
        return {zone: sorted(ids) for zone, ids in out.items()}

    def replace_rules(self, rules: list[ZoneRule]) -> None:
        """New zones between frames: a zone kept by name keeps who is in it; gone ones forget."""
        names = {r.name for r in rules}
        self._state = {k: v for k, v in self._state.items() if k[1] in names}
        self.rules = rules

    def _area(
        self,
        rule: ZoneRule,
        state: _Membership,
        track: TrackInput,
        point: Point,
        now_s: float,
        out: list[Transition],
    ) -> None:
        now_in = rule.watches(track.class_name, track.confidence) and point_in_polygon(
            point, rule.points
        )
        if now_in == state.inside:
            state.streak = 0
        else:
            state.streak += 1
            if state.streak >= rule.inertia:
                state.inside, state.streak = now_in, 0
                if now_in:
                    state.entered_at, state.loitered = now_s, False
                    out.append(Transition(track.track_id, rule.name, "enter"))
                else:
                    state.entered_at = None
                    out.append(Transition(track.track_id, rule.name, "leave"))
        if (
            state.inside
            and rule.loiter_s is not None
            and not state.loitered
            and state.entered_at is not None
            and now_s - state.entered_at >= rule.loiter_s
        ):
            state.loitered = True
            out.append(Transition(track.track_id, rule.name, "loiter"))

    def _cross(
        self,
        rule: ZoneRule,
        state: _Membership,
        track: TrackInput,
        point: Point,
        out: list[Transition],
    ) -> None:
        if not rule.watches(track.class_name, track.confidence):
            return
        a, b = rule.points
        side = 1 if _cross_product(a, b, point) > 0 else -1
        if state.side == 0:
            state.side, state.side_point = side, point
            return
        if side == state.side:
            state.streak, state.side_point = 0, point
            return
        state.streak += 1
        if state.streak < rule.inertia:
            return
        passed = state.side_point is not None and _segments_meet(state.side_point, point, a, b)
        state.side, state.side_point, state.streak = side, point, 0
        direction = "in" if side > 0 else "out"
        if passed and rule.direction in ("any", direction):
            out.append(Transition(track.track_id, rule.name, "cross", direction))


def anchor_point(bbox: tuple[float, float, float, float], anchor: Anchor) -> Point:
    """The point of a box that stands for where the object is."""
    x1, y1, x2, y2 = bbox
    cx = (x1 + x2) / 2
    if anchor == "bottom_center":
        return (cx, y2)
    if anchor == "top_center":
        return (cx, y1)
    return (cx, (y1 + y2) / 2)


def point_in_polygon(point: Point, polygon: tuple[Point, ...]) -> bool:
    """Ray casting; a point on an edge counts as whichever side the ray test puts it."""
    x, y = point
    inside = False
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _cross_product(a: Point, b: Point, p: Point) -> float:
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


def _segments_meet(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    d1 = _cross_product(q1, q2, p1)
    d2 = _cross_product(q1, q2, p2)
    d3 = _cross_product(p1, p2, q1)
    d4 = _cross_product(p1, p2, q2)
    return (d1 > 0) != (d2 > 0) and (d3 > 0) != (d4 > 0)
