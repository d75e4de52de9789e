"""The last question before a swap: what the dry run said, and the diff of the config.

`y` swaps; `n` or escape goes back to the form with nothing changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

__all__ = ["SwapReviewScreen", "diff_text"]


class SwapReviewScreen(ModalScreen[bool]):
    """Confirm a swap whose dry run passed."""

    DEFAULT_CSS = """
    SwapReviewScreen { align: center middle; }
    SwapReviewScreen > Vertical {
        width: 90; max-width: 100%; height: auto; max-height: 100%; padding: 0 1;
        border: thick $warning; background: $surface;
    }
    SwapReviewScreen #question { text-style: bold; }
    SwapReviewScreen #facts { margin-bottom: 1; }
    SwapReviewScreen VerticalScroll { height: auto; max-height: 14; }
    SwapReviewScreen Horizontal { height: 1; margin-top: 1; align-horizontal: right; }
    SwapReviewScreen Button { margin-left: 2; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Swap"),
        Binding("n,escape", "answer(False)", "Back"),
    ]

    def __init__(self, node_id: str, dry_run: Mapping[str, Any]) -> None:
        super().__init__()
        self.node_id = node_id
        self.dry_run = dry_run

    @property
    def question(self) -> str:
        before = (self.dry_run.get("before") or {}).get("plugin", "?")
        after = (self.dry_run.get("after") or {}).get("plugin", "?")
        return f"Swap node {self.node_id}: {before} -> {after}?"

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, id="question")
            yield Static(_facts(self.dry_run), id="facts")
            with VerticalScroll():
                yield Static(diff_text(str(self.dry_run.get("diff") or "")), id="diff")
            with Horizontal():
                yield Button("Back (n)", id="no", compact=True)
                yield Button("Swap (y)", id="yes", variant="warning", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def _facts(result: Mapping[str, Any]) -> Text:
    text = Text("✔ the graph validates with the new node\n", style="green")
    if result.get("state_handed_over"):
        text.append("state: handed over to the new version\n")
    else:
        text.append("state: not handed over (the new version starts afresh)\n", style="yellow")
    text.append("the old version finishes its packet in hand; the inbox is kept", style="dim")
    return text


def diff_text(diff: str) -> Text:
    """A unified diff with `+` lines green and `-` lines red (the marks say it without
    colour); no diff at all is said in words."""
    if not diff.strip():
        return Text("no change to the config (the same YAML before and after)", style="dim")
    text = Text()
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        else:
            style = ""
        text.append(line + "\n", style=style)
    text.rstrip()
    return text
