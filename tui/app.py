"""The console app: polls the control API, keeps history, hands snapshots to the screens.

Polling reschedules itself with `set_timer` after each poll, so polls never overlap however
slow a remote runtime answers; drawing is skipped while the view is frozen or a modal
screen covers it (the figures are still recorded).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.driver import Driver
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.widget import AwaitMount

from schnitzel.errors import ControlError, ReportShapeError
from schnitzel_tui.cameras import camera_view, camera_views, is_camera
from schnitzel_tui.drop_bursts import DropBurstWatch
from schnitzel_tui.history import SnapshotHistory
from schnitzel_tui.model import ConsoleSnapshot, EventView, SuggestionView, Topology
from schnitzel_tui.screens.audit import AuditScreen
from schnitzel_tui.screens.cameras import CamerasScreen
from schnitzel_tui.screens.confirm import ConfirmScreen
from schnitzel_tui.screens.help import HelpScreen
from schnitzel_tui.screens.main import MainScreen
from schnitzel_tui.screens.node_detail import NodeDetailScreen
from schnitzel_tui.screens.suggestions import SuggestionsScreen
from schnitzel_tui.screens.swap import SwapScreen, swap_done_text
from schnitzel_tui.screens.throttle import ThrottleScreen, knobs_of
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
        # changes to the node under the cursor (or the one opened); each asks first
        Binding("t", "throttle", "Throttle", show=False),
        Binding("w", "swap", "Swap", show=False),
        Binding("R", "rollback", "Roll back", show=False),
        Binding("g", "suggestions", "Suggestions", show=False),
        Binding("A", "audit", "Audit log", show=False),
        Binding("c", "cameras", "Cameras", show=False),
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
        """Polls done: read, recorded and handed to the screen on top (unless frozen)."""
        self.suggestions: tuple[SuggestionView, ...] = ()
        """The controller's suggestions as of the latest poll, newest last."""
        self._last_seq = 0
        self._pending_events: list[EventView] = list(startup_events)
        self._poll_timer: Any = None
        self._polling = False
        self.attached = bool(getattr(source, "attached", False))
        """The runtime runs in another process: quitting leaves it running."""
        self.lost = ""
        """Why the runtime cannot be read now (an attached console's lost connection)."""
        self._described = False

    # -- polling ----------------------------------------------------------------------------

    async def on_mount(self) -> None:
        try:
            await self._describe()
        except (ControlError, OSError) as exc:  # attached to a runtime that is not up (yet)
            self._lose(exc)
            await self.push_screen(MainScreen(self.topology))
        await self.poll()

    async def _describe(self) -> None:
        """Read the graph and show it on a fresh main screen: at start, and when an attached
        runtime came back as a new run (its graph may differ; history starts over)."""
        description = await self.source.describe()
        restarted = self._described
        self.topology = Topology.from_description(description)
        self._described = True
        if restarted:
            self.snapshot = None
            self.history = SnapshotHistory()
            self.drop_bursts = DropBurstWatch()
            self._last_seq = 0
            self.suggestions = ()
            note = "the runtime restarted: a new run; history starts over"
            self._pending_events.append(EventView(0, time.time(), "warning", note))
            while len(self.screen_stack) > 2:  # the default screen, then the main one
                await self.pop_screen()
        if self.screen_stack and isinstance(self.screen, MainScreen):
            await self.switch_screen(MainScreen(self.topology))
        else:
            await self.push_screen(MainScreen(self.topology))

    def _lose(self, exc: Exception) -> None:
        """The runtime cannot be read: say so once, in the log and the status line."""
        if not self.lost:
            self._pending_events.append(
                EventView(0, time.time(), "error", f"cannot read the runtime: {exc}")
            )
        self.lost = getattr(exc, "short", "") or str(exc)

    def _found(self) -> None:
        if self.lost:
            note = "the runtime can be read again"
            self._pending_events.append(EventView(0, time.time(), "info", note))
        self.lost = ""

    async def poll(self) -> None:
        """Read the control API once, record, draw, and schedule the next poll."""
        self._polling = True
        read = False
        try:
            if not self._described or getattr(self.source, "restarted", False):
                await self._describe()
            data = await self.source.snapshot()
            if getattr(self.source, "restarted", False):  # a new run since the last poll
                await self._describe()
                data = await self.source.snapshot()
            events = await self.source.events(self._last_seq)
        except (ControlError, ReportShapeError, OSError) as exc:  # shape: another version
            self._lose(exc)
        else:
            self._found()
            self.snapshot = ConsoleSnapshot.from_report(data).with_rates_since(self.snapshot)
            read = True
            self.history.record(self.snapshot)
            self._take_events([EventView.from_dict(e) for e in events])
            self._pending_events.extend(self.drop_bursts.check(self.snapshot))
            await self._poll_control()
        finally:
            self._polling = False
        if not self.is_running:
            return
        self.draw()
        if read:  # counted once drawn: what waits on a poll then sees its figures
            self.polls += 1
        if self.quitting and self.snapshot is not None and not self.snapshot.running:
            self.exit()
            return
        self._poll_timer = self.set_timer(self.refresh_s, self.poll)

    async def _poll_control(self) -> None:
        """Suggestions (while a controller runs, or their screen is open: their count is the
        status line's badge) and the audit log while it is shown."""
        screen = self.screen if self.screen_stack else None
        if self.snapshot is not None and (
            self.snapshot.controller != "off" or isinstance(screen, SuggestionsScreen)
        ):
            try:
                found = await self.source.command("suggestions")
            except (ControlError, OSError) as exc:
                self._pending_events.append(
                    EventView(0, time.time(), "error", f"cannot read the suggestions: {exc}")
                )
            else:
                self.suggestions = tuple(SuggestionView.from_dict(s) for s in found or ())
        if screen is None or not screen.is_mounted:
            return  # just pushed: it reads its own list once mounted
        if isinstance(screen, AuditScreen) and not self.frozen:
            await screen.reload()
        if isinstance(screen, SuggestionsScreen) and not self.frozen:
            await screen.reload_why()

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
        if not screen.is_mounted:
            return  # pushed, not composed yet: it is drawn once mounted (`_once_mounted`)
        with self.batch_update():
            self._redraw_status()
            if isinstance(screen, MainScreen):
                screen.show(self.snapshot)
            elif isinstance(screen, NodeDetailScreen):
                node = self.snapshot.nodes.get(screen.node_id)
                camera = camera_view(self.snapshot, self.topology, screen.node_id)
                screen.show(node, self.history.of(screen.node_id), camera)
            elif isinstance(screen, SuggestionsScreen):
                screen.show(self.suggestions)
            elif isinstance(screen, CamerasScreen):
                screen.show(camera_views(self.snapshot, self.topology))

    def _note(self) -> str:
        if self.failure:
            return self.failure
        if self.lost:
            return f"disconnected: {self.lost}; retrying"
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
            failed=bool(self.failure or self.lost),
            open_suggestions=sum(1 for s in self.suggestions if s.is_open),
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
        if self.failure or self.attached:  # nothing to stop here: the runtime runs on
            self.exit()
            return
        if self.quitting:
            if self.snapshot is not None and self.snapshot.running:
                await self._command("stop", force=True, why="q again in the console")
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
        await self._command("stop", why="q in the console")
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

    def _push_then(self, screen: Screen[Any], draw: Callable[[], None]) -> None:
        """Push `screen`, then `draw` it (figures, status line) once it is mounted."""
        self._once_mounted(self.push_screen(screen), draw)

    def _once_mounted(self, mounted: AwaitMount, draw: Callable[[], None]) -> None:
        """Run `draw` once the screen just pushed is mounted, if it is still on top: until
        then it has no widgets to draw into, and on a busy machine a poll can come first."""
        screen = self.screen

        async def when_mounted() -> None:
            await mounted
            if self.is_running and self.screen_stack and self.screen is screen:
                draw()

        self.run_worker(when_mounted(), group="draw-once-mounted")

    def open_node(self, node_id: str) -> None:
        """Show the detail screen of a node."""
        screen = NodeDetailScreen(node_id, self.topology.node(node_id), self.topology.graph)
        self._push_then(screen, partial(self.draw, True))

    # -- commands ---------------------------------------------------------------------------

    async def _command(self, name: str, **arguments: Any) -> Any:
        """Run a command; a refusal (or a lost runtime) is shown and answers None."""
        try:
            result = await self.source.command(name, **arguments)
        except (ControlError, OSError) as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return None
        return {} if result is None else result

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
        yield SystemCommand(
            "Suggestions of the controller", "g: approve or reject", self.action_suggestions
        )
        yield SystemCommand("Audit log", "A: who changed what, why, when", self.action_audit)
        if any(is_camera(n) for n in self.topology.nodes):
            yield SystemCommand(
                "Cameras", "c: fps, detector load, tracks, zones, last event", self.action_cameras
            )
        if not self.read_only:
            for node_id, node in nodes.items():
                verb = "resume" if node.paused else "pause"
                yield SystemCommand(
                    f"{verb.capitalize()} node {node_id}",
                    "asks first",
                    partial(self._confirm_pause, node_id, verb),
                )
                if knobs_of(node):
                    yield SystemCommand(
                        f"Throttle node {node_id}",
                        f"t: {', '.join(knobs_of(node))}",
                        partial(self.throttle_node, node_id),
                    )
                yield SystemCommand(
                    f"Swap node {node_id}…",
                    "w: another plugin or config, after a diff",
                    partial(self.swap_node, node_id),
                )
                if node.can_rollback:
                    yield SystemCommand(
                        f"Roll back node {node_id}",
                        "R: back to the version before the last swap",
                        partial(self.rollback_node, node_id),
                    )
        if self.attached:
            yield SystemCommand(
                "Quit", "detach: the runtime keeps running", self.action_quit_console
            )
            return
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

    # -- the control plane: throttle, swap, rollback, suggestions, audit -----------------------

    def _node_in_view(self) -> str | None:
        """The node a key acts on: the one opened, or the one under the table's cursor."""
        screen = self.screen
        if isinstance(screen, NodeDetailScreen):
            return screen.node_id
        if isinstance(screen, MainScreen):
            return screen.query_one(NodeTable).selected_node
        return None

    def _may_change(self) -> bool:
        if self.read_only:
            self.notify("read-only console: changes are refused", severity="warning")
            return False
        return True

    def action_throttle(self) -> None:
        node_id = self._node_in_view()
        if node_id is not None:
            self.throttle_node(node_id)

    def action_swap(self) -> None:
        node_id = self._node_in_view()
        if node_id is not None:
            self.swap_node(node_id)

    def action_rollback(self) -> None:
        node_id = self._node_in_view()
        if node_id is not None:
            self.rollback_node(node_id)

    def action_suggestions(self) -> None:
        if isinstance(self.screen, ModalScreen | SuggestionsScreen):
            return
        controller = self.snapshot.controller if self.snapshot is not None else "off"
        screen = SuggestionsScreen(
            self.source, self.topology.graph, read_only=self.read_only, controller=controller
        )
        self._push_then(screen, self._redraw_status)

    def action_audit(self) -> None:
        if isinstance(self.screen, ModalScreen | AuditScreen):
            return
        self._push_then(AuditScreen(self.source, self.topology.graph), self._redraw_status)

    def action_cameras(self) -> None:
        if isinstance(self.screen, ModalScreen | CamerasScreen):
            return
        if not any(is_camera(n) for n in self.topology.nodes):
            self.notify(
                "no camera in this graph (cameras are video_file, rtsp and camera sources)",
                severity="warning",
            )
            return
        self._push_then(
            CamerasScreen(self.topology.graph, self.open_node), partial(self.draw, True)
        )

    def throttle_node(self, node_id: str) -> None:
        """The throttle dialog of a node: its knobs, their bounds, a question, the change."""
        if not self._may_change():
            return
        node = self.snapshot.nodes.get(node_id) if self.snapshot is not None else None
        if node is None:
            return
        if not knobs_of(node):
            self.notify(f"node {node_id} has no live throttles", severity="warning")
            return

        def done(result: str | None) -> None:
            if result:
                self.notify(result, timeout=5)

        self.push_screen(ThrottleScreen(node, self.source), done)

    def swap_node(self, node_id: str) -> None:
        """The swap form of a node."""
        if not self._may_change():
            return

        async def done(result: str | None) -> None:
            if result:
                self.notify(result, timeout=6)
                await self._reload_topology()

        mounted = self.push_screen(SwapScreen(node_id, self.source, self.topology.graph), done)
        self._once_mounted(mounted, self._redraw_status)

    def rollback_node(self, node_id: str) -> None:
        """Ask, then put the node back to the version before its last swap."""
        if not self._may_change():
            return
        node = self.snapshot.nodes.get(node_id) if self.snapshot is not None else None
        if node is None:
            return
        if not node.can_rollback:
            self.notify(
                f"node {node_id} has not been swapped: nothing to roll back", severity="warning"
            )
            return
        change = (
            f"{node_id}: {node.plugin}, generation {node.generation} -> back to the version "
            "before the last swap (plugin and config). The old version finishes its packet "
            "in hand; the inbox is kept."
        )

        async def answered(yes: bool | None) -> None:
            if not yes:
                return
            result = await self._command("rollback", node_id=node_id)
            if result is not None:
                self.notify(swap_done_text(node_id, result).replace("swapped", "rolled back"))
                await self._reload_topology()

        self.push_screen(ConfirmScreen(f"Roll back node {node_id}?", change), answered)

    async def _reload_topology(self) -> None:
        """A swap changed a node's plugin and config: read the graph again."""
        try:
            self.topology = Topology.from_description(await self.source.describe())
        except (ControlError, OSError) as exc:
            self.notify(f"cannot read the graph again: {exc}", severity="error")

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
