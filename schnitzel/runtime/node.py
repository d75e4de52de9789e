"""One running node: its plugin instance, inbox, metrics, targets, and how to call it."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from schnitzel.contract.packet import StreamPacket
from schnitzel.errors import BadRecord, RuntimeStartError
from schnitzel.registry.plugin import NodeContext, Plugin, Processor, Sink, Source
from schnitzel.registry.trouble import Trouble
from schnitzel.runtime.inbox import Inbox
from schnitzel.runtime.inbox_protocol import Batch
from schnitzel.runtime.metrics import DropReason, NodeMetrics, RateWindow
from schnitzel.runtime.pacer import Pacer
from schnitzel.runtime.processing import (
    Outcome,
    Routed,
    add_result,
    deliver_each,
    process_each,
    run_batch_method,
)
from schnitzel.runtime.troubles import TroubleWatch
from schnitzel.validate.graph import ResolvedNode

__all__ = ["MAX_CONCURRENCY", "Node", "Target", "takes_concurrency"]

MAX_CONCURRENCY = 256
"""The most calls at once a node may be given (as `concurrency: 1..256` in the graph file)."""


class Target(NamedTuple):
    """Where an output port leads: the next node's inbox."""

    node_id: str
    inbox: Inbox
    force: bool
    """Queue even when full: set on edges leaving a delay node, so a cycle always moves."""


class Node:
    """A node of the running graph."""

    calling: asyncio.Future[Outcome] | None = None
    """The plugin call on a batch a swap may interrupt (see `interruptible`)."""
    interrupting = False
    """Set by a swap that cancels `calling`: the batch goes back to the inbox."""

    def __init__(self, resolved: ResolvedNode, plugin: Plugin, inbox: Inbox | None) -> None:
        self.id = resolved.id
        self.kind = resolved.spec.kind
        self.inbox = inbox
        self.metrics = inbox.metrics if inbox is not None else NodeMetrics()
        self.window = RateWindow()
        self.dead_letter: Inbox | None = None
        self.running = asyncio.Event()
        self.running.set()
        self.pacer = Pacer(plugin.rate_hz()) if isinstance(plugin, Source) else None
        self.concurrency = resolved.spec.concurrency
        self.sample_every = 1
        """Keep 1 of every N packets taken from the inbox (a live throttle; the rest are
        counted as filtered)."""
        self._sample_phase = 0
        self.turn = asyncio.Lock()
        """Held while the plugin works on a batch: a swap takes it to replace the plugin
        between two batches."""
        self.generation = 0
        """0 as started; +1 per swap or rollback."""
        self.resolved = resolved
        self.plugin = plugin
        self.pool: ThreadPoolExecutor | None = None
        self.targets: dict[str, list[Target]] = {port: [] for port in plugin.outputs}
        self.install(resolved, plugin)
        self.health = "ok"
        self.health_reason = ""
        self.health_pending: str | None = None
        """A new health seen once; taken when the next sample agrees (no flapping)."""
        self.latency_ms = {"p50": 0.0, "p99": 0.0}
        """Percentiles of `metrics.latency` as of the last metrics tick."""
        self.processing_ms = {"p50": 0.0, "p99": 0.0}
        self.batch: Batch | None = None
        """The batch the node took from its inbox and has not ended yet (settled, given
        back or abandoned); `batch.counted` says whether its outcome is counted."""
        self.last_emitted: StreamPacket | BadRecord | None = None
        """A source's newest packet the graph accepted, or bad record its `on_error` dealt
        with (checkpoint tracking)."""
        self.abandoned = False
        """Set when the run gave up on this node (drain timeout, forced stop, failure)."""
        self.left_in_thread = False
        """A call was still running in the node's thread when the run gave up on it."""
        self.pulling: asyncio.Future[Any] | None = None
        """A blocking source's pull running in its thread."""
        self.stop_pulling = threading.Event()
        """Set on stop: a pull running in a thread returns at its next packet."""
        self.emitting = False
        """True while the node waits for room downstream (backpressure, not a stall)."""

    @property
    def interruptible(self) -> bool:
        """A call may be cancelled and its batch taken again: the inbox is durable (the
        packets are safe in the store; at-least-once delivery allows a second try) and the
        call runs on the event loop (a thread cannot be stopped)."""
        return bool(self.inbox is not None and self.inbox.durable and self.pool is None)

    def install(self, resolved: ResolvedNode, plugin: Plugin) -> ThreadPoolExecutor | None:
        """Run `plugin` from the next batch on (at start, and by a swap holding `turn`).
        Returns the thread pool of the plugin it replaced, for the caller to shut down."""
        old_pool = self.pool
        self.resolved, self.plugin = resolved, plugin
        self.pool = None
        if plugin.blocking:
            self.pool = ThreadPoolExecutor(self.thread_limit, f"schnitzel-{self.id}")
        self.call = self._choose_call()
        self.knob_bounds: dict[str, tuple[float, float]] | None = None
        """The throttles' bounds for this plugin (`throttles.knob_limits`), once known."""
        self.limits_shown: tuple[dict[str, Any], dict[str, Any]] | None = None
        """The report's `limits` and `declared_limits` (`throttles.limits_report`)."""
        context = getattr(plugin, "context", None)
        trouble = context.trouble if isinstance(context, NodeContext) else Trouble()
        self.troubles = TroubleWatch(trouble)
        """What the plugin reports with `report_trouble`, and what the operator was told."""
        self.concurrent = takes_concurrency(self.kind, type(plugin))
        """True when `concurrency` means something for the plugin: it blocks (threads) or is
        async (calls awaited at once). A plain inline plugin runs one call at a time."""
        return old_pool if old_pool is not self.pool else None

    @property
    def thread_limit(self) -> int:
        """Threads a blocking plugin may use: the top of its concurrency limits (threads
        start only when needed)."""
        limits = self.resolved.spec.limits.concurrency
        return max(self.concurrency, limits[1] if limits else MAX_CONCURRENCY)

    def sample(self, batch: list[StreamPacket]) -> list[StreamPacket]:
        """The packets the `sample_every` throttle keeps; the others count as filtered."""
        every = self.sample_every
        phase = self._sample_phase
        start = (-phase) % every
        kept = batch[start::every]
        self._sample_phase = (phase + len(batch)) % every
        self.metrics.filtered += len(batch) - len(kept)
        return kept

    @property
    def paused(self) -> bool:
        """True while an operator has paused the node."""
        return not self.running.is_set()

    def update_percentiles(self) -> None:
        """Read p50/p99 from the histograms (once per tick, not per snapshot)."""
        p50, p99 = self.metrics.latency.percentiles(0.5, 0.99)
        self.latency_ms = {"p50": round(p50 * 1000, 3), "p99": round(p99 * 1000, 3)}
        p50, p99 = self.metrics.processing.percentiles(0.5, 0.99)
        self.processing_ms = {"p50": round(p50 * 1000, 4), "p99": round(p99 * 1000, 4)}

    async def emit(self, packets: list[Any], routed: bool = False) -> None:
        """Pass packets on to every target of their port, waiting where an inbox blocks.
        `routed`: some items are `Routed` (sent to a named port)."""
        targets = self.targets
        if len(targets) == 1 and not routed:
            sends = [(target, packets) for target in next(iter(targets.values()))]
        else:
            by_port: dict[str, list[StreamPacket]] = {}
            default = self.plugin.outputs[0]
            for item in packets:
                if item.__class__ is Routed:
                    by_port.setdefault(item.port, []).append(item.packet)
                else:
                    by_port.setdefault(default, []).append(item)
            sends = [(t, batch) for port, batch in by_port.items() for t in targets[port]]
        for index, (target, batch) in enumerate(sends):
            try:
                await target.inbox.put(batch, target.force)
            except asyncio.CancelledError:  # a forced stop: count what the rest never got
                for unsent_to, unsent in sends[index + 1 :]:
                    unsent_to.inbox.metrics.received += len(unsent)
                    unsent_to.inbox.metrics.drop(DropReason.SHUTDOWN, len(unsent))
                raise

    def downstream_closed(self) -> bool:
        """True when an inbox this node sends to stopped taking packets (its node failed)."""
        if self.dead_letter is not None and self.dead_letter.closed:
            return True
        return any(t.inbox.closed for targets in self.targets.values() for t in targets)

    def check_routes(self, outcome: Outcome) -> None:
        """Turn packets routed to a port this plugin does not have into failures."""
        ports = self.targets
        bad = [i for i in outcome.outputs if i.__class__ is Routed and i.port not in ports]
        if not bad:
            return
        outcome.outputs = [i for i in outcome.outputs if i not in bad]
        known = ", ".join(ports) or "none"
        for item in bad:
            error = ValueError(f"routed to unknown port {item.port!r}; ports: {known}")
            outcome.failures.append((item.packet, error))

    def _choose_call(self) -> Callable[[list[StreamPacket]], Coroutine[Any, Any, Outcome]]:
        """How this node hands a batch to its plugin, decided once at start."""
        plugin = self.plugin
        if isinstance(plugin, Source):
            return _never
        if isinstance(plugin, Sink):
            method, each, batch_name = plugin.deliver, deliver_each, "deliver_batch"
        elif isinstance(plugin, Processor):
            method, each, batch_name = plugin.process, process_each, "process_batch"
        else:
            raise TypeError(f"node {self.id!r}: {type(plugin).__name__} is not a node plugin")
        has_batch = getattr(type(plugin), batch_name) is not getattr(
            Sink if isinstance(plugin, Sink) else Processor, batch_name
        )
        if (
            has_batch
            and inspect.iscoroutinefunction(getattr(plugin, batch_name))
            != (inspect.iscoroutinefunction(method))
        ) or (has_batch and isinstance(plugin, Processor) and _is_async(plugin.process_batch)):
            single = "deliver" if isinstance(plugin, Sink) else "process"
            raise RuntimeStartError(
                f"node {self.id!r}: plugin {plugin.name!r} has {_how(getattr(plugin, batch_name))}"
                f" {batch_name}() but {_how(method)} {single}(); make both plain or both "
                "async (process_batch is always plain); update the plugin's pack"
            )
        if inspect.iscoroutinefunction(method):
            each_awaited = _each_awaited(method, isinstance(plugin, Sink))
            if isinstance(plugin, Sink) and has_batch:
                each_awaited = _batch_awaited(plugin, each_awaited)
            return _at_once(self, each_awaited)

        def sync_call(batch: list[StreamPacket]) -> Outcome:
            return run_batch_method(plugin, batch) if has_batch else each(method, batch)

        if self.pool is None:

            async def inline(batch: list[StreamPacket]) -> Outcome:
                return sync_call(batch)

            return inline
        return _in_pool(self, self.pool, sync_call)


def takes_concurrency(kind: str, cls: type[Plugin]) -> bool:
    """True when `concurrency` means something for a plugin class on a node of `kind`."""
    if issubclass(cls, Source) or kind == "delay":
        return False
    method = cls.deliver if issubclass(cls, Sink) else cls.process  # type: ignore[attr-defined]
    return cls.blocking or inspect.iscoroutinefunction(method)


def _is_async(method: Any) -> bool:
    return inspect.iscoroutinefunction(method)


def _how(method: Any) -> str:
    return "an async" if _is_async(method) else "a plain"


async def _never(batch: list[StreamPacket]) -> Outcome:
    raise AssertionError("a source has no inbox to process")


def _each_awaited(
    method: Callable[[StreamPacket], Any], is_sink: bool
) -> Callable[[list[StreamPacket]], Coroutine[Any, Any, Outcome]]:
    async def call(batch: list[StreamPacket]) -> Outcome:
        outcome = Outcome()
        for packet in batch:
            try:
                result = await method(packet)
            except Exception as exc:
                outcome.failures.append((packet, exc))
                continue
            if not is_sink:
                add_result(outcome, packet, result)
        return outcome

    return call


def _batch_awaited(
    plugin: Sink, each: Callable[[list[StreamPacket]], Coroutine[Any, Any, Outcome]]
) -> Callable[[list[StreamPacket]], Coroutine[Any, Any, Outcome]]:
    """An async sink's all-or-nothing `deliver_batch`, falling back to one packet at a time
    when it raises so that the error lands on the packet that caused it."""

    async def call(batch: list[StreamPacket]) -> Outcome:
        try:
            await plugin.deliver_batch(batch)  # type: ignore[misc]
        except Exception:
            return await each(batch)
        return Outcome()

    return call


def _in_pool(
    node: Node, pool: ThreadPoolExecutor, call: Callable[[list[StreamPacket]], Outcome]
) -> Callable[[list[StreamPacket]], Coroutine[Any, Any, Outcome]]:
    """Split a batch into up to `node.concurrency` chunks run at once in the node's threads;
    results keep input order."""

    async def run(batch: list[StreamPacket]) -> Outcome:
        loop = asyncio.get_running_loop()
        concurrency = node.concurrency
        if concurrency == 1 or len(batch) == 1:
            return await loop.run_in_executor(pool, call, batch)
        outcomes = await asyncio.gather(
            *(loop.run_in_executor(pool, call, chunk) for chunk in _chunks(batch, concurrency))
        )
        return _merged(outcomes)

    return run


def _at_once(
    node: Node, call: Callable[[list[StreamPacket]], Coroutine[Any, Any, Outcome]]
) -> Callable[[list[StreamPacket]], Coroutine[Any, Any, Outcome]]:
    """An async plugin's batch split into up to `node.concurrency` chunks awaited at once
    (each chunk in order); results keep input order."""

    async def run(batch: list[StreamPacket]) -> Outcome:
        concurrency = node.concurrency
        if concurrency == 1 or len(batch) == 1:
            return await call(batch)
        return _merged(await asyncio.gather(*(call(c) for c in _chunks(batch, concurrency))))

    return run


def _chunks(batch: list[StreamPacket], parts: int) -> list[list[StreamPacket]]:
    size = -(-len(batch) // parts)
    return [batch[i : i + size] for i in range(0, len(batch), size)]


def _merged(outcomes: list[Outcome]) -> Outcome:
    total = outcomes[0]
    for outcome in outcomes[1:]:
        total.merge(outcome)
    return total
