"""The console app: polls the control API, keeps history, hands snapshots to the screens.

Polling reschedules itself with `set_timer` after each poll, so polls never overlap however
slow a remote runtime answers; drawing is skipped while the view is frozen or a modal
screen covers it (the figures are still recorded).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import partial
from typing import Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.driver import Driver
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen

from schnitzel.errors import ControlError
from schnitzel_tui.drop_bursts import DropBurstWatch
from schnitzel_tui.history import SnapshotHistory
from schnitzel_tui.model import ConsoleSnapshot, EventView, Topology
from schnitzel_tui.screens.confirm import ConfirmScreen
from schnitzel_tui.screens.help import HelpScreen
from schnitzel_tui.screens.main import MainScreen
from schnitzel_tui.screens.node_detail import NodeDetailScreen
from schnitzel_tui.source import ConsoleSource
from schnitzel_tui.widgets.graph_view import GraphView
from schnitzel_tui.widgets.node_table import SORTS, NodeTable
from schnitzel_tui.widgets.status_bar import StatusBar, StatusFacts

__all__ = ["REFRESH_STEPS", "ConsoleApp"]

REFRESH_STEPS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
"""Refresh intervals `+` and `-` step through, in seconds."""

EVENTS_PER_POLL = 200
"""Event-log lines drawn per poll at most: a flood must not hold the shared loop."""


class ConsoleApp(App[None]):
    """The schnitzel console over any `ConsoleSource`."""

    TITLE = "schnitzel"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit_console", "Quit"),
        Binding("ctrl+q,ctrl+c", "quit_console", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Help"),
        # ctrl+p named here too: Textual adds its own only when no binding has this action
        Binding("colon,ctrl+p", "command_palette", "Commands"),
        Binding("space", "freeze", "Freeze"),
        Binding("plus", "refresh_step(-1)", "Faster"),
        Binding("minus", "refresh_step(1)", "Slower"),
    ]

    refresh_s: reactive[float] = reactive(1.0, init=False)
    """Seconds between polls of the control API."""
    frozen: reactive[bool] = reactive(False, init=False)
    """While True the view stands still; the run and the recording go on."""

    def __init__(
        self,
        source: ConsoleSource,
        *,
        read_only: bool = False,
        refresh_s: float = 1.0,
        startup_events: Iterable[EventView] = (),
        driver_class: type[Driver] | None = None,
    ) -> None:
        super().__init__(driver_class=driver_class)
        self.source = source
        self.read_only = read_only
        self.set_reactive(ConsoleApp.refresh_s, refresh_s)
        self.topology = Topology("", (), ())
        self.snapshot: ConsoleSnapshot | None = None
        self.history = SnapshotHistory()
        self.drop_bursts = DropBurstWatch()
        self.quitting = False
        """A stop was asked for: the console ends once the run has drained."""
        self.failure = ""
        """Why the run could not go on (shown in the status line)."""
        self.polls = 0
        self._last_seq = 0
        self._pending_events: list[EventView] = list(startup_events)
        self._poll_timer: Any = None
        self._polling = False

    # -- polling ----------------------------------------------------------------------------

    async def on_mount(self) -> None:
        self.topology = Topology.from_description(await self.source.describe())
        await self.push_screen(MainScreen(self.topology))
        await self.poll()

    async def poll(self) -> None:
        """Read the control API once, record, draw, and schedule the next poll."""
        self._polling = True
        try:
            data = await self.source.snapshot()
            events = await self.source.events(self._last_seq)
        except (ControlError, OSError) as exc:
            self._pending_events.append(
                EventView(0, time.time(), "error", f"cannot read the runtime: {exc}")
            )
        else:
            self.snapshot = ConsoleSnapshot.from_report(data).with_rates_since(self.snapshot)
            self.polls += 1
            self.history.record(self.snapshot)
            self._take_events([EventView.from_dict(e) for e in events])
            self._pending_events.extend(self.drop_bursts.check(self.snapshot))
        finally:
            self._polling = False
        if not self.is_running:
            return
        self.draw()
        if self.quitting and self.snapshot is not None and not self.snapshot.running:
            self.exit()
            return
        self._poll_timer = self.set_timer(self.refresh_s, self.poll)

    def _take_events(self, events: list[EventView]) -> None:
        """Queue new events for the log, saying so where some were never seen (the runtime
        keeps the last 500) or are too many to draw in one poll."""
        if not events:
            return
        missed = events[0].seq - self._last_seq - 1  # seqs start at 1; none seen: 0
        if len(events) > EVENTS_PER_POLL:
            missed += len(events) - EVENTS_PER_POLL
            events = events[-EVENTS_PER_POLL:]
        if missed > 0:
            note = f"{missed} events not shown here: the log file has every one"
            self._pending_events.append(EventView(0, events[0].ts, "warning", note))
        self._pending_events.extend(events)
        self._last_seq = events[-1].seq

    def draw(self, force: bool = False) -> None:
        """Hand the latest snapshot to the screen on top, unless frozen (`force`: even then,
        for a screen just opened) or covered."""
        if not self.screen_stack or not self.is_running:
            return  # the console is closing: a poll that was already due draws nothing
        screen = self.screen
        main = self._main_screen()
        if main is not None and self._pending_events:
            main.add_events(self._pending_events)  # appended even when hidden: a log is a log
            self._pending_events.clear()
        if (self.frozen and not force) or isinstance(screen, ModalScreen) or self.snapshot is None:
            return
        with self.batch_update():
            self._redraw_status()
            if isinstance(screen, MainScreen):
                screen.show(self.snapshot)
            elif isinstance(screen, NodeDetailScreen):
                node = self.snapshot.nodes.get(screen.node_id)
                screen.show(node, self.history.of(screen.node_id))

    def _note(self) -> str:
        if self.failure:
            return self.failure
        if self.quitting and self.snapshot is not None and self.snapshot.running:
            in_memory = _in_memory(self.snapshot)
            return f"stopping: draining {in_memory} in memory (q again: now)"
        return ""

    def _main_screen(self) -> MainScreen | None:
        return next((s for s in self.screen_stack if isinstance(s, MainScreen)), None)

    def _redraw_status(self) -> None:
        facts = StatusFacts(
            self.snapshot,
            frozen=self.frozen,
            read_only=self.read_only,
            refresh_s=self.refresh_s,
            note=self._note(),
            failed=bool(self.failure),
        )
        for bar in self.screen.query(StatusBar):
            bar.show(facts)

    # -- what the embedding runner tells the console ------------------------------------------

    def runtime_failed(self, message: str) -> None:
        """The run could not go on (a plugin failed to open): say so, stay up."""
        self.failure = f"run failed: {message}"
        self._pending_events.append(EventView(0, time.time(), "error", self.failure))
        self.draw()
        self._redraw_status()

    def stop_requested(self) -> None:
        """A stop came from outside (SIGTERM): end once the run has drained."""
        self.quitting = True

    # -- keys -------------------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_freeze(self) -> None:
        self.frozen = not self.frozen
        self._redraw_status()
        if not self.frozen:
            self.draw()

    def action_refresh_step(self, step: int) -> None:
        """`step` -1: the next shorter interval in REFRESH_STEPS; +1: the next longer one."""
        if step < 0:
            shorter = [s for s in REFRESH_STEPS if s < self.refresh_s]
            self.refresh_s = shorter[-1] if shorter else self.refresh_s
        else:
            longer = [s for s in REFRESH_STEPS if s > self.refresh_s]
            self.refresh_s = longer[0] if longer else self.refresh_s
        self._redraw_status()

    def watch_refresh_s(self) -> None:
        """A new interval counts from now, not from the end of the old one."""
        if self._poll_timer is not None and not self._polling:
            self._poll_timer.stop()
            self._poll_timer = self.set_timer(self.refresh_s, self.poll)

    async def action_quit_console(self) -> None:
        if isinstance(self.screen, ConfirmScreen):
            return  # one question at a time: ctrl+c on top of `q` must not stack another
        if self.failure:  # the run never started: nothing to stop or drain
            self.exit()
            return
        if self.quitting:
            if self.snapshot is not None and self.snapshot.running:
                await self._command("stop", force=True, why="from the console")
            return
        if self.failure or self.snapshot is None or not self.snapshot.running:
            self.exit()
            return
        if self._flowing():
            self.push_screen(
                ConfirmScreen("Stop the graph and quit?", _quit_change(self.snapshot)),
                self._quit_answered,
            )
            return
        await self._stop_and_quit()

    async def _quit_answered(self, yes: bool | None) -> None:
        if yes:
            await self._stop_and_quit()

    async def _stop_and_quit(self) -> None:
        self.quitting = True
        await self._command("stop", why="from the console")
        self._redraw_status()

    def _flowing(self) -> bool:
        snapshot = self.snapshot
        if snapshot is None or not snapshot.running:
            return False
        return snapshot.in_flight > 0 or any(n.rate > 0 for n in snapshot.nodes.values())

    def on_node_table_node_chosen(self, message: NodeTable.NodeChosen) -> None:
        self.open_node(message.node_id)

    def on_graph_view_node_clicked(self, message: GraphView.NodeClicked) -> None:
        self.open_node(message.node_id)

    def open_node(self, node_id: str) -> None:
        """Show the detail screen of a node."""
        self.push_screen(
            NodeDetailScreen(node_id, self.topology.node(node_id), self.topology.graph)
        )
        self.call_after_refresh(self.draw, True)

    # -- commands ---------------------------------------------------------------------------

    async def _command(self, name: str, **arguments: Any) -> dict[str, Any] | None:
        try:
            return await self.source.command(name, **arguments)
        except (ControlError, OSError) as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return None

    def _confirm_command(self, question: str, change: str, name: str, **arguments: Any) -> None:
        if self.read_only:
            self.notify("read-only console: changes are refused", severity="warning")
            return

        async def answered(yes: bool | None) -> None:
            if yes:
                result = await self._command(name, **arguments)
                if result is not None:
                    self.notify(f"{name}: done", timeout=3)

        self.push_screen(ConfirmScreen(question, change), answered)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        nodes = self.snapshot.nodes if self.snapshot is not None else {}
        for node_id in nodes:
            yield SystemCommand(
                f"Open node {node_id}",
                "history, config and recent errors",
                lambda n=node_id: self.open_node(n),
            )
        for name in SORTS:
            yield SystemCommand(f"Sort nodes by {name}", "", lambda n=name: self._sort_main(n))
        yield SystemCommand("Freeze or unfreeze the view", "space", self.action_freeze)
        yield SystemCommand("Help", "keys and columns", self.action_help)
        if not self.read_only:
            for node_id, node in nodes.items():
                verb = "resume" if node.paused else "pause"
                yield SystemCommand(
                    f"{verb.capitalize()} node {node_id}",
                    "asks first",
                    partial(self._confirm_pause, node_id, verb),
                )
        yield SystemCommand(
            "Quit", "stops the graph (asks while packets flow)", self.action_quit_console
        )

    def _confirm_pause(self, node_id: str, verb: str) -> None:
        pausing = verb == "pause"
        change = f"{node_id}: paused {'no -> yes' if pausing else 'yes -> no'}"
        node = self.snapshot.nodes.get(node_id) if self.snapshot is not None else None
        if pausing and node is not None and node.kind == "source":
            change += " (it stops producing until resumed)"
        elif pausing:
            change += " (its inbox fills up, then backpressure reaches upstream)"
        self._confirm_command(f"{verb.capitalize()} node {node_id}?", change, verb, node_id=node_id)

    def _sort_main(self, name: str) -> None:
        main = self._main_screen()
        if main is not None:
            main.query_one(NodeTable).sort_by = name


def _on_disk(snapshot: ConsoleSnapshot) -> int:
    return sum(n.durable.backlog for n in snapshot.durable_nodes if n.durable is not None)


def _in_memory(snapshot: ConsoleSnapshot) -> int:
    return max(snapshot.in_flight - _on_disk(snapshot), 0)


def _quit_change(snapshot: ConsoleSnapshot) -> str:
    """What quitting does to the packets now in the graph."""
    on_disk = _on_disk(snapshot)
    text = (
        f"{_in_memory(snapshot)} packets are in memory. Sources stop and these drain first, "
        "up to the drain timeout (--drain-timeout, 30 s by default); what cannot drain by "
        "then is dropped and counted. A second q stops at once."
    )
    if on_disk:
        text += f" {on_disk} packets stay on disk in durable inboxes for the next run."
    return text
