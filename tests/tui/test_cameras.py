"""A camera gathered from the vision nodes it feeds (`tui/cameras.py`): on whole typed reports
built here, and on the recording of a real run of graphs/camera.yaml."""

from __future__ import annotations

from typing import Any

from schnitzel.contract.run_report import NodeReport, parse_run_report
from schnitzel_tui.cameras import CameraView, camera_view, camera_views
from schnitzel_tui.model import ConsoleSnapshot, EdgeView, Topology, TopologyNode
from schnitzel_tui.widgets.camera_panel import camera_text
from schnitzel_tui.widgets.camera_table import camera_cells
from tests.tui.recorded_source import RecordedSource
from tests.tui.reports import node_report, run_report

DOCK = {"name": "dock", "camera": None, "points": [[0.6, 0], [1, 0], [1, 1], [0.6, 1]]}
GATE = {"name": "gate", "camera": None, "points": [[0.45, 1], [0.45, 0]]}


def topology(nodes: list[TopologyNode], *edges: tuple[str, str]) -> Topology:
    return Topology("graphs/test.yaml", tuple(nodes), tuple(EdgeView(a, b) for a, b in edges))


def snapshot(**nodes: NodeReport) -> ConsoleSnapshot:
    return ConsoleSnapshot.from_report(run_report(dict(nodes)))


def vision(plugin: str, kind: str, stats: dict[str, Any], **fields: Any) -> NodeReport:
    return node_report(kind=kind, plugin=plugin, plugin_stats=stats, **fields)


def one_camera() -> tuple[Topology, ConsoleSnapshot]:
    """cam -> detect -> track -> zones -> events -> out, a person in the dock."""
    graph = topology(
        [
            TopologyNode("cam", "source", "video_file", {"camera_id": "dock-cam"}),
            TopologyNode("detect", "compute", "detect"),
            TopologyNode("track", "policy", "track"),
            TopologyNode("zones", "policy", "zones", {"zones": [DOCK, GATE]}),
            TopologyNode("events", "transform", "events"),
            TopologyNode("out", "sink", "jsonl"),
        ],
        ("cam", "detect"),
        ("detect", "track"),
        ("track", "zones"),
        ("zones", "events"),
        ("events", "out"),
    )
    figures = snapshot(
        cam=node_report(kind="source", plugin="video_file", rate_out_per_s=12.5),
        detect=vision(
            "detect",
            "compute",
            {
                "frames": 44,
                "inference_ms": {"p50": 115.63, "p99": 395.84},
                "busy": 0.864,
                "motion_skipped": 7,
            },
        ),
        track=vision(
            "track",
            "policy",
            {"tracks": {"dock-cam": 2}, "ids_given": {"dock-cam": 3}, "ended": 1},
        ),
        zones=vision(
            "zones",
            "policy",
            {"inside": {"dock": "#1 #3", "gate": "none"}, "transitions": {"dock:enter": 2}},
        ),
        events=vision(
            "events",
            "transform",
            {
                "events": {"new": 3, "update": 4, "end": 1},
                "held_back": 0,
                "active": {"dock-cam": "#1 #3"},
                "latest": " | ".join(f"update person #1 info step{n}" for n in range(1, 7)),
            },
        ),
        out=node_report(kind="sink", plugin="jsonl"),
    )
    return graph, figures


def test_a_camera_gathers_detector_load_tracks_zones_and_latest_events() -> None:
    graph, figures = one_camera()
    view = camera_view(figures, graph, "cam")
    assert view is not None
    assert (view.camera, view.plugin, view.fps, view.connected) == (
        "dock-cam",
        "video_file",
        12.5,
        None,
    )
    (detector,) = view.detectors
    assert (detector.node, detector.p50_ms, detector.p99_ms, detector.busy) == (
        "detect",
        115.63,
        395.84,
        0.864,
    )
    assert (detector.frames, detector.motion_skipped, detector.shared_with) == (44, 7, ())
    assert (view.tracking, view.tracks, view.ids_given, view.active) == (
        True,
        2,
        3,
        ("#1", "#3"),
    )
    assert [(z.name, z.line, z.inside) for z in view.zones] == [
        ("dock", False, ("#1", "#3")),
        ("gate", True, ()),
    ]
    # the plugin keeps five; the newest is last
    assert view.latest == tuple(f"update person #1 info step{n}" for n in range(2, 7))
    assert view.last_event == "update person #1 info step6"
    assert not view.latest_of_all
    assert [str(cell) for cell in camera_cells(view)] == [
        "cam",
        "● dock-cam",
        "12.5",
        "116 ms 86%",
        "2",
        "dock #1 #3",
        "update person #1 info step6",
    ]


def test_only_vision_sources_are_cameras() -> None:
    graph, figures = one_camera()
    assert camera_view(figures, graph, "detect") is None
    assert camera_view(figures, graph, "nowhere") is None
    assert [v.node for v in camera_views(figures, graph)] == ["cam"]


def test_a_camera_without_vision_nodes_after_it_shows_its_pace_only() -> None:
    graph = topology(
        [
            TopologyNode("cam", "source", "rtsp", {"camera_id": None}),
            TopologyNode("o", "sink", "x"),
        ],
        ("cam", "o"),
    )
    stats = {"connected": False, "reconnects": 4, "last_frame_age_s": 12.0, "fps_out": 0.0}
    figures = snapshot(
        cam=node_report(kind="source", plugin="rtsp", plugin_stats=stats),
        o=node_report(kind="sink", plugin="x"),
    )
    view = camera_view(figures, graph, "cam")
    assert view is not None
    assert (view.camera, view.connected, view.reconnects, view.last_frame_age_s) == (
        "cam",
        False,
        4,
        12.0,
    )
    assert (view.detectors, view.tracking, view.zones, view.latest) == ((), False, (), ())
    assert [str(cell) for cell in camera_cells(view)] == ["cam", "● cam ✖", "0", "—", "—", "—", "—"]
    text = camera_text(view).plain
    assert text.splitlines() == [
        "cam  rtsp · 0 fps · ● ok · disconnected · last frame 12 s ago · 4 reconnects"
    ]


def two_cameras(
    zones_inside: dict[str, str], met: dict[str, int]
) -> tuple[Topology, ConsoleSnapshot]:
    """Two cameras into one detector, tracker, zones and events node; `north` only has a
    zone `door`, `dock` is on both."""
    door = {"name": "door", "camera": "north", "points": [[0, 0], [1, 0], [1, 1]]}
    graph = topology(
        [
            TopologyNode("north", "source", "rtsp", {"camera_id": None}),
            TopologyNode("south", "source", "camera", {"camera_id": "yard"}),
            TopologyNode("detect", "compute", "detect"),
            TopologyNode("track", "policy", "track"),
            TopologyNode("zones", "policy", "zones", {"zones": [DOCK, door]}),
            TopologyNode("events", "transform", "events"),
        ],
        ("north", "detect"),
        ("south", "detect"),
        ("detect", "track"),
        ("track", "zones"),
        ("zones", "events"),
    )
    figures = snapshot(
        north=node_report(kind="source", plugin="rtsp", plugin_stats={"connected": True}),
        south=node_report(kind="source", plugin="camera", plugin_stats={"connected": True}),
        detect=vision(
            "detect",
            "compute",
            {"frames": 9, "inference_ms": {"p50": None, "p99": None}, "busy": 0.0},
        ),
        track=vision("track", "policy", {"tracks": met, "ids_given": met, "ended": 0}),
        zones=vision("zones", "policy", {"inside": zones_inside, "transitions": {}}),
        events=vision(
            "events",
            "transform",
            {
                "events": {"new": 2},
                "held_back": 0,
                "active": {c: "#1" for c in met},
                "latest": "new person #1 info | new car #1 info",
            },
        ),
    )
    return graph, figures


def test_cameras_sharing_nodes_each_get_their_own_tracks_and_zones() -> None:
    graph, figures = two_cameras(
        {"north/dock": "#1", "north/door": "#1", "yard/dock": "none"}, {"north": 1, "yard": 0}
    )
    north = camera_view(figures, graph, "north")
    yard = camera_view(figures, graph, "south")
    assert north is not None and yard is not None
    assert [(z.name, z.inside) for z in north.zones] == [("dock", ("#1",)), ("door", ("#1",))]
    assert [(z.name, z.inside) for z in yard.zones] == [("dock", ())]
    assert (north.tracks, yard.tracks) == (1, 0)
    assert north.detectors[0].shared_with == ("yard",) and yard.detectors[0].shared_with == (
        "north",
    )
    assert north.detectors[0].p50_ms is None
    # the events node's latest do not name the camera: both see them, marked as shared
    assert north.latest_of_all and yard.latest_of_all
    assert "* of every camera its events node serves" in camera_text(north).plain


def test_bare_zone_names_belong_to_the_only_camera_met_so_far() -> None:
    graph, figures = two_cameras({"dock": "#2", "door": "none"}, {"north": 1})
    north = camera_view(figures, graph, "north")
    yard = camera_view(figures, graph, "south")
    assert north is not None and yard is not None
    assert [(z.name, z.inside) for z in north.zones] == [("dock", ("#2",)), ("door", ())]
    assert [(z.name, z.inside) for z in yard.zones] == [("dock", ())]
    assert not north.latest_of_all  # only north has been met: its latest are its own


def test_stats_of_an_unexpected_shape_show_as_unknown_not_as_a_crash() -> None:
    graph, _ = one_camera()
    figures = snapshot(
        cam=node_report(kind="source", plugin="video_file", plugin_stats={"connected": "yes"}),
        detect=vision(
            "detect", "compute", {"frames": "many", "inference_ms": [1, 2], "busy": True}
        ),
        track=vision("track", "policy", {"tracks": "3"}),
        zones=vision("zones", "policy", {"inside": ["dock"]}),
        events=vision("events", "transform", {"latest": 5, "active": None}),
        out=node_report(kind="sink", plugin="jsonl"),
    )
    view = camera_view(figures, graph, "cam")
    assert view is not None
    assert view.connected is None and view.detectors[0].p50_ms is None
    assert (view.detectors[0].frames, view.detectors[0].busy) == (0, 0.0)
    assert (view.tracks, view.active, view.latest) == (0, (), ())
    assert [z.inside for z in view.zones] == [(), ()]


def recorded_view(poll: int) -> CameraView:
    """The camera of graphs/camera.yaml as the console sees it at that recorded snapshot."""
    recording = RecordedSource("camera")
    topology_ = Topology.from_description(recording.description)
    report = parse_run_report(recording.snapshots[poll], "the recording camera")
    view = camera_view(ConsoleSnapshot.from_report(report), topology_, "cam")
    assert view is not None
    return view


def test_the_recorded_demo_shows_the_person_in_the_dock() -> None:
    early, inside = recorded_view(1), recorded_view(12)
    assert early.camera == inside.camera == "dock-cam"
    assert (early.tracks, early.zones[0].inside, early.latest) == (0, (), ())
    assert inside.detectors[0].node == "detect" and inside.detectors[0].p50_ms
    assert (inside.tracks, inside.active) == (1, ("#1",))
    assert [(z.name, z.line, z.inside) for z in inside.zones] == [
        ("dock", False, ("#1",)),
        ("gate", True, ()),
    ]
    assert inside.last_event == "update person #1 warning enter:dock severity"
