"""Enter on a node: its history as sparklines, its config, drops by reason, what its plugin
retries and why, recent errors; on a camera, its zones, tracks and latest events."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import yaml
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Sparkline, Static

from schnitzel_tui.cameras import CameraView, is_camera
from schnitzel_tui.formatting import format_rate
from schnitzel_tui.history import NodeHistory
from schnitzel_tui.model import NodeView, TopologyNode
from schnitzel_tui.theme import HEALTH_MARK, health_style
from schnitzel_tui.widgets.camera_panel import CameraPanel
from schnitzel_tui.widgets.status_bar import StatusBar

__all__ = ["NodeDetailScreen"]


class NodeDetailScreen(Screen[None]):
    """One node, in depth. Escape goes back."""

    DEFAULT_CSS = """
    NodeDetailScreen #title { height: 1; padding: 0 1; text-style: bold; }
    NodeDetailScreen .series { height: 2; }
    NodeDetailScreen .series Static { width: 26; height: 2; padding: 0 1; }
    NodeDetailScreen Sparkline { width: 1fr; height: 2; }
    NodeDetailScreen #lower { height: 1fr; }
    NodeDetailScreen #config { width: 1fr; border: round $primary-darken-2; }
    NodeDetailScreen #right { width: 2fr; }
    NodeDetailScreen #drops { height: auto; border: round $primary-darken-2; }
    NodeDetailScreen #errors { height: 1fr; border: round $primary-darken-2; }
    NodeDetailScreen.short-camera .series { display: none; }
    """

    SHORT = 30
    """Below this many rows a camera's sparklines step aside for its panel (the rate is in
    the panel's first line)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, node_id: str, declared: TopologyNode | None, graph: str) -> None:
        super().__init__()
        self.node_id = node_id
        self.declared = declared
        self.graph = graph
        self._errors_shown: tuple[object, ...] = ()
        self.camera = declared is not None and is_camera(declared)
        """A vision source: the detail shows its camera panel."""

    def compose(self) -> ComposeResult:
        yield StatusBar(self.graph)
        yield Static(f"node {self.node_id}", id="title")
        for name in ("rate", "depth", "p99"):
            with Horizontal(classes="series"):
                yield Static("", id=f"{name}-label")
                yield Sparkline([], id=f"{name}-line")
        if self.camera:
            yield CameraPanel(id="camera")
        with Horizontal(id="lower"):
            with VerticalScroll(id="config"):
                yield Static(_config_text(self.declared))
            with Vertical(id="right"):
                yield Static("", id="drops")
                table: DataTable[str] = DataTable(id="errors", cursor_type="row")
                yield table
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#config").border_title = "config"
        self.query_one("#drops").border_title = "drops and filtering"
        errors = self.query_one("#errors", DataTable)
        errors.border_title = "recent errors"
        errors.add_columns("time", "packet", "error", "message")
        self._fit(self.size.height)

    def on_resize(self) -> None:
        self._fit(self.size.height)

    def _fit(self, height: int) -> None:
        self.set_class(self.camera and height < self.SHORT, "short-camera")

    def show(
        self, node: NodeView | None, history: NodeHistory, camera: CameraView | None = None
    ) -> None:
        """Redraw from the node's latest figures and recorded history (and, for a camera, what
        the vision nodes it feeds say about it)."""
        if node is None:
            self.query_one("#title", Static).update(f"node {self.node_id}: not in the graph")
            return
        mark = HEALTH_MARK.get(node.health, "?")
        title = Text.assemble(
            (f"{node.id}", "bold"),
            f"  {node.kind} · {node.plugin}  ",
            (f"{mark} {node.health}", health_style(node.health)),
        )
        if node.health_reason:
            title.append(f" ({node.health_reason})", style="dim")
        if node.paused:
            title.append("  paused", style="reverse")
        self.query_one("#title", Static).update(title, layout=False)
        self._series("rate", history.rate, f"rate {format_rate(node.rate)}")
        if node.durable is not None:  # the backlog lives on disk: memory holds a window
            depth = f"backlog {node.durable.backlog} · {node.fill:.0%}"
        else:
            depth = f"inbox {node.depth}/{node.capacity}"
        self._series("depth", history.depth, depth)
        self._series("p99", history.p99_ms, f"p99 {node.p99_ms:.2f} ms")
        self.query_one("#drops", Static).update(_drops_text(node))
        if self.camera:
            self.query_one(CameraPanel).show(camera)
        self._show_errors(node)

    def _series(self, name: str, values: object, label: str) -> None:
        self.query_one(f"#{name}-label", Static).update(label, layout=False)
        self.query_one(f"#{name}-line", Sparkline).data = list(values)  # type: ignore[call-overload]

    def _show_errors(self, node: NodeView) -> None:
        if node.recent_errors == self._errors_shown:
            return
        self._errors_shown = node.recent_errors
        table = self.query_one("#errors", DataTable)
        table.clear()
        for error in reversed(node.recent_errors):
            table.add_row(_clock(error.ts), error.packet_id or "—", error.error, error.message)


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def _config_text(declared: TopologyNode | None) -> str:
    if declared is None:
        return "(not declared in the graph)"
    shown = {"config": dict(declared.config), "inbox": dict(declared.inbox)}
    return yaml.safe_dump(shown, sort_keys=False, default_flow_style=False).rstrip()


def _drops_text(node: NodeView) -> Text:
    text = Text.assemble(
        f"received {node.received}  processed {node.processed}  out {node.out}\n",
        f"filtered {node.filtered} (on purpose)  errors {node.errors}  retries {node.retries}\n",
    )
    trouble = node.trouble
    if trouble is not None:
        text.append(
            f"retrying: {trouble.reason} since {_clock(trouble.reason_since)}, "
            f"{trouble.retries} retries since {_clock(trouble.since)}\n",
            style="bold yellow",
        )
    durable = node.durable
    if durable is not None and (durable.parked or durable.parked_dropped or durable.requeued):
        text.append(
            f"parked {durable.parked} (refused, kept in the store: schnitzel ctl parked "
            f"{node.id})  requeued {durable.requeued}  dropped from parking "
            f"{durable.parked_dropped}\n",
            style="yellow" if durable.parked else "",
        )
    if not node.dropped_by_reason:
        text.append("no drops", style="green")
    for reason, count in node.dropped_by_reason:
        text.append(f"dropped {reason}: {count}  ", style="yellow")
    if node.plugin_stats:
        text.append("\n" + plugin_stats_line(node.plugin_stats), style="cyan")
    return text


def plugin_stats_line(stats: Mapping[str, Any]) -> str:
    """A plugin's own figures on one line: `connected yes  skipped 12  inference_ms p50 71 ...`."""
    parts = []
    for key, value in stats.items():
        if isinstance(value, Mapping):
            inner = " ".join(f"{k} {_plain(v)}" for k, v in value.items())
            parts.append(f"{key} {inner}")
        elif value not in ("", None):
            parts.append(f"{key} {_plain(value)}")
    return "  ".join(parts)


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
