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
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from schnitzel.contract.packet import StreamPacket
from schnitzel.control.audit import AUDIT_FILE, AuditLog
from schnitzel.durable.inbox import DurableInbox
from schnitzel.errors import BadRecord, RuntimeStartError
from schnitzel.registry.plugin import NodeContext, Plugin, Processor, Sink, Source
from schnitzel.registry.registry import PluginRegistry
from schnitzel.runtime.budget import Budget
from schnitzel.runtime.checkpoints import CheckpointTracker
from schnitzel.runtime.events import EventLog
from schnitzel.runtime.health import Health, judge_health
from schnitzel.runtime.inbox import Inbox, InFlight
from schnitzel.runtime.metrics import DropReason, NodeMetrics
from schnitzel.runtime.node import Node, Target
from schnitzel.runtime.processing import Failure
from schnitzel.runtime.report import build_report
from schnitzel.runtime.runners import run_source, run_worker
from schnitzel.runtime.state_dir import default_state_dir
from schnitzel.runtime.stop_reason import StopReason
from schnitzel.validate.graph import ValidatedGraph

__all__ = ["Runtime", "StopReason"]

TICK_S = 1.0
"""How often rates and health are sampled."""
PULL_GRACE_S = 1.0
"""How long the end of a run waits for a source's pull still running in its thread."""
TASKS_GRACE_S = 5.0
"""How long the end of a run waits for node tasks to see their closed inboxes."""
DURABLE_STALL_S = 2.0
"""A stop stops waiting for a durable backlog that did not shrink for this long."""
CLOSE_TIMEOUT_S = 5.0
"""How long a plugin's close() may take before the run ends without it."""
LOGGED_ERRORS_PER_NODE = 10
"""Errors logged one by one per node; after that every 1000th (all are counted)."""


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
        self.audit = AuditLog(self.state_dir / AUDIT_FILE)
        self.swap_history: dict[str, list[Any]] = {}
        """Per node, the versions it ran before each swap (for rollback), oldest first."""
        self.node_locks: dict[str, asyncio.Lock] = {}
        """Per node: held by a swap or rollback (one change of a node at a time)."""
        self.reload_lock = asyncio.Lock()
        self.controller: Any = None
        """The controller (schnitzel.control.controller), while `runtime.controller` is on."""
        self.in_flight = InFlight()
        self.budget = Budget(None)
        self.nodes: dict[str, Node] = {}
        self.stop_reason: str | None = None
        self.stop_detail = ""
        self.stopping = False
        self.finished = False
        self.forced = False
        self.started_wall: float | None = None
        self.ended_wall: float | None = None
        self._stop_requested = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._in_stoppable: set[str] = set()
        self._stop_cancelled: set[str] = set()
        self.abandoned = False
        """True once queued packets were given up (drain timeout, forced stop)."""
        self.volatile_lost = False
        """True once packets only held in memory were lost: source checkpoints stop there."""
        self._opening: asyncio.Future[None] | None = None
        self._build()
        self.stores = {
            node_id: node.inbox
            for node_id, node in self.nodes.items()
            if isinstance(node.inbox, DurableInbox)
        }
        """The durable inboxes, by node id."""
        self.checkpoints = CheckpointTracker(self)

    # -- building ---------------------------------------------------------------------------

    def _build(self) -> None:
        for node_id, resolved in self.graph.nodes.items():
            plugin = self.instantiate(resolved.plugin, resolved.config, node_id)
            inbox = None if resolved.spec.kind == "source" else self._inbox(node_id)
            self.nodes[node_id] = node = Node(resolved, plugin, inbox)
            _check_rate_within_limits(node)
        for node in self.nodes.values():
            self.connect_outputs(node, self.graph)
        for node in self.nodes.values():
            dead_letter = node.resolved.spec.dead_letter
            if dead_letter is not None:
                node.dead_letter = self.nodes[dead_letter].inbox

    def plugin_registry(self) -> PluginRegistry:
        """Where swaps and reloads look plugins up: the one given, else the installed packs
        (scanned once, on first use)."""
        if self.registry is None:
            self.registry = PluginRegistry.from_entry_points()
        return self.registry

    def connect_outputs(self, node: Node, graph: ValidatedGraph) -> None:
        """Point each output port of `node` at the inboxes its edges in `graph` lead to."""
        targets: dict[str, list[Target]] = {port: [] for port in node.plugin.outputs}
        for edge in graph.edges:
            if edge.source == node.id:
                target = self.nodes[edge.target]
                assert target.inbox is not None
                force = node.kind == "delay" and target.inbox.overflow == "block"
                targets[edge.source_port].append(Target(target.id, target.inbox, force))
        node.targets = targets

    def _inbox(self, node_id: str) -> Inbox:
        spec = self.graph.nodes[node_id].spec.inbox
        if spec.durable is None:
            return Inbox(spec.max, spec.overflow, NodeMetrics(), self.in_flight, spec.max_bytes)
        durable = spec.durable
        path = Path(durable.path).expanduser()
        return DurableInbox(
            spec.max,
            spec.overflow,
            NodeMetrics(),
            self.in_flight,
            path if path.is_absolute() else self.graph.base_dir / path,
            durable.max_bytes,
            durable.max_packets,
            durable.sync.upper(),
            lambda level, message: self.events.add(level, message, node_id),
            durable.max_parked,
            durable.max_parked_bytes,
        )

    def instantiate(self, cls: type[Plugin], config: Any, node_id: str) -> Plugin:
        base = Source if issubclass(cls, Source) else Sink if issubclass(cls, Sink) else Processor
        method = {Source: "packets", Sink: "deliver", Processor: "process"}[base]
        if getattr(cls, method) is getattr(base, method):
            raise RuntimeStartError(
                f"node {node_id!r}: plugin {cls.name!r} declares itself but does not implement "
                f"{method}(), so it cannot run; update the plugin's pack"
            )
        spec = self.graph.nodes[node_id].spec
        top = spec.limits.concurrency[1] if spec.limits.concurrency else spec.concurrency
        context = NodeContext(
            node_id,
            self.graph.base_dir,
            self.state_dir,
            self.logger.getChild(node_id),
            durable=spec.inbox.durable is not None,
            max_concurrency=max(spec.concurrency, top),
            event=lambda level, message: self.events.add(level, message, node_id),
        )
        try:
            return cls(config, context)
        except Exception as exc:
            raise RuntimeStartError(
                f"node {node_id!r}: plugin {cls.name!r} failed to start: {exc}"
            ) from exc

    # -- running ----------------------------------------------------------------------------

    async def run(
        self, max_packets: int | None = None, duration_s: float | None = None
    ) -> dict[str, Any]:
        """Run until a stop condition; return the run report."""
        if self.started_wall is not None:
            raise RuntimeError("a Runtime runs once; build a new one to run again")
        self.budget = Budget(max_packets)
        self.started_wall = time.time()
        self._opening = asyncio.ensure_future(self._open_plugins())
        try:
            await self._opening
        except asyncio.CancelledError:
            if not self._stop_requested.is_set():
                raise
            # stopped while a plugin was still opening (a backend that does not answer)
            self.finished, self.ended_wall = True, time.time()
            return build_report(self)
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
            await self._until_done()
        finally:
            if timer is not None:
                timer.cancel()
            if ticker is not None:
                ticker.cancel()
            if saver is not None:
                saver.cancel()
            if steering is not None:
                steering.cancel()
            await self._shutdown()
        return build_report(self)

    def _start_controller(self) -> asyncio.Task[None] | None:
        settings = self.graph.spec.runtime.controller
        if settings.mode == "off":
            return None
        from schnitzel.control.controller import Controller  # the control plane sits on top
        from schnitzel.runtime.control import RuntimeControl

        logger = self.logger.getChild("controller")
        self.controller = Controller(RuntimeControl(self), settings, logger)
        return asyncio.create_task(self.controller.run(), name="schnitzel-controller")

    async def _open_stores(self) -> None:
        """Open every durable inbox's store (its backlog is then queued first)."""
        for node_id, inbox in self.stores.items():
            try:
                await inbox.open()
            except RuntimeStartError:
                raise
            except Exception as exc:
                raise RuntimeStartError(
                    f"node {node_id!r}: durable store {str(inbox.path)!r} could not be "
                    f"opened: {exc}"
                ) from exc

    @property
    def _store_timeout_s(self) -> float:
        """How long the end of a run waits for a store's last writes (a full disk holds them;
        a forced stop waits less)."""
        return 0.5 if self.forced else 5.0

    async def _flush_stores(self) -> bool:
        timeout = self._store_timeout_s
        flushed = await asyncio.gather(*(inbox.flush(timeout) for inbox in self.stores.values()))
        return all(flushed)

    async def _close_stores(self) -> None:
        """Write what the stores still have pending and close them, all at once."""
        timeout = self._store_timeout_s
        results = await asyncio.gather(
            *(inbox.shutdown(timeout) for inbox in self.stores.values()),
            return_exceptions=True,
        )
        for node_id, result in zip(self.stores, results, strict=True):
            if isinstance(result, Exception):
                self.events.add("error", f"closing the durable store failed: {result}", node_id)

    async def _open_plugins(self) -> None:
        opened: list[Node] = []
        try:
            await self._open_stores()
            for node in self.nodes.values():
                try:
                    await node.plugin.open()
                except Exception as exc:
                    raise RuntimeStartError(
                        f"node {node.id!r} ({node.resolved.spec.plugin}) could not open: {exc}"
                    ) from exc
                opened.append(node)
        except BaseException:
            for done in opened:
                await self._close_plugin(done)
            await self._close_stores()
            raise

    def _start_tasks(self) -> None:
        sources = [n for n in self.nodes.values() if n.kind == "source"]
        self.in_flight.sources_running = len(sources)
        for node in self.nodes.values():
            runner = run_source if node.kind == "source" else run_worker
            self._tasks[node.id] = asyncio.create_task(
                self._guard(node, runner(node, self)), name=f"schnitzel-node-{node.id}"
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
                await self._drain(idle)
        finally:
            idle.cancel()
            stop.cancel()
        if self.stop_reason is None:
            exhausted = self.budget.spent
            self.stop_reason = StopReason.MAX_PACKETS if exhausted else StopReason.SOURCES_EXHAUSTED

    async def _drain(self, idle: asyncio.Future[Any]) -> None:
        """Wait for what is in flight, up to the drain timeout. Packets only in memory must
        drain or they are lost (counted). A durable backlog gets the same time, but the wait
        ends early once no durable node settled anything for DURABLE_STALL_S (its backend is
        down): the backlog stays on disk for the next run."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_timeout_s
        settled, since = self._durable_settled(), loop.time()
        while not idle.done():
            now = loop.time()
            if now >= deadline:
                self._abandon(f"drain did not finish within {self.drain_timeout_s:g} s")
                return
            if not self.in_flight.volatile:
                current = self._durable_settled()
                if current != settled:
                    settled, since = current, now
                elif now - since >= DURABLE_STALL_S:
                    self._abandon(f"durable nodes made no progress for {DURABLE_STALL_S:g} s")
                    return
            await asyncio.wait({idle}, timeout=min(0.1, deadline - now))

    def _durable_settled(self) -> int:
        return sum(inbox.stats.settled for inbox in self.stores.values())

    async def _shutdown(self) -> None:
        self.stopping = True
        pulls = [n.pulling for n in self.nodes.values() if n.pulling and not n.pulling.done()]
        if pulls:  # a stopped pull returns at its next packet: count what it read as lost
            await asyncio.wait(pulls, timeout=PULL_GRACE_S)
            await asyncio.sleep(0)  # let their done-callbacks count
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
        if not await self._flush_stores():  # packets a full disk never took are lost
            self.volatile_lost = True
        if self.checkpoints.active:
            await self.checkpoints.finish()
        await self._close_stores()
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
            elif node.id not in self._stop_cancelled and not (self.forced or self.abandoned):
                raise
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._node_crashed(node, exc)
        finally:
            if node.kind == "source":
                self.in_flight.source_finished()

    def _node_crashed(self, node: Node, exc: BaseException) -> None:
        node.metrics.crashed_with(exc)
        self.logger.error("node %s stopped: %s", node.id, exc, exc_info=exc)
        self.events.add("error", f"node stopped with an error: {exc}", node.id)
        lost = self._give_up(node, DropReason.NODE_FAILED, f"its node stopped: {exc}")
        if lost:
            self.events.add("error", f"{lost} packets lost with the node", node.id)
        self.request_stop(StopReason.ERROR, f"node {node.id!r} stopped: {exc}")

    def _give_up(self, node: Node, reason: str, why: str) -> int:
        """Count what a node holds as lost: queued packets as dropped for `reason`, the batch
        in its plugin as errors (it may or may not have been handled). Returns how many."""
        node.abandoned = True
        lost = 0
        if node.inbox is not None:
            if reason == DropReason.NODE_FAILED:
                node.inbox.close()
            lost += node.inbox.abandon(reason)
        held, node.batch = node.batch, None
        if held is not None:
            in_plugin = not held.counted
            if in_plugin:
                node.left_in_thread = node.pool is not None
            # a durable inbox keeps what the node took, first in line for the next run
            kept = held.abandon()
            node.metrics.handed_back(kept)
            if in_plugin and not kept:
                node.metrics.abandoned_in_plugin(len(held), why)
                lost += len(held)
        if lost:
            self.volatile_lost = True
        return lost

    def keep_durable_batch(self, node: Node) -> None:
        """A durable node's output was refused downstream (a node there failed): it stops,
        and what it took stays in its store for the next run instead of being deleted."""
        kept = node.inbox.backlog if isinstance(node.inbox, DurableInbox) else 0
        self._give_up(node, DropReason.SHUTDOWN, "were kept in the store")
        self.events.add(
            "error", f"stopped: a node downstream failed; {kept} packets kept in its store", node.id
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
        for node in self.nodes.values():
            node.stop_pulling.set()
            node.plugin.context.stopping.set()
        for node in self.nodes.values():
            if node.kind != "source" and node.paused:  # a drain delivers what is in flight
                node.running.set()
        for node_id in list(self._in_stoppable):
            task = self._tasks.get(node_id)
            if task is not None and not task.done():
                self._stop_cancelled.add(node_id)
                task.cancel()

    @contextlib.contextmanager
    def stoppable(self, node: Node) -> Iterator[None]:
        """Mark a source's wait (pacing, pause, an async pull) as safe to cancel on stop."""
        if self.stopping:
            self._stop_cancelled.add(node.id)
            raise asyncio.CancelledError
        self._in_stoppable.add(node.id)
        try:
            yield
        finally:
            self._in_stoppable.discard(node.id)

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

    # -- errors -----------------------------------------------------------------------------

    async def handle_failures(self, node: Node, failures: list[Failure]) -> None:
        """Count and log each failed packet, then apply the node's `on_error` policy (`park`
        is applied when the durable inbox settles the batch: runners._settle_durable)."""
        for packet, exc in failures:
            self._record_error(node, packet.packet_id, exc)
        policy = node.resolved.spec.on_error
        if policy == "dead_letter" and node.dead_letter is not None:
            letters = [_dead_letter(node.id, packet, exc) for packet, exc in failures]
            await node.dead_letter.put(letters)
        elif policy == "stop":
            packet, exc = failures[0]
            self.request_stop(
                StopReason.ERROR, f"node {node.id!r} failed on packet {packet.packet_id}: {exc}"
            )

    async def bad_records(self, node: Node, records: list[BadRecord]) -> bool:
        """Apply a source's `on_error` to records its plugin could not turn into packets:
        each is counted as an error; `dead_letter` sends a packet describing each to the
        dead-letter sink; `stop` ends the source at the first (False: the source must end)."""
        policy = node.resolved.spec.on_error
        if policy == "stop":
            await self.source_failed(node, records[0])
            return False
        for record in records:
            self._record_error(node, None, record)
        if policy == "dead_letter" and node.dead_letter is not None:
            await node.dead_letter.put([_bad_record_letter(node.id, r) for r in records])
        return True

    async def source_failed(self, node: Node, exc: Exception) -> None:
        """A source's iterator raised: the source ends; `on_error: stop` stops the graph."""
        self._record_error(node, None, exc)
        self.events.add("error", f"source ended with an error: {exc}", node.id)
        if node.resolved.spec.on_error == "stop":
            self.request_stop(StopReason.ERROR, f"source {node.id!r} failed: {exc}")

    def _record_error(self, node: Node, packet_id: str | None, exc: Exception) -> None:
        record = node.metrics.error(packet_id, exc)
        count = node.metrics.errors
        if count <= LOGGED_ERRORS_PER_NODE or count % 1000 == 0:
            self.logger.warning(
                "node %s: %s on packet %s: %s (%d errors so far)",
                node.id,
                record.error,
                packet_id,
                record.message,
                count,
                extra={"node": node.id, "packet_id": packet_id},
            )

    # -- metrics ----------------------------------------------------------------------------

    async def _tick(self) -> None:
        while True:
            try:
                self._tick_once()
            except Exception as exc:  # rates and health stop for this tick only, said aloud
                self.logger.exception("metrics tick failed")
                self.events.add("error", f"metrics tick failed: {type(exc).__name__}: {exc}")
            await asyncio.sleep(TICK_S)

    def _tick_once(self, final: bool = False) -> None:
        now = time.monotonic()
        for node in self.nodes.values():
            node.window.sample(node.metrics, now)
            if isinstance(node.inbox, DurableInbox):
                node.inbox.stats.sample(now)
            node.update_percentiles()
            inbox = node.inbox
            durable = isinstance(inbox, DurableInbox)
            delta = node.window.delta()
            node.troubles.tick(
                node.id, self.events, node.metrics, delta is not None and delta[1].emitted > 0
            )
            health, reason = judge_health(
                crashed=node.metrics.crashed,
                delta=delta,
                depth=inbox.depth if inbox is not None else 0,
                capacity=inbox.capacity if inbox is not None and not durable else None,
                idle_s=0.0 if node.emitting else now - node.metrics.last_progress,
                paused=node.paused,
                store_problem=inbox.problem() if isinstance(inbox, DurableInbox) else "",
                trouble=node.troubles.health_reason(),
                parked=inbox.parked_problem() if isinstance(inbox, DurableInbox) else "",
            )
            if final:  # the report's health is what the last sample says, no debounce
                node.health_pending = health
            self._set_health(node, health, reason)

    def _set_health(self, node: Node, health: str, reason: str) -> None:
        """Take a new health level once it held for two samples (failing at once), so a
        node hovering at a threshold does not flap in the log."""
        if health == node.health:
            node.health_reason = reason
            node.health_pending = None
            return
        if health not in (Health.FAILING, node.health_pending):
            node.health_pending = health
            return
        level = "info" if health == Health.OK else "warning"
        self.events.add(level, f"health {node.health} -> {health} {reason}".strip(), node.id)
        node.health, node.health_reason, node.health_pending = health, reason, None

    def snapshot(self) -> dict[str, Any]:
        """The run report, live (`status` is "running" until the run ends)."""
        return build_report(self)


def _check_rate_within_limits(node: Node) -> None:
    """A source whose declared `limits.rate_hz` do not hold its own rate could never be put
    back where it started once throttled: refuse it before anything runs."""
    bounds = node.resolved.spec.limits.rate_hz
    if bounds is None or node.pacer is None:
        return
    rate, (low, high) = node.pacer.rate_hz, bounds
    if rate is None or not low <= rate <= high:
        now = "is not paced (no rate)" if rate is None else f"runs at {rate:.12g}/s"
        raise RuntimeStartError(
            f"node {node.id!r}: the source {now}, outside its limits.rate_hz "
            f"[{low:.12g}, {high:.12g}]; give it a rate within them (its config) or widen them"
        )


def _bad_record_letter(node_id: str, record: BadRecord) -> StreamPacket:
    """The dead letter of a bad input record: the record described as portable JSON."""
    error = {"node": node_id, "error": type(record).__name__, "message": str(record)}
    line = record.details.get("line")
    seq = line if isinstance(line, int) else 0
    meta: dict[str, Any] = {"error": error}
    if record.key is not None:
        meta["idempotency_key"] = record.key
    return StreamPacket.new("bad_record", node_id, seq, record.describe(), meta=meta)


def _dead_letter(node_id: str, packet: StreamPacket, exc: Exception) -> StreamPacket:
    error = {"node": node_id, "error": type(exc).__name__, "message": str(exc) or repr(exc)}
    return packet.evolve(meta={**packet.meta, "error": error})
