"""The line at the top: graph, run state, totals, and the console's own modes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.widgets import Static

from schnitzel_tui.formatting import format_count, format_seconds
from schnitzel_tui.model import ConsoleSnapshot
from schnitzel_tui.theme import HEALTH_MARK, health_style

__all__ = ["StatusBar", "StatusFacts", "status_text"]

STATUS_HEALTH = {"running": "ok", "ok": "ok", "degraded": "degraded", "error": "failing"}


class StatusBar(Static):
    """One line: what runs, how it is doing, and FROZEN / READ-ONLY / SUGGESTIONS badges."""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; }
    """

    def __init__(self, graph: str, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.graph = graph
        self._shown: Text | None = None
        self._facts: StatusFacts | None = None

    def show(self, facts: StatusFacts) -> None:
        """Redraw if anything shown changed."""
        self._facts = facts
        text = status_text(self.graph, facts, self.size.width or None)
        if text != self._shown:
            self._shown = text
            self.update(text, layout=False)  # one line, always: no re-layout per poll

    def on_resize(self) -> None:
        """Fit the line to the new width."""
        if self._facts is not None:
            self.show(self._facts)


@dataclass(frozen=True, slots=True)
class StatusFacts:
    """What the status line shows besides the graph's name."""

    snapshot: ConsoleSnapshot | None
    frozen: bool = False
    read_only: bool = False
    refresh_s: float = 1.0
    note: str = ""
    """Said in bold after the state (a drain under way, a failure)."""
    failed: bool = False
    """The run could not start."""
    open_suggestions: int = 0
    """Suggestions of the controller waiting for an operator (`g` lists them)."""


def status_text(graph: str, facts: StatusFacts, width: int | None = None) -> Text:
    """The status line's text: what matters first. Within `width` cells (a narrow terminal)
    the refresh interval goes first, then the graph's name is shortened, then the counts'
    labels, so the run's state and its counts always show."""
    name = Path(graph).name or graph
    text = Text()
    for long_labels, every in ((True, True), (True, False), (False, False)):
        text = _status_text(name, facts, long_labels, every)
        if width is None or text.cell_len <= width:
            return text
        if not every:  # the name gives way before the labels do
            cut = _shortened(name, len(name) - (text.cell_len - width))
            text = _status_text(cut, facts, long_labels, every)
            if text.cell_len <= width:
                return text
    return text


MIN_NAME = 8
"""The fewest cells of the graph's name a narrow status line keeps."""
LABELS = {True: ("dropped", "errors", "emitted", "delivered"), False: ("drop", "err", "in", "out")}
"""The counts' labels, long and short (`in`: packets sources emitted, `out`: delivered)."""


def _status_text(name: str, facts: StatusFacts, long_labels: bool, every: bool) -> Text:
    snapshot = facts.snapshot
    text = Text.assemble((name, "bold"), " ")
    if facts.failed:
        text.append(f"{HEALTH_MARK['failing']} failed", style=health_style("failing"))
    elif snapshot is None:
        text.append("starting…")
    else:
        worst = _worst_health(snapshot)
        state = snapshot.status
        if snapshot.running and snapshot.stop_reason is None and worst != "ok":
            state = worst
        health = STATUS_HEALTH.get(state, worst)
        text.append(f"{HEALTH_MARK.get(health, '?')} {state}", style=health_style(health))
        if not snapshot.running and snapshot.stop_reason:
            text.append(f" ({snapshot.stop_reason})")
        text.append(f" {format_seconds(snapshot.duration_s)}", style="dim")
    if facts.frozen:
        text.append(" FROZEN ", style="reverse bold")
    if facts.read_only:
        text.append(" READ-ONLY ", style="reverse")
    if facts.open_suggestions:
        count = facts.open_suggestions
        badge = f"SUGGESTION{'S' * (count != 1)} (g)" if long_labels else "(g)"
        text.append(f" ◆ {count} {badge} ", style="reverse yellow")
    if facts.note and long_labels:
        text.append(f" {facts.note}", style="bold yellow")
    if snapshot is not None and not facts.failed:
        dropped, errors, emitted, delivered = LABELS[long_labels]
        text.append(" · ")  # losses before totals: a narrow terminal cuts the totals
        shown = format_count(snapshot.dropped)
        text.append(f"{dropped} {shown}", style="yellow" if snapshot.dropped else "")
        text.append(" · ")
        shown = format_count(snapshot.errors)
        text.append(f"{errors} {shown}", style="bold red" if snapshot.errors else "")
        text.append(
            f" · {emitted} {format_count(snapshot.emitted)}"
            f" · {delivered} {format_count(snapshot.delivered)}"
        )
    if facts.note and not long_labels:  # narrow: the counts first, then what happens
        text.append(f" {facts.note}", style="bold yellow")
    if every:
        text.append(f" · every {facts.refresh_s:g} s", style="dim")
    return text


def _shortened(name: str, cells: int) -> str:
    cells = max(cells, MIN_NAME)
    return name if len(name) <= cells else name[: cells - 1] + "…"


def _worst_health(snapshot: ConsoleSnapshot) -> str:
    healths = {node.health for node in snapshot.nodes.values()}
    return next((h for h in ("failing", "degraded") if h in healths), "ok")
