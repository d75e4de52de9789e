"""The embedded runtime: runs a validated graph on one asyncio loop until a stop condition.

    runtime = Runtime(load_graph("graphs/demo.yaml"))
    report = await runtime.run(max_packets=10_000)

Stop conditions: every source exhausted and nothing left in flight; the `max_packets`
budget spent; `duration_s` elapsed; `request_stop()` (signals, operators); an error under
`on_error: stop`. Each but the first stops the sources and drains what is in flight (up to
`drain_timeout_s`); `force_stop()` gives up on what is queued or in a plugin at once, and
counts it (docs/contracts/run_report.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schnitzel.contract.run_report import RunReport
from schnitzel.errors import RuntimeStartError
from schnitzel.registry.plugin import Plugin
from schnitzel.registry.registry import PluginRegistry
from schnitzel.runtime.budget import Budget
from schnitzel.runtime.build import build_nodes, connect_outputs, instantiate
from schnitzel.runtime.checkpoints import CheckpointTracker
from schnitzel.runtime.collector import collector_tuned_for
from schnitzel.runtime.draining import drain, give_up
from schnitzel.runtime.durable_check import is_durable
from schnitzel.runtime.error_policy import ErrorPolicy
from schnitzel.runtime.events import EventLog
from schnitzel.runtime.held import Tickers, flush_order, holds, release
from schnitzel.runtime.held_refs import HeldRefs
from schnitzel.runtime.inbox import InFlight
from schnitzel.runtime.metrics import DropReason, message_of
from schnitzel.runtime.node import Node
from schnitzel.runtime.processing import as_failure
from schnitzel.runtime.report import build_report
from schnitzel.runtime.runners import BATCH, worker_for
from schnitzel.runtime.state_dir import default_state_dir
from schnitzel.runtime.stop_reason import StopReason
from schnitzel.runtime.stores import (
    close_stores,
    durable_inboxes,
    flush_stores,
    open_stores,
)
from schnitzel.runtime.tick import TICK_S, tick_nodes, tick_nodes_in_slices
from schnitzel.runtime.worker_api import NodeWorker
from schnitzel.validate.graph import ValidatedGraph

if TYPE_CHECKING:
    pass

__all__ = ["Runtime", "StopReason"]

PULL_GRACE_S = 1.0
"""How long the end of a run waits for a source's pull still running in its thread."""
TASKS_GRACE_S = 5.0
"""How long the end of a run waits for node tasks to see their closed inboxes."""
CLOSE_TIMEOUT_S = 5.0
"""How long a plugin's close() may take before the run ends without it."""


def _never_swapped(node_id: str) -> bool:
    return False


class Runtime:
    """A graph being run. Build it from `load_graph(...)`, then `await run(...)` once."""

    def __init__(
        self,
        graph: ValidatedGraph,
        state_dir: Path | None = None,
        drain_timeout_s: float = 30.0,
        logger: logging.Logger | None = None,
        registry: PluginRegistry | None = None,
    ) -> None:
        self.graph = graph
        self.registry = registry
        """Where swaps look plugins up (None: the installed packs)."""
        self.state_dir = state_dir or default_state_dir()
        self.drain_timeout_s = drain_timeout_s
        self.logger = logger or logging.getLogger("schnitzel.runtime")
        self.events = EventLog(self.logger)
        self.run_id = uuid.uuid4().hex
        """Names this run: a client that sees it change knows the runtime restarted."""
        self.can_rollback: Callable[[str], bool] = _never_swapped
        """Whether a node has a version to roll back to, for its report: the control plane
        (which keeps the swap history) registers its own answer."""
        self.in_flight = InFlight()
        self.budget = Budget(None)
        self.stop_reason: str | None = None
        self.stop_detail = ""
        self.stopping = False
        self.finished = False
        self.forced = False
        self.started_wall: float | None = None
        self.ended_wall: float | None = None
        self._stop_requested = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.tickers = Tickers(self)
        """One task per node whose plugin ticks: calls its `tick` (runtime/held.py)."""
        self.abandoned = False
        """True once queued packets were given up (drain timeout, forced stop)."""
        self.volatile_lost = False
        """True once packets only held in memory were lost: source checkpoints stop there."""
        self._opening: asyncio.Future[None] | None = None
        self.held_refs = HeldRefs()
        """The blob URIs undelivered packets point at (`NodeContext.refs_held`)."""
        self.nodes = build_nodes(
            graph,
            self.in_flight,
            self.state_dir,
            self.logger,
            self.events,
            self.held_refs,
            self.run_id,
        )
        self.held_refs.nodes = self.nodes
        self.stores = durable_inboxes(self.nodes)
        """The durable inboxes, by node id."""
        self.errors = ErrorPolicy(self.logger, self.events, self.request_stop)
        """Each node's `on_error`, applied to what it failed on."""
        self.checkpoints = CheckpointTracker(self)
        self.workers: dict[str, NodeWorker] = {
            node_id: worker_for(node, self) for node_id, node in self.nodes.items()
        }
        """Each node's task: it owns the state of the batch it is on (runtime/runners.py)."""

    # -- building ---------------------------------------------------------------------------

    def plugin_registry(self) -> PluginRegistry:
        """Where swaps and reloads look plugins up: the one given, else the installed packs
        (scanned once, on first use)."""
        if self.registry is None:
            self.registry = PluginRegistry.from_entry_points()
        return self.registry

    def connect_outputs(self, node: Node, graph: ValidatedGraph) -> None:
        """Point each output port of `node` at the inboxes its edges in `graph` lead to."""
        connect_outputs(node, graph, self.nodes)

    def instantiate(self, cls: type[Plugin], config: Any, node_id: str) -> Plugin:
        """A plugin instance for node `node_id` (at start, and for a swap)."""
        return instantiate(
            self.graph,
            self.state_dir,
            self.logger,
            self.events,
            cls,
            config,
            node_id,
            self.held_refs,
            self.run_id,
        )

    # -- running ----------------------------------------------------------------------------

    async def run(
        self, max_packets: int | None = None, duration_s: float | None = None
    ) -> RunReport:
        """Run until a stop condition; return the run report."""
        if self.started_wall is not None:
            raise RuntimeError("a Runtime runs once; build a new one to run again")
        self.budget = Budget(max_packets)
        self.started_wall = time.time()
        self.held_refs.loop = asyncio.get_running_loop()
        self._opening = asyncio.ensure_future(self._open_plugins())
        try:
            await self._opening
        except asyncio.CancelledError:
            if not self._stop_requested.is_set():
                raise
            # stopped while a plugin was still opening (a backend that does not answer)
            self.finished, self.ended_wall = True, time.time()
            return build_report(self)
        with collector_tuned_for(self._packets_in_flight_bound()):
            return await self._run_opened(duration_s)

    def _packets_in_flight_bound(self) -> int:
        """The most packets the graph holds at once: every inbox full, every node on a batch."""
        return sum(
            (node.inbox.capacity if node.inbox is not None else 0) + BATCH
            for node in self.nodes.values()
        )

    async def _run_opened(self, duration_s: float | None) -> RunReport:
        """Run the graph whose plugins are open until a stop condition, then shut it down."""
        loop = asyncio.get_running_loop()
        timer = ticker = saver = steering = None
        try:
            self._start_tasks()
            await self._start_delays()
            ticker = asyncio.create_task(self._tick(), name="schnitzel-metrics")
            steering = self._start_controller()
            if self.checkpoints.active:
                saver = asyncio.create_task(self.checkpoints.run(), name="schnitzel-checkpoints")
            if duration_s is not None:
                timer = loop.call_later(duration_s, self.request_stop, StopReason.DURATION)
            self.tickers.start()
            await self._until_done()
        finally:
            self.tickers.stop()
            if timer is not None:
                timer.cancel()
            if ticker is not None:
                ticker.cancel()
            if saver is not None:
                saver.cancel()
            if steering is not None:
                steering.cancel()
            self.held_refs.close()  # a call the stop did not wait for keeps every blob
            await self._shutdown()
        return build_report(self)

    def _start_controller(self) -> asyncio.Task[None] | None:
        settings = self.graph.spec.runtime.controller
        if settings.mode == "off":
            return None
        from schnitzel.control.runtime_control import (
            RuntimeControl,  # the control plane sits on top
        )

        return RuntimeControl(self).start_controller(settings, self.logger.getChild("controller"))

    @property
    def _store_timeout_s(self) -> float:
        """How long the end of a run waits for a store's last writes (a full disk holds them;
        a forced stop waits less)."""
        return 0.5 if self.forced else 5.0

    async def _open_plugins(self) -> None:
        opened: list[Node] = []
        try:
            await open_stores(
                self.stores,
                self.nodes,
                self.events,
                lambda why: self.request_stop(StopReason.ERROR, why),
            )
            for node in self.nodes.values():
                try:
                    await node.plugin.open()
                except Exception as exc:
                    why = str(exc).removeprefix(f"node {node.id!r}: ")  # named once is enough
                    raise RuntimeStartError(
                        f"node {node.id!r} ({node.resolved.spec.plugin}) could not open: {why}"
                    ) from exc
                opened.append(node)
        except BaseException:
            for done in opened:
                await self._close_plugin(done)
            await close_stores(self.stores, self._store_timeout_s, self.events)
            raise

    def _start_tasks(self) -> None:
        sources = [n for n in self.nodes.values() if n.kind == "source"]
        self.in_flight.sources_running = len(sources)
        for node in self.nodes.values():
            self._tasks[node.id] = asyncio.create_task(
                self._guard(node, self.workers[node.id].run()), name=f"schnitzel-node-{node.id}"
            )

    async def _start_delays(self) -> None:
        for node in self.nodes.values():
            if node.kind == "delay":
                initial = list(node.plugin.initial_packets())  # type: ignore[attr-defined]
                node.metrics.passed_on(len(initial))
                await node.emit(initial)

    async def _until_done(self) -> None:
        idle = asyncio.ensure_future(self.in_flight.idle.wait())
        stop = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait({idle, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not self.in_flight.idle.is_set():
                self._stop_sources()
                why = await drain(idle, self.drain_timeout_s, self.in_flight, self.stores)
                if why is not None:
                    self._abandon(why)
            await self._flush_held()
        finally:
            idle.cancel()
            stop.cancel()
        if self.stop_reason is None:
            exhausted = self.budget.spent
            self.stop_reason = StopReason.MAX_PACKETS if exhausted else StopReason.SOURCES_EXHAUSTED

    async def _flush_held(self) -> None:
        """At the end of a drained run, let each plugin that holds packets (open windows)
        release them, upstream first, and drain what they released (runtime/held.py)."""
        self.tickers.stop()
        for node in flush_order(self):
            if self.abandoned or self.forced:
                return
            if not node.abandoned and holds(node, "flush"):
                async with node.turn:
                    try:
                        items = list(node.plugin.flush())  # type: ignore[attr-defined]
                    except Exception as exc:
                        node.metrics.error(None, exc)
                        self.events.add("error", f"flush() failed: {exc}", node.id)
                        items = []
                if items:
                    self.in_flight.idle.clear()
                    await release(node, self.workers[node.id], items)
            await self._drain_released()

    async def _drain_released(self) -> None:
        """Wait for what a flush (or a last tick) released to be processed downstream."""
        if self.in_flight.count == 0:
            self.in_flight.idle.set()
            return
        self.in_flight.idle.clear()
        idle = asyncio.ensure_future(self.in_flight.idle.wait())
        try:
            why = await drain(idle, self.drain_timeout_s, self.in_flight, self.stores)
            if why is not None:
                self._abandon(why)
        finally:
            idle.cancel()

    async def _shutdown(self) -> None:
        self.stopping = True
        pulls = [p for w in self.workers.values() if (p := w.pull_in_thread()) is not None]
        if pulls:  # a stopped pull returns at its next packet: count what it read as lost
            await asyncio.wait(pulls, timeout=PULL_GRACE_S)
            await asyncio.sleep(0)  # let their done-callbacks count
            self._leave_stuck_pulls()
        for node in self.nodes.values():
            if node.inbox is not None:
                node.inbox.close()
        tasks = list(self._tasks.values())
        for node in self.nodes.values():
            node.running.set()  # a paused node must wake to see its inbox closed
        if self.forced or self.abandoned:  # what is still busy would only hold up the exit
            for task in tasks:
                task.cancel()
        _done, pending = await asyncio.wait(tasks, timeout=TASKS_GRACE_S) if tasks else ((), ())
        for task in pending:
            task.cancel()
        if not await flush_stores(self.stores, self._store_timeout_s):  # a full disk: lost
            self.volatile_lost = True
        if self.checkpoints.active:
            await self.checkpoints.finish()
        await close_stores(self.stores, self._store_timeout_s, self.events)
        for node in self.nodes.values():
            if node.left_in_thread:  # closing under a running call could corrupt its output
                self.events.add("warning", "not closed: a call is still running", node.id)
            else:
                await self._close_plugin(node)
            if node.pool is not None:
                node.pool.shutdown(wait=False, cancel_futures=True)
        self._tick_once(final=True)
        self.ended_wall = time.time()
        self.finished = True
        self.events.add("info", f"run ended: {self.stop_reason} {self.stop_detail}".strip())

    def _leave_stuck_pulls(self) -> None:
        """A source whose pull still runs in its thread after the grace (a device read that
        ignores the stop) is left behind, said, and not closed under that call."""
        for node_id, worker in self.workers.items():
            if worker.pull_in_thread() is not None:
                node = self.nodes[node_id]
                node.left_in_thread = True
                self.events.add(
                    "warning",
                    f"left behind: its read (packets() or next_batch) was still running in its "
                    f"thread {PULL_GRACE_S:g} s after the stop; what it returns is dropped "
                    "(shutdown). Let it check `context.stopping` or return within a second",
                    node_id,
                )

    async def _close_plugin(self, node: Node) -> None:
        try:
            await asyncio.wait_for(node.plugin.close(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            message = f"close() did not return within {CLOSE_TIMEOUT_S:g} s"
            node.metrics.error(None, TimeoutError(message))
            self.events.add("error", message, node.id)
        except Exception as exc:
            node.metrics.error(None, exc)
            self.events.add("error", f"closing failed: {exc}", node.id)

    async def _guard(self, node: Node, runner: Any) -> None:
        """Run a node's task; an unexpected error stops that node and, gracefully, the run."""
        try:
            await runner
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and not task.cancelling():  # raised by the plugin, not us
                self._node_crashed(node, exc)
            elif not self.workers[node.id].cancelled_by_stop and not (
                self.forced or self.abandoned
            ):
                raise
        except KeyboardInterrupt:
            raise
        except SystemExit as exc:  # a plugin's sys.exit(): it stops its node, not the process
            self._node_crashed(node, as_failure(exc))
        except BaseException as exc:
            self._node_crashed(node, exc)
        finally:
            if node.kind == "source":
                self.in_flight.source_finished()

    def _node_crashed(self, node: Node, exc: BaseException) -> None:
        node.metrics.crashed_with(exc)
        message = message_of(exc)
        self.logger.error("node %s stopped: %s", node.id, message, exc_info=exc)
        self.events.add("error", f"node stopped with an error: {message}", node.id)
        lost = self._give_up(node, DropReason.NODE_FAILED, f"its node stopped: {message}")
        if lost:
            self.events.add("error", f"{lost} packets lost with the node", node.id)
        self.request_stop(StopReason.ERROR, f"node {node.id!r} stopped: {message}")

    def _give_up(self, node: Node, reason: str, why: str) -> int:
        """Give up on a node (`draining.give_up`); returns how many packets were lost."""
        lost = give_up(node, reason, why)
        if lost:
            self.volatile_lost = True
        return lost

    def keep_durable_batch(self, node: Node) -> None:
        """A durable node's output was refused downstream (a node there failed, or a durable
        store there whose process died): it stops, and what it took stays in its store for
        the next run instead of being deleted."""
        kept = node.inbox.backlog if is_durable(node.inbox) else 0
        self._give_up(node, DropReason.SHUTDOWN, "were kept in the store")
        self.events.add(
            "error",
            f"stopped: a node downstream failed or lost its durable store; {kept} packets kept "
            "in its store",
            node.id,
        )

    # -- stopping ---------------------------------------------------------------------------

    def request_stop(self, reason: str, detail: str = "") -> None:
        """Stop the sources and drain what is in flight. The first reason given is kept."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_detail = detail
            self.events.add("info", f"stopping ({reason}){': ' + detail if detail else ''}")
        self._stop_requested.set()
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
        self._stop_sources()

    def force_stop(self, why: str = "a second signal") -> None:
        """Stop now: abandon what is queued (counted as dropped, reason shutdown)."""
        self.forced = True
        if self.stop_reason is None:
            self.request_stop(StopReason.SIGNAL, f"forced by {why}")
        else:
            self.stop_detail = f"{self.stop_detail}; forced by {why}".lstrip("; ")
            self.request_stop(self.stop_reason)
        self._abandon("forced stop")
        for task in self._tasks.values():
            task.cancel()

    def _stop_sources(self) -> None:
        self.stopping = True
        for worker in self.workers.values():
            worker.stop_pulling()
        for node in self.nodes.values():
            node.plugin.context.stopping.set()
        for node in self.nodes.values():
            if node.kind != "source" and node.paused:  # a drain delivers what is in flight
                node.running.set()
        for worker in self.workers.values():
            worker.stop_waiting()

    def _abandon(self, why: str) -> None:
        self.abandoned = True
        kept = sum(inbox.backlog for inbox in self.stores.values())
        lost = sum(
            self._give_up(node, DropReason.SHUTDOWN, "were in the plugin when the run stopped")
            for node in self.nodes.values()
            if node.kind != "source"
        )
        if lost:
            self.events.add("warning", f"{why}: {lost} packets still queued or in a plugin lost")
        if kept:
            self.events.add("info", f"{why}: {kept} packets kept in durable stores for next run")
        self.in_flight.idle.set()

    # -- metrics ----------------------------------------------------------------------------

    async def _tick(self) -> None:
        while True:
            try:
                await tick_nodes_in_slices(self.nodes, self.workers, self.events)
            except Exception as exc:  # rates and health stop for this tick only, said aloud
                self.logger.exception("metrics tick failed")
                self.events.add("error", f"metrics tick failed: {type(exc).__name__}: {exc}")
            await asyncio.sleep(TICK_S)

    def _tick_once(self, final: bool = False) -> None:
        tick_nodes(self.nodes, self.workers, self.events, final)

    def snapshot(self) -> RunReport:
        """The run report, live (`status` is "running" until the run ends)."""
        return build_report(self)
