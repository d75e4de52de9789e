"""`zones`: which tracks are in which zone, and when they enter, leave, cross or loiter
(zoning.py does the work). Swappable live: a new polygon takes effect between two frames."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    model_validator,
)

from schnitzel import NodeContext, PluginConfig, Policy, StreamPacket
from schnitzel_plugins.vision.tracked import FrameTracks, ZoneTransition
from schnitzel_plugins.vision.zoning import TrackInput, ZoneRule, ZoneSet

__all__ = ["ZoneConfig", "Zones", "ZonesConfig"]

AnchorName = Literal["bottom_center", "center", "top_center"]


class ZoneConfig(BaseModel):
    """One zone (3 or more points) or line (2 points)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="The zone's name.")
    camera: str | None = Field(default=None, description="Only this camera; null: every one.")
    points: list[tuple[StrictFloat | StrictInt, StrictFloat | StrictInt]] = Field(
        min_length=2, description="[x, y] corners (a polygon) or the two ends of a line."
    )
    normalized: StrictBool = Field(
        default=False, description="Points are fractions of the frame's width and height."
    )
    classes: list[str] | None = Field(default=None, description="Class names it watches.")
    min_confidence: StrictFloat | StrictInt = Field(default=0, ge=0, le=1)
    inertia: StrictInt = Field(
        default=3, ge=1, description="Frames in a row before an enter, leave or cross counts."
    )
    loiter_s: StrictFloat | StrictInt | None = Field(
        default=None, gt=0, description="Seconds inside before one loiter transition."
    )
    direction: Literal["any", "in", "out"] = Field(
        default="any", description="Line only: which crossings count."
    )

    @model_validator(mode="after")
    def _shape(self) -> ZoneConfig:
        if len(self.points) == 2:
            if self.loiter_s is not None:
                raise ValueError(
                    f"zone {self.name!r} is a line (2 points): nothing can loiter on a line; "
                    "give 3 or more points for an area, or drop loiter_s"
                )
        elif self.direction != "any":
            raise ValueError(
                f"zone {self.name!r} is an area ({len(self.points)} points): direction is for "
                "lines (2 points); drop it"
            )
        if self.normalized and any(not (0 <= v <= 1) for p in self.points for v in p):
            raise ValueError(
                f"zone {self.name!r} is normalized but has a point outside 0..1; give "
                "fractions of the frame, or set normalized: false for pixels"
            )
        return self


class ZonesConfig(PluginConfig):
    """Options of the zones policy."""

    zones: list[ZoneConfig] = Field(min_length=1, description="The zones and lines.")
    anchor: AnchorName = Field(
        default="bottom_center", description="The point of a box tested against zones."
    )
    anchors: dict[str, AnchorName] = Field(
        default_factory=dict, description="Per class name, another anchor."
    )

    @model_validator(mode="after")
    def _unique(self) -> ZonesConfig:
        seen: dict[str, list[str | None]] = {}
        for zone in self.zones:
            cameras = seen.setdefault(zone.name, [])
            if zone.camera in cameras or (cameras and None in (zone.camera, *cameras)):
                raise ValueError(
                    f"zone {zone.name!r} is given twice for one camera; a name is unique per "
                    "camera (a zone without `camera` is on every camera): rename one"
                )
            cameras.append(zone.camera)
        return self


class Zones(Policy):
    """Writes each track's zones and dwell, and the frame's zone transitions, on the packet."""

    name: ClassVar[str] = "zones"
    Config: ClassVar[type[PluginConfig]] = ZonesConfig
    accepts = frozenset({"detection"})

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self.sets: dict[str, tuple[ZoneSet, tuple[int, int]]] = {}
        self.counts: dict[str, int] = {}
        """Transitions so far, per `zone:kind`."""

    def _rules(self, camera: str, size: tuple[int, int]) -> list[ZoneRule]:
        width, height = size
        rules = []
        for z in self.config.zones:
            if z.camera is not None and z.camera != camera:
                continue
            sx, sy = (width, height) if z.normalized else (1, 1)
            rules.append(
                ZoneRule(
                    z.name,
                    tuple((float(x) * sx, float(y) * sy) for x, y in z.points),
                    frozenset(z.classes) if z.classes is not None else None,
                    float(z.min_confidence),
                    z.inertia,
                    float(z.loiter_s) if z.loiter_s is not None else None,
                    z.direction,
                )
            )
        return rules

    def _set_for(self, camera: str, size: tuple[int, int]) -> ZoneSet:
        held = self.sets.get(camera)
        if held is None:
            zone_set = ZoneSet(
                self._rules(camera, size), dict(self.config.anchors), self.config.anchor
            )
            self.sets[camera] = (zone_set, size)
            return zone_set
        zone_set, known = held
        if known != size:  # a camera reconnected at another resolution: rescale
            zone_set.replace_rules(self._rules(camera, size))
            self.sets[camera] = (zone_set, size)
        return zone_set

    def process(self, packet: StreamPacket) -> StreamPacket:
        payload = packet.payload
        if not isinstance(payload, FrameTracks):
            raise TypeError(
                f"zones takes tracked detection packets (a FrameTracks payload); {packet.kind} "
                f"packet {packet.packet_id} carries {type(payload).__name__}: put `zones` "
                "after `track`"
            )
        frame = payload.frame
        zone_set = self._set_for(frame.camera_id, (frame.width, frame.height))
        inside, changes = zone_set.update(
            [
                TrackInput(t.track_id, t.bbox, t.class_name, t.confidence, t.missed == 0)
                for t in payload.tracks
            ],
            [t.track_id for t in payload.ended],
            frame.pts_s,
        )
        for change in changes:
            key = f"{change.zone}:{change.kind}"
            self.counts[key] = self.counts.get(key, 0) + 1
        tracks = tuple(
            dataclasses.replace(
                t,
                zones=tuple(sorted(inside.get(t.track_id, {}))),
                dwell_s=inside.get(t.track_id, {}),
            )
            for t in payload.tracks
        )
        transitions = payload.transitions + tuple(
            ZoneTransition(c.track_id, c.zone, c.kind, c.direction) for c in changes
        )
        return packet.evolve(
            payload=dataclasses.replace(payload, tracks=tracks, transitions=transitions)
        )

    def stats(self) -> dict[str, Any]:
        """Who is in each zone now (`cam/zone` with several cameras), and transitions so far
        per `zone:kind`."""
        several = len(self.sets) > 1
        inside: dict[str, str] = {}
        for camera, (zone_set, _) in self.sets.items():
            for zone, ids in zone_set.members().items():
                name = f"{camera}/{zone}" if several else zone
                inside[name] = " ".join(f"#{i}" for i in ids) or "none"
        return {"inside": inside, "transitions": dict(self.counts)}

    def export_state(self) -> Any:
        """Who is in which zone, per camera: handed to the zones node that replaces this one."""
        return {"sets": self.sets, "counts": self.counts}

    def import_state(self, state: Any) -> None:
        """Keep membership of zones kept by name; new polygons apply from the next frame."""
        self.sets = state["sets"]
        self.counts = state["counts"]
        for camera, (zone_set, size) in self.sets.items():
            zone_set.anchors = dict(self.config.anchors)
            zone_set.default_anchor = self.config.anchor
            zone_set.replace_rules(self._rules(camera, size))
