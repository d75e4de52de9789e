"""`events`: per-track lifecycle events (new, update, end) from tracked, zoned detections, with
the best snapshot in the blob store (lifecycle.py decides; this node encodes and stores)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from schnitzel import NodeContext, PayloadProfile, PayloadRef, PluginConfig, StreamPacket, Transform
from schnitzel_plugins.vision.blobs import BlobStore
from schnitzel_plugins.vision.held_blobs import HeldBlobs
from schnitzel_plugins.vision.lifecycle import ClassRule, Lifecycle, LifecycleSettings, TrackFrame
from schnitzel_plugins.vision.tracked import FrameTracks

__all__ = ["Events", "EventsConfig"]

_ZONE_WORDS = {"enter": "entered", "leave": "left", "cross": "crossed", "loiter": "loitering in"}
_ZONE_KINDS = frozenset(_ZONE_WORDS)

Severity = Literal["info", "warning", "critical"]


class ClassMapEntry(BaseModel):
    """What a class becomes."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, description="The event type.")
    severity: Severity = "info"


class EventsConfig(PluginConfig):
    """Options of the events transform."""

    classes: dict[str, ClassMapEntry] = Field(
        default_factory=dict, description="Class name -> event type and severity."
    )
    zone_severity: dict[str, Severity] = Field(
        default_factory=dict, description="Zone -> least severity of a track inside it."
    )
    cooldown_s: StrictFloat | StrictInt = Field(
        default=10, ge=0, description="Updates per camera, type and track at most this often."
    )
    better_by: StrictFloat | StrictInt = Field(
        default=0.05, ge=0, le=1, description="Score gain over the best that makes an update."
    )
    snapshot_dir: str | None = Field(
        default=None, description="Blob store directory for snapshots; null: no snapshots."
    )
    snapshot_max_bytes: StrictInt | None = Field(
        default=256 << 20, ge=1, description="Oldest snapshots go once over this."
    )
    snapshot_quality: StrictInt = Field(default=85, ge=1, le=100, description="JPEG quality.")
    log_zone_events: StrictBool = Field(
        default=True, description="Zone entries, exits, crossings and loitering in the event log."
    )


class Events(Transform):
    """One event per track transition (new, update, end), JSON, with the best snapshot."""

    name: ClassVar[str] = "events"
    Config: ClassVar[type[PluginConfig]] = EventsConfig
    accepts = frozenset({"detection"})
    emits = frozenset({"event"})
    emits_profile = PayloadProfile.JSON_PORTABLE
    blocking: ClassVar[bool] = True
    """JPEG encoding of snapshots (milliseconds a frame) and blob writes run on the node's
    thread, not the event loop; `stats()` (read on the loop) only copies."""
    max_calls_at_once: ClassVar[int | None] = 1
    """Each camera's tracks follow its frames in order, and its snapshots are pinned per call:
    one call at a time, whatever a throttle asks."""

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        c = config
        self.settings = LifecycleSettings(
            {k: ClassRule(v.type, v.severity) for k, v in c.classes.items()},
            dict(c.zone_severity),
            float(c.cooldown_s),
            float(c.better_by),
        )
        self.lives: dict[str, Lifecycle] = {}
        self.store: BlobStore | None = None
        self.best: dict[tuple[str, int], tuple[bytes, bytes]] = {}
        """(camera, track) -> JPEG of the crop and of the frame at the track's best score."""
        self.latest: deque[str] = deque(maxlen=5)
        self.counts: dict[str, int] = {}
        self.writing: set[str] = set()
        """Snapshots this call wrote: its events are not in any inbox yet, so the runtime
        does not count them; retention keeps them until the call returns."""
        self.held = HeldBlobs(
            context,
            lambda: self.writing,
            blobs="snapshots",
            bound="snapshot_max_bytes",
            holders="events",
        )
        if c.snapshot_dir is not None:
            # One frame per call: when a call starts, the events of the calls before it are
            # in the next inboxes, where `refs_held()` sees them, so `writing` is exact.
            self.max_batch = 1

    async def open(self) -> None:
        if self.config.snapshot_dir is not None:
            root = self.context.resolve(self.config.snapshot_dir)
            self.store = await asyncio.to_thread(
                BlobStore, root, self.config.snapshot_max_bytes, pinned=self.held.pinned
            )

    def process(self, packet: StreamPacket) -> list[StreamPacket]:
        payload = packet.payload
        if not isinstance(payload, FrameTracks):
            raise TypeError(
                f"events takes tracked detection packets (a FrameTracks payload); {packet.kind} "
                f"packet {packet.packet_id} carries {type(payload).__name__}: put `events` "
                "after `track` (and `zones`)"
            )
        self.writing.clear()
        frame = payload.frame
        life = self.lives.get(frame.camera_id)
        if life is None:
            life = self.lives[frame.camera_id] = Lifecycle(frame.camera_id, self.settings)
        events, best_now = life.step(
            frame.epoch,
            frame.index,
            frame.pts_s,
            [
                TrackFrame(t.track_id, t.class_name, t.bbox, t.confidence, t.zones, t.dwell_s)
                for t in payload.tracks
            ],
            [t.to_json() for t in payload.transitions],
            [t.track_id for t in payload.ended],
        )
        if self.store is not None:
            for t in payload.tracks:
                if t.track_id in best_now:
                    self.best[(frame.camera_id, t.track_id)] = _encode(
                        frame.image, t.bbox, self.config.snapshot_quality
                    )
        out = []
        for event in events:
            ref = self._snapshot(frame.camera_id, event)
            if event["transition"] == "end":
                self.best.pop((frame.camera_id, event["track_id"]), None)
            key = event["event_id"]
            self.counts[event["transition"]] = self.counts.get(event["transition"], 0) + 1
            self._tell(event)
            if self.store is not None:
                self.held.tell(self.store)
            out.append(
                StreamPacket.new(
                    "event",
                    packet.source_id,
                    packet.seq,
                    payload=event,
                    meta={**packet.meta, "idempotency_key": key},
                    payload_ref=ref,
                )
            )
        return out

    def _tell(self, event: dict[str, Any]) -> None:
        """The console's latest events, and the run's event log for zone changes."""
        who = f"{event['type']} #{event['track_id']}"
        why = " ".join(event["reasons"])
        self.latest.append(f"{event['transition']} {who} {event['severity']} {why}".strip())
        zone_changes = [r for r in event["reasons"] if r.split(":")[0] in _ZONE_KINDS]
        if zone_changes and self.config.log_zone_events:
            words = ", ".join(
                _ZONE_WORDS[r.split(":")[0]] + " " + r.split(":", 1)[1] for r in zone_changes
            )
            self.context.event("info", f"camera {event['camera_id']}: {who} {words}")

    def _snapshot(self, camera: str, event: dict[str, Any]) -> PayloadRef | None:
        held = self.best.get((camera, event["track_id"]))
        if self.store is None or held is None:
            event["snapshot"] = None
            return None
        crop, whole = held
        crop_ref = self.store.put(crop, "image/jpeg")
        self.writing.add(crop_ref.uri)
        frame_ref = self.store.put(whole, "image/jpeg")
        self.writing.add(frame_ref.uri)
        event["snapshot"] = {
            "frame_index": event["best_frame"],
            "crop": _ref_json(crop_ref),
            "frame": _ref_json(frame_ref),
        }
        return crop_ref

    def stats(self) -> dict[str, Any]:
        """Events so far per transition, updates held back by the cooldown, live tracks per
        camera, and the latest events, newest last (`update person warning #1 enter:dock`)."""
        lives = list(self.lives.items())  # one C-level copy: process() may add a camera
        store = self.store
        retention = {}
        if store is not None:  # plain reads, no lock: a collection may be asking the loop
            retention = {
                "snapshot_bytes": store.total_bytes,
                "snapshots_removed": store.removed,
                "snapshots_kept_pinned": store.kept_pinned,
                "snapshots_over_by_pinned": store.over_by_pinned,
            }
        return {
            **retention,
            "events": dict(self.counts),
            "held_back": sum(life.held_back for _, life in lives),
            "active": {
                camera: " ".join(f"#{i}" for i in life.active()) or "none" for camera, life in lives
            },
            "latest": " | ".join(list(self.latest)),
        }


def _encode(
    image: Any, bbox: tuple[float, float, float, float], quality: int
) -> tuple[bytes, bytes]:
    import cv2

    h, w = image.shape[:2]
    x1, y1, x2, y2 = bbox
    left, top = min(max(0, int(x1)), w - 1), min(max(0, int(y1)), h - 1)
    right, bottom = min(w, max(left + 1, int(x2 + 0.999))), min(h, max(top + 1, int(y2 + 0.999)))
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    ok_crop, crop = cv2.imencode(".jpg", image[top:bottom, left:right], params)
    ok_frame, whole = cv2.imencode(".jpg", image, params)
    if not (ok_crop and ok_frame):
        raise ValueError(f"OpenCV could not encode a snapshot of box {bbox}")
    return crop.tobytes(), whole.tobytes()


def _ref_json(ref: PayloadRef) -> dict[str, Any]:
    return {
        "uri": ref.uri,
        "content_type": ref.content_type,
        "size": ref.size,
        "sha256": ref.sha256,
    }
