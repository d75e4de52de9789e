"""One running node: its plugin instance, inbox, metrics, targets, and how to call it."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from schnitzel.contract.packet import StreamPacket
from schnitzel.contract.run_report import Percentiles
from schnitzel.registry.plugin import NodeContext, Plugin, Source
from schnitzel.registry.trouble import Trouble
from schnitzel.runtime.commit_order import CommitOrder, Commits
from schnitzel.runtime.durable_check import is_durable
from schnitzel.runtime.inbox import Inbox
from schnitzel.runtime.inbox_protocol import Batch
from schnitzel.runtime.metrics import DropReason, NodeMetrics, RateWindow
from schnitzel.runtime.pacer import Pacer
from schnitzel.runtime.processing import (
    InlineCall,
    Outcome,
    Routed,
    choose_call,
    takes_concurrency,
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
        self.latency_ms: Percentiles = {"p50": 0.0, "p99": 0.0}
        """Percentiles of `metrics.latency` as of the last metrics tick."""
        self.processing_ms: Percentiles = {"p50": 0.0, "p99": 0.0}
        self.batch: Batch | None = None
        """The batch the node took from its inbox and has not ended yet (settled, given
        back or abandoned); `batch.counted` says whether its outcome is counted."""
        self.unsettled = CommitOrder()
        """Batches the node finished whose outputs wait for durable commits (older than
        `batch`), and a source's emitted packets that do: ended in order once committed."""
        self.abandoned = False
        """Set when the run gave up on this node (drain timeout, forced stop, failure)."""
        self.left_in_thread = False
        """A call was still running in the node's thread when the run gave up on it."""

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
        self.call = choose_call(self.id, plugin, self.pool, self)
        """How the node hands a batch to this plugin (`processing.choose_call`)."""
        self.call_plain = self.call.plain if isinstance(self.call, InlineCall) else None
        """`call` as a plain function when it runs on the event loop without awaiting
        anything (a plain, non-blocking plugin); None otherwise."""
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
        self.metrics.filtered_out(len(batch) - len(kept))
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
        """Pass packets on to every target of their port, waiting where an inbox blocks and,
        for a durable inbox, for the commit. `routed`: some items are `Routed` (sent to a
        named port)."""
        targets = self.targets
        if len(targets) == 1 and not routed:
            port = next(iter(targets.values()))
            if len(port) == 1:  # the commonest: one edge out
                only = port[0]
                try:
                    await only.inbox.put(packets, only.force)
                except Exception:  # see below
                    only.inbox.metrics.refused(DropReason.NODE_FAILED, len(packets))
                    raise
                return
        sends = self._sends(packets, routed)
        for index, (target, batch) in enumerate(sends):
            try:
                await target.inbox.put(batch, target.force)
            except asyncio.CancelledError:  # a forced stop: count what the rest never got
                _refused(sends[index + 1 :], DropReason.SHUTDOWN)
                raise
            except Exception:
                # A put that raises (a plugin's packet an inbox cannot size or encode) took
                # nothing, and this node stops. Its outputs were counted as passed on: count
                # them as dropped where they were going, so every edge still adds up.
                _refused(sends[index:], DropReason.NODE_FAILED)
                raise

    async def admit(self, packets: list[Any], routed: bool = False) -> Commits | None:
        """`emit`, but without waiting for durable inboxes' commits: returns once every target
        admitted the packets, with the commits to wait for before the inputs they came from
        may be retired (None: every target is in memory, nothing to wait for)."""
        targets = self.targets
        if len(targets) == 1 and not routed:
            port = next(iter(targets.values()))
            if len(port) == 1:  # the commonest: one edge out
                only = port[0]
                inbox = only.inbox
                try:
                    if not inbox.durable:
                        await inbox.put(packets, only.force)
                        return None
                    commit = await inbox.admit(packets, only.force)
                except Exception:  # as in `emit`
                    inbox.metrics.refused(DropReason.NODE_FAILED, len(packets))
                    raise
                return None if commit is None else [commit]
        sends = self._sends(packets, routed)
        commits: Commits | None = None
        for index, (target, batch) in enumerate(sends):
            try:
                commit = await target.inbox.admit(batch, target.force)
            except asyncio.CancelledError:  # a forced stop: count what the rest never got
                _refused(sends[index + 1 :], DropReason.SHUTDOWN)
                raise
            except Exception:  # as in `emit`
                _refused(sends[index:], DropReason.NODE_FAILED)
                raise
            if commit is not None:
                if commits is None:
                    commits = [commit]
                else:
                    commits.append(commit)
        return commits

    def _sends(self, packets: list[Any], routed: bool) -> list[tuple[Target, list[StreamPacket]]]:
        """(target, its packets) for every edge the packets leave by."""
        targets = self.targets
        if len(targets) == 1 and not routed:
            return [(target, packets) for target in next(iter(targets.values()))]
        by_port: dict[str, list[StreamPacket]] = {}
        default = self.plugin.outputs[0]
        for item in packets:
            if item.__class__ is Routed:
                by_port.setdefault(item.port, []).append(item.packet)
            else:
                by_port.setdefault(default, []).append(item)
        return [(t, batch) for port, batch in by_port.items() for t in targets[port]]

    def downstream_closed(self) -> bool:
        """True when an inbox this node sends to stopped taking packets: its node failed, or
        its durable store's process died (it refuses what it did not commit, and its `put`
        returns all the same: the inputs of those outputs must stay where they are)."""
        if self.dead_letter is not None and _refuses(self.dead_letter):
            return True
        return any(_refuses(t.inbox) for targets in self.targets.values() for t in targets)

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


def _refused(sends: list[tuple[Target, list[StreamPacket]]], reason: str) -> None:
    """Count packets that never reached the inboxes they were sent to as dropped there."""
    for target, batch in sends:
        target.inbox.metrics.refused(reason, len(batch))


def _refuses(inbox: Inbox) -> bool:
    """Whether `inbox` no longer takes packets in: closed, or a durable one whose store's
    process died (`StoreWorker.gone`)."""
    return inbox.closed or (is_durable(inbox) and inbox.worker.gone)
