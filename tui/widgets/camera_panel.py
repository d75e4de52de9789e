"""A camera's panel on its node detail: pace, the detector's load, tracks, zones and the latest
events, as `camera_view` gathered them from the vision nodes it feeds."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from schnitzel_tui.cameras import CameraView, DetectorLoad
from schnitzel_tui.formatting import format_seconds
from schnitzel_tui.theme import HEALTH_MARK, health_style

__all__ = ["CameraPanel", "camera_text"]

LABEL = 9
"""Cells of the label column (`detector `, `zones    `)."""


class CameraPanel(Static):
    """One camera, gathered; redrawn only when what it shows changed."""

    DEFAULT_CSS = """
    CameraPanel { height: auto; border: round $primary-darken-2; padding: 0 1; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.view: CameraView | None = None
        """What is shown now."""
        self._drawn = False

    def on_mount(self) -> None:
        self.border_title = "camera"

    def show(self, view: CameraView | None) -> None:
        """Draw `view` (None: the node has no figures yet)."""
        if self._drawn and view == self.view:
            return
        self.view, self._drawn = view, True
        self.update(camera_text(view) if view is not None else Text("no figures yet", "dim"))


def camera_text(view: CameraView) -> Text:
    """The panel's lines: the camera, each detector, tracks, zones, then the newest events
    first (so a cut panel keeps the newest)."""
    text = Text()
    text.append(view.camera, "bold")
    text.append(f"  {view.plugin} · {_fps(view.fps)} · ")
    text.append(f"{HEALTH_MARK.get(view.health, '?')} {view.health}", health_style(view.health))
    if view.connected is not None:
        text.append(" · ")
        text.append(*(("connected", "") if view.connected else ("disconnected", "bold red")))
    if view.last_frame_age_s is not None and view.last_frame_age_s >= 2:
        text.append(f" · last frame {format_seconds(view.last_frame_age_s)} ago", "yellow")
    if view.reconnects:
        text.append(f" · {view.reconnects} reconnects", "yellow")
    for detector in view.detectors:
        _line(text, "detector", _detector_text(detector))
    if view.tracking:
        tracks = f"{view.tracks} now"
        if view.active:
            tracks += ": " + " ".join(view.active)
        _line(text, "tracks", Text(f"{tracks} · {view.ids_given} ids given"))
    if view.zones:
        zones = Text()
        for n, zone in enumerate(view.zones):
            if n:
                zones.append(" · ")
            if zone.line:
                zones.append(f"{zone.name} (line)", "dim")
                continue
            zones.append(f"{zone.name}: ")
            zones.append(*((" ".join(zone.inside), "bold") if zone.inside else ("none", "dim")))
        _line(text, "zones", zones)
    if view.detectors or view.tracking or view.zones or view.latest:
        label = "events*" if view.latest_of_all else "events"
        if not view.latest:
            _line(text, label, Text("none yet", "dim"))
        for n, event in enumerate(reversed(view.latest)):
            _line(text, label if n == 0 else "", Text(event, "" if n else "bold"))
        if view.latest_of_all:
            text.append("\n* of every camera its events node serves", "dim")
    return text


def _line(text: Text, label: str, value: Text) -> None:
    text.append("\n" + label.ljust(LABEL), "cyan")
    text.append_text(value)


def _detector_text(detector: DetectorLoad) -> Text:
    text = Text(f"{detector.node}  ")
    if detector.p50_ms is None:
        text.append("no frame yet", "dim")
    else:
        text.append(f"{detector.p50_ms:.0f} ms p50 · {detector.p99_ms or 0:.0f} ms p99")
    busy = f" · busy {detector.busy:.0%}"
    text.append(busy, "yellow" if detector.busy >= 0.9 else "")
    text.append(f" · {detector.frames} frames")
    if detector.motion_skipped is not None:
        text.append(f" · {detector.motion_skipped} skipped (no motion)")
    if detector.shared_with:
        text.append(f" · shared with {', '.join(detector.shared_with)}", "dim")
    return text


def _fps(fps: float) -> str:
    return f"{fps:.1f} fps".replace(".0 fps", " fps")
