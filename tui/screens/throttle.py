"""`t` on a node: its live knobs (source rate, sampling, concurrency) within their bounds.

The dialog shows each knob that applies to the node with its value now and the bounds the
graph file allows, checks what was typed against them before anything is sent, asks with
the change (`rate_hz 20 -> 10`), then sends `throttle`. A refusal of the runtime is shown
in the dialog, which stays open to correct it; a change made closes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from schnitzel.errors import ControlError
from schnitzel_tui.model import KNOBS, Bounds, NodeView, plain_value
from schnitzel_tui.screens.confirm import ConfirmScreen
from schnitzel_tui.source import ConsoleSource

__all__ = ["KNOB_MEANING", "ThrottleScreen", "knobs_of", "parse_knob", "throttle_change"]

KNOB_MEANING = {
    "rate_hz": "packets/s it makes; none: as fast as accepted",
    "sample_every": "keep 1 of every N arriving; the rest: filtered",
    "concurrency": "calls at once (threads, or async calls)",
}

Value = float | int | None


def knobs_of(node: NodeView) -> tuple[str, ...]:
    """The knobs that apply to this node, in KNOBS order."""
    return tuple(k for k in KNOBS if k in node.limits or k in node.throttle)


def _bound_text(bounds: Bounds) -> str:
    low, high = bounds
    if low is None and high is None:
        return "any"
    if high is None:
        return f"{plain_value(low)} or more"
    if low is None:
        return f"up to {plain_value(high)}"
    return f"{plain_value(low)} to {plain_value(high)}"


def parse_knob(knob: str, text: str, bounds: Bounds) -> tuple[Value, str]:
    """The value typed for `knob` and "" when it is allowed; else (None, what is wrong)."""
    text = text.strip().lower()
    low, high = bounds
    allowed = f"allowed: {_bound_text(bounds)} (the node's limits.{knob} in the graph file)"
    if knob == "rate_hz" and text in ("none", "max"):
        # the runtime allows it only where the graph declares no limits.rate_hz, which the
        # snapshot does not tell apart from its default bounds: the runtime judges
        return None, ""
    try:
        value: Value = float(text) if knob == "rate_hz" else int(text)
    except ValueError:
        wanted = _wanted(knob, bounds)
        if not text:
            return None, f"{knob}: the field is empty; {wanted}"
        kind = "a number" if knob == "rate_hz" else "a whole number"
        return None, f"{knob}: {text!r} is not {kind}; {wanted}"
    assert value is not None
    if not math.isfinite(value) or value <= 0:
        return None, f"{knob}: give a value above 0, not {text}"
    if low is not None and value < low:
        return None, f"{knob}: {plain_value(value)} is below the lowest; {allowed}"
    if high is not None and value > high:
        return None, f"{knob}: {plain_value(value)} is above the highest; {allowed}"
    return value, ""


def _wanted(knob: str, bounds: Bounds) -> str:
    """`enter a whole number between 1 and 10`, said for the knob and its bounds."""
    low, high = bounds
    if low is not None and high is not None:
        within = f" between {plain_value(low)} and {plain_value(high)}"
    elif low is not None:
        within = f" of {plain_value(low)} or more"
    elif high is not None:
        within = f" up to {plain_value(high)}"
    else:
        within = ""
    if knob == "rate_hz":
        return f"enter packets per second{within}, or none (as fast as accepted)"
    return f"enter a whole number{within}"


def throttle_change(node_id: str, before: Mapping[str, Any], after: Mapping[str, Value]) -> str:
    """`sensor: rate_hz 20 -> 10, sample_every 1 -> 2`."""
    parts = [f"{k} {plain_value(before.get(k))} -> {plain_value(v)}" for k, v in after.items()]
    return f"{node_id}: {', '.join(parts)}"


class ThrottleScreen(ModalScreen[str | None]):
    """Edit a node's live knobs; dismissed with what was done, or None when cancelled."""

    DEFAULT_CSS = """
    ThrottleScreen { align: center middle; }
    ThrottleScreen > Vertical {
        width: 76; max-width: 100%; height: auto; max-height: 100%; padding: 0 1;
        border: thick $warning; background: $surface;
    }
    ThrottleScreen #title { text-style: bold; margin-bottom: 1; }
    ThrottleScreen .knob { height: auto; }
    ThrottleScreen .knob Label { width: 14; }
    ThrottleScreen .knob Input { width: 12; }
    ThrottleScreen .knob .about { width: 1fr; padding-left: 1; }
    ThrottleScreen #why { margin-top: 1; }
    ThrottleScreen #message { margin: 1 0 0 0; height: auto; }
    ThrottleScreen #buttons { height: 1; margin-top: 1; align-horizontal: right; }
    ThrottleScreen Button { margin-left: 2; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "review", "Review", show=False),
    ]

    def __init__(self, node: NodeView, source: ConsoleSource) -> None:
        super().__init__()
        self.node = node
        self.source = source
        self.knobs = knobs_of(node)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Throttle node {self.node.id} ({self.node.kind})", id="title")
            for knob in self.knobs:
                now = plain_value(self.node.throttle.get(knob))
                bounds = _bound_text(self.node.limits.get(knob, (None, None)))
                with Horizontal(classes="knob"):
                    yield Label(knob)
                    yield Input(now, id=f"knob-{knob}", compact=True)
                    yield Static(
                        Text.assemble(
                            f"now {now} · allowed {bounds}\n", (KNOB_MEANING[knob], "dim")
                        ),
                        id=f"about-{knob}",
                        classes="about",
                    )
            yield Input(placeholder="why (kept in the audit log; optional)", id="why", compact=True)
            yield Static("", id="message")
            with Horizontal(id="buttons"):
                yield Button("Cancel (esc)", id="cancel", compact=True)
                yield Button("Review (enter)", id="review", variant="warning", compact=True)

    def on_mount(self) -> None:
        if self.knobs:
            self.query_one(f"#knob-{self.knobs[0]}", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_review()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "review":
            self.action_review()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_review(self) -> None:
        """Check every knob against its bounds, then ask with the change."""
        changes: dict[str, Value] = {}
        problems = []
        for knob in self.knobs:
            text = self.query_one(f"#knob-{knob}", Input).value
            value, problem = parse_knob(knob, text, self.node.limits.get(knob, (None, None)))
            if problem:
                problems.append(problem)
            elif value != self.node.throttle.get(knob):
                changes[knob] = value
        if problems:
            self._say("\n".join(f"✖ {p}" for p in problems), "bold red")
            return
        if not changes:
            self._say("nothing to change: every value is as it is now", "yellow")
            return
        change = throttle_change(self.node.id, self.node.throttle, changes)
        self._say("", "")

        async def answered(yes: bool | None) -> None:
            if yes:
                await self._send(changes, change)

        self.app.push_screen(ConfirmScreen(f"Throttle node {self.node.id}?", change), answered)

    async def _send(self, changes: dict[str, Value], change: str) -> None:
        why = self.query_one("#why", Input).value.strip()
        try:
            result = await self.source.command("throttle", node_id=self.node.id, why=why, **changes)
        except (ControlError, OSError) as exc:
            self._say(f"✖ refused by the runtime: {exc}", "bold red")
            return
        self.dismiss(_done_text(self.node.id, result, change))

    def _say(self, message: str, style: str) -> None:
        self.query_one("#message", Static).update(Text(message, style=style))


def _done_text(node_id: str, result: Any, asked: str) -> str:
    """What the runtime says it changed (its before and after), else what was asked."""
    changes = result.get("changes") if isinstance(result, Mapping) else None
    if not isinstance(changes, Mapping) or not changes:
        return f"throttled {asked}"
    parts = [
        f"{k} {plain_value(c.get('before'))} -> {plain_value(c.get('after'))}"
        for k, c in changes.items()
        if isinstance(c, Mapping)
    ]
    return f"throttled {node_id}: {', '.join(parts)}"
