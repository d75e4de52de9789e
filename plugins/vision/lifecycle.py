"""The event lifecycle of one camera's tracks: `new`, `update`, `end` (pure, stdlib only).

`Lifecycle.step` takes one frame's tracks, zone transitions and ended tracks, and returns the
events that frame makes, as JSON-portable dicts:

- `new` when a track is first reported;
- `update` when it enters, leaves, crosses or loiters in a zone, when its severity changes, or
  when its score beats its best by `better_by`. The cooldown is per camera, type and track
  (one lifecycle per camera, a type per track) and reason: an update whose every reason
  (`enter:dock`, `cross:gate:in`, `better_score`, ...) already passed within `cooldown_s`
  (frame time) is held back; a severity change passes at once (the origin project's rule:
  10 s);
- `end` when the track ended (lost past the tracker's `max_age`).

Each event's `event_id` is `<camera>:<epoch>:<track>:<transition>:<frame>`: a file read again
after a restart makes the same ids, so a sink's idempotency turns re-sends into duplicates of
one key. Severity is the class map's, raised by the zones the track is in (`zone_severity`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["SEVERITIES", "ClassRule", "Lifecycle", "LifecycleSettings", "TrackFrame"]

SEVERITIES = ("info", "warning", "critical")
"""Lowest first."""


@dataclass(frozen=True, slots=True)
class ClassRule:
    """What a class becomes: an event type and a severity."""

    type: str
    severity: str = "info"


@dataclass(frozen=True, slots=True)
class LifecycleSettings:
    """How events are named and thinned."""

    classes: dict[str, ClassRule] = field(default_factory=dict)
    """Class name -> type and severity; a class not here: its own name, `info`."""
    zone_severity: dict[str, str] = field(default_factory=dict)
    """Zone -> the least severity of a track inside it."""
    cooldown_s: float = 10.0
    better_by: float = 0.05
    """How much a score must beat the track's best to make an update."""


@dataclass(frozen=True, slots=True)
class TrackFrame:
    """What the lifecycle needs of a track in one frame."""

    track_id: int
    class_name: str
    bbox: tuple[float, float, float, float]
    confidence: float
    zones: tuple[str, ...]
    dwell_s: dict[str, float]


@dataclass(slots=True)
class _Life:
    type: str
    started_pts_s: float
    first_frame: int
    top_score: float = 0.0
    best_frame: int = -1
    severity: str = "info"
    zones: tuple[str, ...] = ()
    entered: list[str] = field(default_factory=list)
    dwell_s: dict[str, float] = field(default_factory=dict)
    bbox: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    class_name: str = ""
    last_passed: dict[str, float] = field(default_factory=dict)
    """Reason -> frame time of the last update it passed in (the cooldown's memory)."""


@dataclass
class Lifecycle:
    """One camera's track lives. `step` once per frame, in order."""

    camera_id: str
    settings: LifecycleSettings = field(default_factory=LifecycleSettings)
    held_back: int = 0
    """Updates the cooldown kept back."""
    _lives: dict[int, _Life] = field(default_factory=dict)

    def step(
        self,
        epoch: int,
        frame_index: int,
        pts_s: float,
        tracks: list[TrackFrame],
        transitions: list[dict[str, Any]],
        ended: list[int],
    ) -> tuple[list[dict[str, Any]], set[int]]:
        """One frame's events, and the tracks whose best score is this frame (their snapshot
        should be taken now)."""
        events: list[dict[str, Any]] = []
        best_now: set[int] = set()
        reasons: dict[int, list[str]] = {}
        for t in transitions:
            way = f":{t['direction']}" if t.get("direction") else ""
            reasons.setdefault(t["track_id"], []).append(f"{t['kind']}:{t['zone']}{way}")
        for track in tracks:
            life = self._lives.get(track.track_id)
            before = _snapshot_state(life) if life is not None else None
            if life is None:
                rule = self.settings.classes.get(track.class_name, ClassRule(track.class_name))
                life = self._lives[track.track_id] = _Life(rule.type, pts_s, frame_index)
            why = list(reasons.get(track.track_id, []))
            if track.confidence > life.top_score:
                if (
                    before is not None
                    and track.confidence >= life.top_score + self.settings.better_by
                ):
                    why.append("better_score")
                life.top_score, life.best_frame = track.confidence, frame_index
                best_now.add(track.track_id)
            severity = self._severity(track)
            if before is not None and severity != life.severity:
                why.append("severity")
            life.severity, life.zones, life.dwell_s = severity, track.zones, dict(track.dwell_s)
            life.bbox, life.class_name = track.bbox, track.class_name
            for zone in track.zones:
                if zone not in life.entered:
                    life.entered.append(zone)
            if before is None:
                events.append(
                    self._event("new", track.track_id, life, None, [], epoch, frame_index, pts_s)
                )
            elif why and self._passes(life, pts_s, why):
                events.append(
                    self._event(
                        "update", track.track_id, life, before, why, epoch, frame_index, pts_s
                    )
                )
        for track_id in ended:
            life = self._lives.pop(track_id, None)
            if life is None:
                continue
            before = _snapshot_state(life)
            gone = [f"leave:{zone}" for zone in life.zones]
            life.zones, life.dwell_s = (), {}
            events.append(
                self._event("end", track_id, life, before, gone, epoch, frame_index, pts_s)
            )
        return events, best_now

    def _passes(self, life: _Life, pts_s: float, reasons: list[str]) -> bool:
        """An update passes unless every reason of it passed within the cooldown (a severity
        change always passes)."""
        cooldown = self.settings.cooldown_s
        last = life.last_passed
        fresh = [
            r for r in reasons if r == "severity" or r not in last or pts_s - last[r] >= cooldown
        ]
        if not fresh:
            self.held_back += 1
            return False
        for reason in reasons:
            last[reason] = pts_s
        return True

    def _severity(self, track: TrackFrame) -> str:
        rule = self.settings.classes.get(track.class_name)
        rank = SEVERITIES.index(rule.severity) if rule is not None else 0
        for zone in track.zones:
            named = self.settings.zone_severity.get(zone)
            if named is not None:
                rank = max(rank, SEVERITIES.index(named))
        return SEVERITIES[rank]

    def _event(
        self,
        transition: str,
        track_id: int,
        life: _Life,
        before: dict[str, Any] | None,
        reasons: list[str],
        epoch: int,
        frame_index: int,
        pts_s: float,
    ) -> dict[str, Any]:
        after = _snapshot_state(life)
        return {
            "event_id": f"{self.camera_id}:{epoch}:{track_id}:{transition}:{frame_index}",
            "transition": transition,
            "type": life.type,
            "severity": life.severity,
            "camera_id": self.camera_id,
            "track_id": track_id,
            "class_name": life.class_name,
            "reasons": reasons,
            "frame_index": frame_index,
            "pts_s": round(pts_s, 6),
            "started_pts_s": round(life.started_pts_s, 6),
            "duration_s": round(pts_s - life.started_pts_s, 6),
            "bbox": [round(v, 1) for v in life.bbox],
            "zones": list(life.zones),
            "entered_zones": list(life.entered),
            "dwell_s": {k: round(v, 3) for k, v in life.dwell_s.items()},
            "top_score": round(life.top_score, 4),
            "best_frame": life.best_frame,
            "before": before,
            "after": after,
        }

    def active(self) -> list[int]:
        """The tracks alive now."""
        return sorted(self._lives)


def _snapshot_state(life: _Life) -> dict[str, Any]:
    return {
        "zones": list(life.zones),
        "severity": life.severity,
        "top_score": round(life.top_score, 4),
    }
