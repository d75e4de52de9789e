"""The cameras overview: one row per camera with its pace, the detector's load, its tracks,
who is in its zones, and its last event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from schnitzel_tui.cameras import CameraView
from schnitzel_tui.theme import HEALTH_MARK, health_style
from schnitzel_tui.widgets.keyed_table import Cell, Column, KeyedTable

__all__ = ["CameraTable", "camera_cells"]

COLUMNS: tuple[Column, ...] = (
    ("node", "node", 12),
    ("camera", "camera", 14),
    ("fps", "fps", 6),
    ("detector", "detector", 11),
    ("tracks", "tracks", 6),
    ("zones", "in zones", 16),
    ("last", "last event", 60),
)
"""At 80 columns the zones are in view; the last event scrolls (`→`) or is on the camera's
detail (`enter`)."""


class CameraTable(KeyedTable):
    """One row per camera, in graph-file order; enter opens the camera's detail."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(COLUMNS, key_column="node", **kwargs)

    def show(self, cameras: Sequence[CameraView]) -> int:
        """Show these cameras; return how many cells changed."""
        return self.sync({c.node: camera_cells(c) for c in cameras})


def camera_cells(view: CameraView) -> tuple[Cell, ...]:
    """One row: `cam`, `● dock-cam`, `12.5`, `116 ms 86%`, `1`, `dock #1`, the last event."""
    camera = Text.assemble(
        (HEALTH_MARK.get(view.health, "?"), health_style(view.health)), f" {view.camera}"
    )
    if view.connected is False:
        camera.append(" ✖", "bold red")
    detectors = [d for d in view.detectors if d.p50_ms is not None]
    if detectors:
        busiest = max(detectors, key=lambda d: d.busy)
        detector = Text(f"{busiest.p50_ms:.0f} ms ")
        detector.append(f"{busiest.busy:.0%}", "yellow" if busiest.busy >= 0.9 else "")
    else:
        detector = Text("—" if not view.detectors else "no frame", "dim")
    occupied = [f"{z.name} {' '.join(z.inside)}" for z in view.zones if z.inside]
    return (
        view.node,
        camera,
        f"{view.fps:.1f}".removesuffix(".0"),
        detector,
        str(view.tracks) if view.tracking else "—",
        Text(", ".join(occupied)) if occupied else Text("—", "dim"),
        view.last_event or Text("—", "dim"),
    )
