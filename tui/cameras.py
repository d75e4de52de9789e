"""A camera as the operator thinks of it, gathered from the nodes downstream of its source.

A camera is a vision source node (`video_file`, `rtsp`, `camera`); its id is the node's
`camera_id`, else the node id. The detector's, the tracker's, the zones' and the events' own
figures (`plugin_stats`, docs/vision.md) are per node, some of them per camera: `camera_view`
picks, for one camera, what the vision nodes it feeds say about it. Pure functions of the
snapshot and the graph, so they are tested without a screen.

Stats are JSON a plugin chose: every value is read as what it may be, never trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schnitzel_tui.model import ConsoleSnapshot, NodeView, Topology, TopologyNode

__all__ = [
    "CAMERA_PLUGINS",
    "CameraView",
    "DetectorLoad",
    "ZoneView",
    "camera_id",
    "camera_view",
    "camera_views",
    "is_camera",
]

CAMERA_PLUGINS = frozenset({"video_file", "rtsp", "camera"})
"""The vision pack's sources: each node of these is one camera."""

LATEST_SHOWN = 5
"""The events plugin keeps its last five."""


@dataclass(frozen=True, slots=True)
class DetectorLoad:
    """What one `detect` node fed by this camera reports."""

    node: str
    frames: int
    p50_ms: float | None
    p99_ms: float | None
    """None before its first inference."""
    busy: float
    """0..1: how much of the time its threads were inferring since it opened."""
    motion_skipped: int | None
    """Frames motion gating spared it (all its cameras); None without gating."""
    shared_with: tuple[str, ...]
    """The other cameras this detector serves: its figures are theirs too."""


@dataclass(frozen=True, slots=True)
class ZoneView:
    """One zone (or line) on this camera and the tracks inside it now."""

    name: str
    line: bool
    """Two points: a line crossed, nobody stays on it."""
    inside: tuple[str, ...]
    """Track ids as the zones node writes them (`#1`)."""


@dataclass(frozen=True, slots=True)
class CameraView:
    """One camera, gathered: its pace, the detector's load, tracks, zones, latest events."""

    node: str
    camera: str
    plugin: str
    health: str
    fps: float
    """Frames per second the source passes on."""
    connected: bool | None
    """A live source's connection; None for a file."""
    last_frame_age_s: float | None
    reconnects: int | None
    detectors: tuple[DetectorLoad, ...]
    tracking: bool
    """A `track` node is downstream: `tracks` and `ids_given` mean something."""
    tracks: int
    """Confirmed tracks now."""
    ids_given: int
    active: tuple[str, ...]
    """Tracks with an open event lifecycle (`events`), `#1` …"""
    zones: tuple[ZoneView, ...]
    latest: tuple[str, ...]
    """The newest events, oldest first (`update person #1 warning enter:dock`)."""
    latest_of_all: bool
    """One `events` node serves several cameras and its latest events do not say which:
    `latest` is theirs too."""

    @property
    def last_event(self) -> str:
        """The newest event, or empty."""
        return self.latest[-1] if self.latest else ""


def is_camera(node: TopologyNode) -> bool:
    """A vision source: one node, one camera."""
    return node.plugin in CAMERA_PLUGINS


def camera_id(node: TopologyNode) -> str:
    """The id its frames carry (`camera_id` in the config, else the node id)."""
    given = node.config.get("camera_id")
    return given if isinstance(given, str) and given else node.id


def camera_views(snapshot: ConsoleSnapshot, topology: Topology) -> tuple[CameraView, ...]:
    """Every camera of the graph, in graph-file order."""
    views = (camera_view(snapshot, topology, n.id) for n in topology.nodes if is_camera(n))
    return tuple(v for v in views if v is not None)


def camera_view(snapshot: ConsoleSnapshot, topology: Topology, node_id: str) -> CameraView | None:
    """The camera whose source is `node_id`; None when that node is not a camera or has no
    figures yet."""
    declared = topology.node(node_id)
    source = snapshot.nodes.get(node_id)
    if declared is None or source is None or not is_camera(declared):
        return None
    camera = camera_id(declared)
    feeds = _cameras_feeding(topology)
    fed = [(topology.node(n), snapshot.nodes.get(n)) for n in _downstream(topology, node_id)]
    vision = [(d, v) for d, v in fed if d is not None and v is not None]
    by_plugin: dict[str, list[tuple[TopologyNode, NodeView]]] = {}
    for d, v in vision:
        by_plugin.setdefault(d.plugin, []).append((d, v))
    stats = source.plugin_stats
    trackers = [v.plugin_stats for _, v in by_plugin.get("track", [])]
    latest, of_all = _latest(camera, by_plugin.get("events", []), feeds)
    met = {str(c) for s in trackers for c in _dict(s.get("tracks"))}  # cameras seen so far
    return CameraView(
        node=node_id,
        camera=camera,
        plugin=declared.plugin,
        health=source.health,
        fps=source.rate_out,
        connected=_bool(stats.get("connected")),
        last_frame_age_s=_float(stats.get("last_frame_age_s")),
        reconnects=_int(stats.get("reconnects")),
        detectors=tuple(
            _detector(v, camera, feeds.get(v.id, ())) for _, v in by_plugin.get("detect", [])
        ),
        tracking=bool(trackers),
        tracks=sum(_int(_dict(s.get("tracks")).get(camera)) or 0 for s in trackers),
        ids_given=sum(_int(_dict(s.get("ids_given")).get(camera)) or 0 for s in trackers),
        active=tuple(
            track
            for _, v in by_plugin.get("events", [])
            for track in _ids(_dict(v.plugin_stats.get("active")).get(camera))
        ),
        zones=tuple(
            zone
            for d, v in by_plugin.get("zones", [])
            for zone in _zones(camera, d, v, feeds.get(v.id, ()), met)
        ),
        latest=latest,
        latest_of_all=of_all,
    )


def _downstream(topology: Topology, node_id: str) -> list[str]:
    """Every node `node_id` feeds, directly or not, nearest first."""
    found: list[str] = []
    frontier = [node_id]
    while frontier:
        following = [
            e.target for e in topology.edges if e.source in frontier and e.target not in found
        ]
        following = [n for n in dict.fromkeys(following) if n != node_id]
        found.extend(following)
        frontier = following
    return found


def _cameras_feeding(topology: Topology) -> dict[str, tuple[str, ...]]:
    """Node id -> the camera ids whose frames can reach it."""
    feeds: dict[str, list[str]] = {}
    for node in topology.nodes:
        if is_camera(node):
            for reached in _downstream(topology, node.id):
                feeds.setdefault(reached, []).append(camera_id(node))
    return {node: tuple(dict.fromkeys(cameras)) for node, cameras in feeds.items()}


def _detector(node: NodeView, camera: str, cameras: tuple[str, ...]) -> DetectorLoad:
    stats = node.plugin_stats
    inference = _dict(stats.get("inference_ms"))
    return DetectorLoad(
        node=node.id,
        frames=_int(stats.get("frames")) or 0,
        p50_ms=_float(inference.get("p50")),
        p99_ms=_float(inference.get("p99")),
        busy=_float(stats.get("busy")) or 0.0,
        motion_skipped=_int(stats.get("motion_skipped")),
        shared_with=tuple(c for c in cameras if c != camera),
    )


def _zones(
    camera: str,
    declared: TopologyNode,
    node: NodeView,
    cameras: tuple[str, ...],
    met: set[str],
) -> list[ZoneView]:
    """The zones declared for this camera (or for every camera), with who is inside.

    The zones node names a zone `zone` while it has seen one camera and `camera/zone` once it
    has seen several: a bare name is this camera's when this camera is the only one that
    feeds the node, or the only one the tracker before it has met (`met`)."""
    inside = _dict(node.plugin_stats.get("inside"))
    bare_is_ours = cameras == (camera,) or met == {camera}
    members: dict[str, tuple[str, ...]] = {}
    for key, ids in inside.items():
        owner, _, zone = str(key).rpartition("/")
        if owner == camera or (not owner and bare_is_ours):
            members[zone] = _ids(ids)
    views: list[ZoneView] = []
    for zone in declared.config.get("zones") or ():
        if not isinstance(zone, Mapping) or zone.get("camera") not in (None, camera):
            continue
        name = str(zone.get("name"))
        points = zone.get("points")
        line = isinstance(points, list) and len(points) == 2
        views.append(ZoneView(name, line, members.pop(name, ())))
    views.extend(ZoneView(name, False, ids) for name, ids in members.items())  # swapped in
    return views


def _latest(
    camera: str,
    events_nodes: list[tuple[TopologyNode, NodeView]],
    feeds: Mapping[str, tuple[str, ...]],
) -> tuple[tuple[str, ...], bool]:
    """The newest events of the `events` nodes this camera feeds, and whether they may be
    another camera's too (the plugin's `latest` does not name the camera)."""
    latest: list[str] = []
    of_all = False
    for _, node in events_nodes:
        stats = node.plugin_stats
        text = stats.get("latest")
        if not isinstance(text, str) or not text:
            continue
        met = set(_dict(stats.get("active")))
        if feeds.get(node.id, ()) != (camera,) and met - {camera}:
            of_all = True
        latest.extend(part.strip() for part in text.split(" | ") if part.strip())
    return tuple(latest[-LATEST_SHOWN:]), of_all


def _ids(value: Any) -> tuple[str, ...]:
    """`#1 #2` (or `none`) as ("#1", "#2")."""
    if not isinstance(value, str):
        return ()
    return tuple(part for part in value.split() if part.startswith("#"))


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
