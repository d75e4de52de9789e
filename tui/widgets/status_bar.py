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

    def show(self, facts: StatusFacts) -> None:
        """Redraw if anything shown changed."""
        text = status_text(self.graph, facts)
        if text != self._shown:
            self._shown = text
            self.update(text, layout=False)  # one line, always: no re-layout per poll


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


def status_text(graph: str, facts: StatusFacts) -> Text:
    """The status line's text: what matters first, so a narrow terminal cuts the least."""
    snapshot = facts.snapshot
    text = Text.assemble((Path(graph).name or graph, "bold"), " ")
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
        text.append(f" ◆ {count} SUGGESTION{'S' * (count != 1)} (g) ", style="reverse yellow")
    if facts.note:
        text.append(f" {facts.note}", style="bold yellow")
    if snapshot is not None and not facts.failed:
        dropped, errors = format_count(snapshot.dropped), format_count(snapshot.errors)
        text.append(" · ")  # losses before totals: a narrow terminal cuts the totals
        text.append(f"dropped {dropped}", style="yellow" if snapshot.dropped else "")
        text.append(" · ")
        text.append(f"errors {errors}", style="bold red" if snapshot.errors else "")
        text.append(
            f" · emitted {format_count(snapshot.emitted)}"
            f" · delivered {format_count(snapshot.delivered)}"
        )
    text.append(f" · every {facts.refresh_s:g} s", style="dim")
    return text


def _worst_health(snapshot: ConsoleSnapshot) -> str:
    healths = {node.health for node in snapshot.nodes.values()}
    return next((h for h in ("failing", "degraded") if h in healths), "ok")
