"""`w` on a node: swap its plugin and/or config while the graph runs.

Pick a plugin of the node's kind, give the config in the editor (prefilled with the node's
config now, secrets masked) or from a YAML or JSON file the console reads, then review: a dry
run of `swap` validates the whole graph with the new node and answers the diff, shown for
confirmation (`SwapReviewScreen`); only `y` there swaps for real. A refusal, of the dry run or
of the swap itself, is shown here with every reason, and nothing changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import (
    Footer,
    Input,
    Select,
    Static,
    TabbedContent,
    TabPane,
    TextArea,
)

from schnitzel.errors import ControlError
from schnitzel_tui.model import PluginView
from schnitzel_tui.screens.swap_review import SwapReviewScreen
from schnitzel_tui.source import ConsoleSource
from schnitzel_tui.widgets.status_bar import StatusBar

__all__ = ["SECRET_NOTE", "SwapScreen", "config_from_file", "config_from_text", "config_yaml"]

SECRET_NOTE = (
    "Secrets show as ***: leave *** to keep the current value. "
    "An empty form means the plugin's defaults."
)


class SwapScreen(Screen[str | None]):
    """The swap form for one node; dismissed with what was done, or None (esc)."""

    DEFAULT_CSS = """
    SwapScreen #title { height: 1; padding: 0 1; text-style: bold; }
    SwapScreen #plugin { margin: 0 1; }
    SwapScreen #summary { height: 1; padding: 0 1; color: $text-muted; }
    SwapScreen #source { height: 1fr; }
    SwapScreen TabPane { padding: 0; }
    SwapScreen .note { height: auto; padding: 0 1; color: $text-muted; }
    SwapScreen #config { height: 1fr; }
    SwapScreen #path { margin: 1 1 0 1; }
    SwapScreen #why { margin: 0 1; }
    SwapScreen #message { height: auto; max-height: 8; padding: 0 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+r", "review", "Review (dry run)"),
        Binding("ctrl+t", "switch_source", "Editor or file"),
    ]

    def __init__(self, node_id: str, source: ConsoleSource, graph: str) -> None:
        super().__init__()
        self.node_id = node_id
        self.source = source
        self.graph = graph
        self.kind = ""
        self.current_plugin = ""
        self.current_config: dict[str, Any] = {}
        self.generation = 0
        self.plugins: dict[str, PluginView] = {}
        self._prefilled = ""
        self._busy = False

    def compose(self) -> ComposeResult:
        yield StatusBar(self.graph)
        yield Static(f"Swap node {self.node_id}", id="title")
        yield Select[str]([], prompt="plugin", id="plugin", allow_blank=True)
        yield Static("", id="summary")
        with TabbedContent(id="source"):
            with TabPane("config in the editor", id="editor"):
                yield Static(SECRET_NOTE, classes="note")
                yield TextArea("", id="config", soft_wrap=False, show_line_numbers=True)
            with TabPane("config from a file", id="file"):
                yield Input(placeholder="path to a YAML or JSON mapping", id="path")
                yield Static(
                    "The console reads the file and sends its mapping; the runtime never "
                    "reads your files. " + SECRET_NOTE,
                    classes="note",
                )
        yield Input(placeholder="why (kept in the audit log; optional)", id="why", compact=True)
        yield Static("", id="message")
        yield Footer(show_command_palette=False)

    async def on_mount(self) -> None:
        try:
            description = await self.source.describe()
            node = next(n for n in description["nodes"] if n["id"] == self.node_id)
            self.kind = str(node["kind"])
            self.current_plugin = str(node["plugin"])
            self.current_config = dict(node.get("config") or {})
            self.generation = int(node.get("generation") or 0)
            found = await self.source.command("plugins", kind=self.kind)
        except StopIteration:
            self._say(f"✖ node {self.node_id} is not in the graph any more", "bold red")
            return
        except (ControlError, OSError) as exc:
            self._say(f"✖ cannot read the runtime: {exc}", "bold red")
            return
        self.plugins = {p.name: p for p in map(PluginView.from_dict, found or ())}
        if self.current_plugin not in self.plugins:
            self.plugins[self.current_plugin] = PluginView(
                self.current_plugin, self.kind, "(the plugin running now)", {}
            )
        title = (
            f"Swap node {self.node_id}: {self.kind} · {self.current_plugin}"
            f" · generation {self.generation}"
        )
        self.query_one("#title", Static).update(title)
        select = self.query_one("#plugin", Select)
        select.set_options(
            (_option_label(p, p.name == self.current_plugin), p.name)
            for p in sorted(self.plugins.values(), key=lambda p: p.name)
        )
        select.value = self.current_plugin
        self._prefill(self.current_plugin)
        self.query_one("#config", TextArea).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self._prefill(event.value)

    def _prefill(self, plugin: str) -> None:
        """The editor starts from the config now (same plugin) or the plugin's defaults; an
        edited form is kept."""
        view = self.plugins.get(plugin)
        self.query_one("#summary", Static).update(view.summary if view else "")
        editor = self.query_one("#config", TextArea)
        if plugin == self.current_plugin:
            text = config_yaml(self.current_config)
        else:
            text = defaults_yaml(view.config_schema if view else {})
        if editor.text == self._prefilled:
            editor.load_text(text)
            self._prefilled = text
        else:
            self._say("the editor keeps your edits; empty it for the plugin's defaults", "yellow")

    @property
    def chosen_plugin(self) -> str:
        value = self.query_one("#plugin", Select).value
        return value if isinstance(value, str) else self.current_plugin

    def action_back(self) -> None:
        self.dismiss(None)

    def action_switch_source(self) -> None:
        tabs = self.query_one("#source", TabbedContent)
        tabs.active = "file" if tabs.active == "editor" else "editor"
        target = "#path" if tabs.active == "file" else "#config"
        self.query_one(target).focus()

    def _config(self) -> dict[str, Any]:
        """The config asked for, from the editor or the file; ValueError says what is wrong."""
        if self.query_one("#source", TabbedContent).active == "file":
            return config_from_file(self.query_one("#path", Input).value)
        return config_from_text(self.query_one("#config", TextArea).text, "the editor")

    async def action_review(self) -> None:
        """Dry run: validate and diff; then ask."""
        if self._busy or not self.plugins:
            return
        try:
            config = self._config()
        except ValueError as exc:
            self._say(f"✖ {exc}", "bold red")
            return
        plugin = self.chosen_plugin
        self._busy = True
        try:
            result = await self._swap(plugin, config, dry_run=True)
        finally:
            self._busy = False
        if result is None:
            return
        self._say("", "")

        async def answered(yes: bool | None) -> None:
            if yes:
                await self._apply(plugin, config)

        self.app.push_screen(SwapReviewScreen(self.node_id, result), answered)

    async def _apply(self, plugin: str, config: dict[str, Any]) -> None:
        result = await self._swap(plugin, config, dry_run=False)
        if result is not None:
            self.dismiss(swap_done_text(self.node_id, result))

    async def _swap(
        self, plugin: str, config: dict[str, Any], *, dry_run: bool
    ) -> Mapping[str, Any] | None:
        why = self.query_one("#why", Input).value.strip()
        self._say("checking…" if dry_run else "swapping…", "dim")
        try:
            result = await self.source.command(
                "swap", node_id=self.node_id, plugin=plugin, config=config, dry_run=dry_run, why=why
            )
        except (ControlError, OSError) as exc:
            what = "the check" if dry_run else "the swap"
            self._say(f"✖ refused: {what} did not pass; nothing changed\n{exc}", "bold red")
            return None
        return result if isinstance(result, Mapping) else {}

    def _say(self, message: str, style: str) -> None:
        self.query_one("#message", Static).update(Text(message, style=style))


def _option_label(plugin: PluginView, current: bool) -> str:
    """The plugin's name (its summary is shown under the list, which stays one line)."""
    return f"{plugin.name} (running now)" if current else plugin.name


def config_yaml(config: Mapping[str, Any]) -> str:
    """A config as the editor shows it: block YAML, keys in their order; `{}` as empty."""
    if not config:
        return ""
    return yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=False)


def defaults_yaml(schema: Mapping[str, Any]) -> str:
    """A plugin's defaults from its config's JSON schema, and a comment per required key."""
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    defaults = {k: p["default"] for k, p in properties.items() if "default" in p}
    lines = [
        f"# required: {key} ({properties[key].get('type', 'any')})"
        f"{': ' + properties[key]['description'] if properties[key].get('description') else ''}"
        for key in properties
        if key in required and key not in defaults
    ]
    text = "\n".join(lines) + ("\n" if lines else "")
    return text + config_yaml(defaults)


def config_from_text(text: str, where: str) -> dict[str, Any]:
    """Parse a YAML (or JSON) mapping; empty: `{}`. ValueError names `where` and the line."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValueError(f"{where}:{line} not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(
            f"{where}: the config must be a mapping (key: value lines), not a {type(data).__name__}"
        )
    return data


def config_from_file(path_text: str) -> dict[str, Any]:
    """Read a YAML or JSON mapping from a file; ValueError says what to fix."""
    if not path_text.strip():
        raise ValueError("give the path of a YAML or JSON file holding the config")
    path = Path(path_text.strip()).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"cannot read {path}: {reason}") from None
    return config_from_text(text, str(path))


def swap_done_text(node_id: str, result: Mapping[str, Any]) -> str:
    """`swapped merge: passthrough -> sample (generation 1)`."""
    before = (result.get("before") or {}).get("plugin", "?")
    after = (result.get("after") or {}).get("plugin", "?")
    generation = result.get("generation")
    text = f"swapped {node_id}: {before} -> {after}"
    if generation is not None:
        text += f" (generation {generation})"
    if result.get("state_handed_over"):
        text += ", state handed over"
    return text
