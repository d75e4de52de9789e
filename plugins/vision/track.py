"""`track`: stable track ids per camera, from `detect`'s detections (tracker.py does the work)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, StrictBool, StrictFloat, StrictInt

from schnitzel import NodeContext, PluginConfig, Policy, StreamPacket
from schnitzel_plugins.vision.frame import FrameDetections
from schnitzel_plugins.vision.tracked import FrameTracks, TrackState

if TYPE_CHECKING:  # numpy and scipy load when the first frame comes, not at validation
    from schnitzel_plugins.vision.tracker import TrackedBox, Tracker, TrackerSettings

__all__ = ["Track", "TrackConfig"]


class TrackConfig(PluginConfig):
    """Options of the track policy."""

    iou_threshold: StrictFloat | StrictInt = Field(
        default=0.2, gt=0, le=1, description="Least overlap of prediction and detection."
    )
    max_age: StrictInt = Field(
        default=30, ge=0, description="Frames a track survives without a detection."
    )
    min_hits: StrictInt = Field(
        default=3, ge=1, description="Frames with a detection before a track is reported."
    )
    per_class: StrictBool = Field(default=True, description="Match only within a class.")


class Track(Policy):
    """Gives each object a track id that stays while it is in view (one tracker per camera)."""

    name: ClassVar[str] = "track"
    Config: ClassVar[type[PluginConfig]] = TrackConfig
    accepts = frozenset({"detection"})

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self.trackers: dict[str, Tracker] = {}
        self.ended = 0

    def _settings(self) -> TrackerSettings:
        from schnitzel_plugins.vision.tracker import TrackerSettings

        c = self.config
        return TrackerSettings(
            iou_threshold=float(c.iou_threshold),
            max_age=c.max_age,
            min_hits=c.min_hits,
            per_class=c.per_class,
        )

    def process(self, packet: StreamPacket) -> StreamPacket:
        payload = packet.payload
        if not isinstance(payload, FrameDetections):
            raise TypeError(
                f"track takes detect's detection packets (a FrameDetections payload); "
                f"{packet.kind} packet {packet.packet_id} carries {type(payload).__name__}: "
                "put `track` right after `detect`"
            )
        camera = payload.frame.camera_id
        tracker = self.trackers.get(camera)
        if tracker is None:
            from schnitzel_plugins.vision.tracker import Tracker

            tracker = self.trackers[camera] = Tracker(self._settings())
        found = payload.detections
        live, gone = tracker.update(
            [d.bbox for d in found],
            [d.class_id for d in found],
            [d.confidence for d in found],
            [d.class_name for d in found],
        )
        self.ended += len(gone)
        tracked = FrameTracks(
            payload.frame,
            found,
            payload.model,
            tuple(_state(t) for t in live),
            tuple(_state(t) for t in gone),
        )
        return packet.evolve(payload=tracked)

    def stats(self) -> dict[str, Any]:
        """Per camera: confirmed tracks now and ids given; tracks ended in all."""
        return {
            "tracks": {camera: len(t.confirmed()) for camera, t in self.trackers.items()},
            "ids_given": {camera: t.next_id - 1 for camera, t in self.trackers.items()},
            "ended": self.ended,
        }

    def export_state(self) -> Any:
        """The trackers: a swapped `track` keeps every id (handed over in the process)."""
        return {"trackers": self.trackers, "ended": self.ended}

    def import_state(self, state: Any) -> None:
        """Take the trackers of the node this one replaces, with this node's settings."""
        settings = self._settings()
        for tracker in state["trackers"].values():
            tracker.settings = settings
        self.trackers = state["trackers"]
        self.ended = state["ended"]


def _state(t: TrackedBox) -> TrackState:
    return TrackState(
        t.track_id, t.bbox, t.confidence, t.class_id, t.class_name, t.hits, t.age, t.missed
    )
