"""The task each node runs: a `SourceWorker` pulls from its source plugin, an `InboxWorker`
drains its node's inbox. Each owns the state of the batch it is on (a pull running in a
thread, a call a swap may interrupt, a wait for room downstream); the runtime, draining and
the control plane ask it through `NodeWorker` (runtime/worker_api.py), never through `Node`.

Both work in micro-batches: a node takes everything queued (up to `BATCH`) at once, so the
per-packet cost is a plugin call and a few list operations; awaiting, counting and waking
happen once per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from functools import partial
from itertools import islice
from typing import Any, NamedTuple

from schnitzel.contract.packet import StreamPacket
from schnitzel.errors import BadRecord
from schnitzel.runtime.commit_order import Commits
from schnitzel.runtime.inbox import Inbox
from schnitzel.runtime.inbox_protocol import Batch
from schnitzel.runtime.metrics import DropReason, message_of
from schnitzel.runtime.node import Node, Target
from schnitzel.runtime.pacer import ClockStep
from schnitzel.runtime.processing import PLUGIN_ERRORS, Outcome, as_failure
from schnitzel.runtime.stop_reason import StopReason
from schnitzel.runtime.worker_api import WorkerRuntime

__all__ = ["BATCH", "InboxWorker", "SourceWorker", "worker_for"]

BATCH = 256
"""Most packets a node takes or a source pulls at once."""
UNSETTLED_MAX = 8
"""Most batches a producer keeps waiting for the commits of their outputs while it makes the
next ones (runtime/commit_order.py); at this many it waits for the oldest."""


class _Worker:
    """What every node's task has: its node, the runtime as workers see it, and whether it
    waits for room downstream."""

    last_emitted: StreamPacket | BadRecord | None = None
    """A source's newest packet the graph accepted, or bad record its `on_error` dealt with
    (checkpoint tracking); always None for other nodes."""
    cancelled_by_stop = False
    """A stop cancelled the worker's task in a wait that was safe to cancel."""

    def __init__(self, node: Node, runtime: WorkerRuntime) -> None:
        self.node = node
        self.runtime = runtime
        self.emitting = False
        """True while the worker waits for room downstream (backpressure, not a stall)."""

    @property
    def waiting_downstream(self) -> bool:
        return self.emitting

    def stop_pulling(self) -> None:
        """Nothing to stop: only a source pulls."""

    def stop_waiting(self) -> None:
        """Nothing to cancel: a node with an inbox drains it."""

    def pull_in_thread(self) -> asyncio.Future[Any] | None:
        return None

    def interrupt(self) -> bool:
        return False

    async def emit(self, packets: list[Any], routed: bool = False) -> None:
        """Pass packets on (`Node.emit`), marked as a wait for room downstream."""
        self.emitting = True
        try:
            await self.node.emit(packets, routed)
        finally:
            self.emitting = False


def worker_for(node: Node, runtime: WorkerRuntime) -> SourceWorker | InboxWorker:
    """The worker that runs `node`: a source pulls, any other node drains its inbox."""
    return SourceWorker(node, runtime) if node.kind == "source" else InboxWorker(node, runtime)


class InboxWorker(_Worker):
    """Drains one node's inbox batch by batch through its plugin."""

    def __init__(self, node: Node, runtime: WorkerRuntime) -> None:
        super().__init__(node, runtime)
        self.calling: asyncio.Future[Outcome] | None = None
        """The plugin call on a batch a swap may interrupt (see `Node.interruptible`)."""
        self.interrupting = False
        """Set by a swap that cancels `calling`: the batch goes back to the inbox."""

    def interrupt(self) -> bool:
        """Cancel the plugin call on the current batch, which goes back to the front of the
        durable inbox (a swap that waited too long). False when there is no call to cancel
        or it cannot be (a memory inbox, a call in a thread)."""
        calling = self.calling
        if calling is None or calling.done() or not self.node.interruptible:
            return False
        self.interrupting = True
        calling.cancel()
        return True

    async def run(self) -> None:
        """Drain the node's inbox until the runtime closes it."""
        node, runtime = self.node, self.runtime
        inbox = node.inbox
        assert inbox is not None
        metrics = node.metrics
        running, turn = node.running, node.turn
        durable = inbox.durable
        while not node.abandoned:
            if not inbox:
                if inbox.closed:  # done, once what it handed on is committed
                    return await node.unsettled.wait_below(1)
                await inbox.wait_items()
                continue
            if not running.is_set() and not runtime.stopping:  # a drain does not wait on pauses
                await running.wait()
            node.batch = taken = inbox.take(_batch_limit(node))
            batch = taken.packets
            metrics.took(len(batch))
            metrics.last_progress = started = time.monotonic()  # the clock health compares
            if node.sample_every > 1:
                batch = node.sample(batch)
            plain = node.call_plain
            outcome: Outcome | None
            if plain is not None and batch and not durable and not turn.locked():
                # a plain call on the loop: no swap can come between it and the free turn
                # it would have taken, so it runs without taking it (no coroutines)
                outcome = plain(batch)
                if outcome.routed:
                    node.check_routes(outcome)
            else:
                async with turn:  # a swap waits for this batch; the next goes to the new plugin
                    outcome = await self._call(batch)
            if outcome is None:  # a swap gave the batch back: the new plugin gets it
                continue
            if node.abandoned:  # the run gave up on this node meanwhile and counted the batch
                return
            finished = self._count(taken, batch, outcome, started)
            if outcome.failures:
                await runtime.errors.handle_failures(node, outcome.failures)
            if durable:  # its inbox holds one batch at a time: it waits for the commits
                if not await self._pass_on_durable(taken, outcome, finished):
                    return
                continue
            if outcome.outputs:
                self.emitting = True
                commits = await node.admit(outcome.outputs, outcome.routed)
                self.emitting = False
            else:
                commits = None
            metrics.last_progress = finished
            node.batch = None
            if commits is None and not node.unsettled:  # nothing to wait for: done
                _settle_now(node, taken)
            else:
                await self._settle_once_committed(taken, commits)

    async def _pass_on_durable(self, taken: Batch, outcome: Outcome, finished: float) -> bool:
        """Emit the outputs of a batch from a durable inbox, waiting for their commits, and
        settle it; False when the node must stop instead (see `_settle_durable`)."""
        node = self.node
        keep_failed = node.resolved.spec.on_error == "stop"  # a durable inbox keeps them
        if outcome.outputs:
            await self.emit(outcome.outputs, outcome.routed)
        node.metrics.last_progress = finished
        return _settle_durable(node, self.runtime, taken, outcome, keep_failed)

    async def _settle_once_committed(self, taken: Batch, commits: Commits | None) -> None:
        """Settle `taken` once `commits` (its outputs in durable inboxes) and the batches
        before it are done, while the node goes on with the next batch; wait while
        UNSETTLED_MAX batches wait for theirs."""
        unsettled = self.node.unsettled
        unsettled.add(commits, taken.settle, taken.abandon, taken)
        if len(unsettled) >= UNSETTLED_MAX:
            self.emitting = True  # a wait for the disk downstream: not a stall
            await unsettled.wait_below(UNSETTLED_MAX)
            self.emitting = False

    def _count(
        self, taken: Batch, batch: list[StreamPacket], outcome: Outcome, started: float
    ) -> float:
        """Count a batch the plugin finished (every input passed on, filtered or failed),
        its processing time and the packets' ages; returns when it finished (monotonic)."""
        node = self.node
        metrics = node.metrics
        finished = time.monotonic()
        n = len(taken.packets)
        metrics.processing.record((finished - started) / n, n)
        if node.kind == "sink":
            metrics.completed(len(batch) - len(outcome.failures), outcome.filtered)
        else:
            metrics.passed_on(len(outcome.outputs), outcome.filtered)
        taken.counted = True
        # At most ~16 samples per batch, each weighted by the stride: exact for the small
        # batches of a paced stream, and it keeps a 256-packet batch from costing 256 bisects.
        metrics.latency.record_ages(time.time(), batch, (n >> 4) or 1)
        return finished

    async def _call(self, batch: list[StreamPacket]) -> Outcome | None:
        """The plugin's outcome on a batch (None: a swap interrupted it)."""
        node = self.node
        if not batch:
            return Outcome()
        if node.interruptible:
            outcome = await self._interruptible_call(batch)
        else:
            outcome = await node.call(batch)
        if outcome is not None and outcome.routed:
            node.check_routes(outcome)
        return outcome

    async def _interruptible_call(self, batch: list[StreamPacket]) -> Outcome | None:
        """The plugin call on a batch from a durable inbox, which a swap may cancel (a sink
        retrying a backend that is down holds its batch for ever); None when it did: the
        batch is back at the front of the inbox."""
        node = self.node
        self.calling = call = asyncio.ensure_future(node.call(batch))
        try:
            return await call
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self.interrupting or (task is not None and task.cancelling()):
                raise  # a stop, not a swap
            self.interrupting = False
            held, node.batch = node.batch, None
            if held is None:  # the run gave up on the node meanwhile: nothing to give back
                return None
            taken = held.give_back()
            node.metrics.handed_back(taken, taken - len(batch))  # sampled again when taken again
            return None
        finally:
            self.calling = None


def _batch_limit(node: Node) -> int:
    """How many packets the node takes at once: its plugin's `max_batch` per call (slow
    calls such as inference take few), times the calls it runs at once; else BATCH."""
    most = getattr(node.plugin, "max_batch", None)
    return BATCH if most is None else max(1, most * node.concurrency)


def _settle_now(node: Node, taken: Batch) -> None:
    """End a batch that has nothing to wait for. A source that answers once its packets are
    safe (`checkpoints_promptly`: http_ingest's 202) is looked at now, not at the checkpoint
    tracker's next poll: a sink's delivery may have made them safe."""
    taken.settle()
    settled = node.unsettled.on_settled
    if settled is not None:
        settled()


def _settle_durable(
    node: Node, runtime: WorkerRuntime, taken: Batch, outcome: Outcome, keep_failed: bool
) -> bool:
    """End the batch a node with a durable inbox finished: delete it, but the failed packets
    under `on_error: stop` (kept for later) and parked ones under `park` (moved to its parked
    table). False when the node must stop instead (a node downstream failed, or its durable
    store's process died, and refused part of the output: the inbox keeps it all)."""
    if node.downstream_closed():
        runtime.keep_durable_batch(node)
        return False
    kept = [p for p, _ in outcome.failures] if keep_failed else None
    parked = None
    if outcome.failures and node.resolved.spec.on_error == "park":
        parked = [(p, f"{type(exc).__name__}: {message_of(exc)}") for p, exc in outcome.failures]
    taken.settle(kept, runtime.checkpoints.trail(node), parked)
    node.batch = None
    return True


class SourceWorker(_Worker):
    """Pulls packets from a source plugin as fast as the graph and the pacer allow. A source
    has no inbox, so waiting downstream never looks like a stall: it emits unmarked."""

    def __init__(self, node: Node, runtime: WorkerRuntime) -> None:
        super().__init__(node, runtime)
        self.pulling: asyncio.Future[Any] | None = None
        """A blocking source's pull running in its thread."""
        self._stop = threading.Event()
        """Set on stop: a pull running in a thread returns at its next packet."""
        self._task: asyncio.Task[Any] | None = None
        self._waiting = False
        """In a wait a stop may cancel (pacing, a pause, an async pull)."""
        self.paced_wait = False
        """The current batch began with a wait for the pacer (the task let the loop run)."""
        self._pull_now: Callable[[int], _Pulled] | None = None
        """One pull on the loop (no thread), for the steps the pace clock runs."""
        self._parked: asyncio.Future[_Handed | None] | None = None
        """While the pace clock runs the source's steps (`_run_on_clock`): what its task
        waits for, the first step that could not finish without waiting."""
        self._next_step: ClockStep | None = None
        """The step filed on the pace clock while the task is parked."""

    def stop_pulling(self) -> None:
        """A pull running in a thread returns at its next packet."""
        self._stop.set()

    def pull_in_thread(self) -> asyncio.Future[Any] | None:
        """The pull still running in the source's thread, if any."""
        pulling = self.pulling
        return pulling if pulling is not None and not pulling.done() else None

    def stop_waiting(self) -> None:
        """On stop: cancel the source's task if it is in a wait that is safe to cancel."""
        task = self._task
        if self._waiting and task is not None and not task.done():
            self.cancelled_by_stop = True
            task.cancel()

    @contextlib.contextmanager
    def _stoppable(self) -> Iterator[None]:
        """Mark a wait (pacing, a pause, an async pull) as safe to cancel on stop."""
        if self.runtime.stopping:
            self.cancelled_by_stop = True
            raise asyncio.CancelledError
        self._waiting = True
        try:
            yield
        finally:
            self._waiting = False

    async def run(self) -> None:
        self._task = asyncio.current_task()
        packets: Any = self.node.plugin.packets()  # type: ignore[attr-defined]
        try:
            try:
                if hasattr(packets, "__anext__"):
                    await self._pump_async(packets)
                else:
                    await self._pump_sync(packets)
            finally:
                # What it handed on is committed before the source counts as finished (the
                # run may end once it did), even when a stop cancelled one of its waits:
                # handing a batch on is finished, not abandoned. A forced stop cancels this.
                await self.node.unsettled.wait_below(1)
        finally:
            await self._close_iterator(packets)

    async def _passed_on(
        self,
        last: StreamPacket | BadRecord,
        commits: Commits | None,
        waiting: _Suspended | None = None,
    ) -> None:
        """`last` (the last packet of a batch, or a bad record dealt with) becomes
        `last_emitted` once `commits` (its batch's outputs in durable inboxes) and those of
        every batch before it are done; waits while UNSETTLED_MAX batches wait for theirs.
        `waiting`: a pull the source started waits in this task (see `_emit_while_pulling`)."""
        unsettled = self.node.unsettled
        if commits is None and not unsettled:
            self.last_emitted = last
            return
        unsettled.add(commits, partial(setattr, self, "last_emitted", last), _nothing)
        while len(unsettled) >= UNSETTLED_MAX:
            try:
                await unsettled.wait_below(UNSETTLED_MAX)
            except asyncio.CancelledError:
                if waiting is None or self.runtime.stopping or self.cancelled_by_stop:
                    raise
                waiting.cancelled = True  # the source's own: its pull gets it

    async def _close_iterator(self, packets: Any) -> None:
        """Close the source's iterator; one still running in a thread is closed when it
        returns (closing a generator while it executes would fail)."""
        node, runtime = self.node, self.runtime

        def close() -> None:
            closer = getattr(packets, "close", None)
            if closer is not None:
                try:
                    closer()
                except PLUGIN_ERRORS as exc:
                    runtime.events.add(
                        "error", f"closing the source failed: {as_failure(exc)}", node.id
                    )

        if hasattr(packets, "aclose"):
            try:
                await packets.aclose()
            except PLUGIN_ERRORS as exc:
                runtime.events.add(
                    "error", f"closing the source failed: {as_failure(exc)}", node.id
                )
        elif (pulling := self.pull_in_thread()) is not None:
            pulling.add_done_callback(lambda _: close())
        else:
            close()

    async def _permits(self, wanted: int) -> int:
        """How many packets the source may produce now: paused, paced and budgeted
        (reserved: settle with `runtime.budget.settle`). 0 means stop."""
        node, runtime = self.node, self.runtime
        self.paced_wait = False
        pacer = node.pacer
        if not node.running.is_set():
            with self._stoppable():
                await node.running.wait()
        if pacer is not None:
            while not (granted := pacer.grant(wanted)):
                # a wait a stop may cancel, as `_stoppable` marks one (inline: per packet)
                if runtime.stopping:
                    self.cancelled_by_stop = True
                    raise asyncio.CancelledError
                self._waiting = self.paced_wait = True
                try:
                    await pacer.sleep()
                finally:
                    self._waiting = False
                while not node.running.is_set():  # paused while it waited: not a packet yet
                    with self._stoppable():
                        await node.running.wait()
                    pacer.resumed()
            wanted = granted
        budget = runtime.budget
        while True:
            granted = budget.take(wanted)
            if granted:
                return granted
            if budget.spent:  # every source stops, and the drain has a time limit
                runtime.request_stop(StopReason.MAX_PACKETS)
                return 0
            with self._stoppable():  # another source holds the rest: it may not use it
                await budget.changed.wait()

    async def _pump_sync(self, packets: Iterator[StreamPacket | BadRecord | None]) -> None:
        node, runtime = self.node, self.runtime
        loop = asyncio.get_running_loop()
        metrics = node.metrics
        stop_at_bad = node.resolved.spec.on_error == "stop"
        next_batch = getattr(packets, "next_batch", None)  # many packets made at once
        pull_now: Callable[[int], _Pulled] = (
            partial(_pull, packets, stop_at_bad=stop_at_bad)
            if next_batch is None
            else partial(_pull_batch, next_batch)
        )
        self._pull_now = pull_now  # also the pace clock's steps'
        while not runtime.stopping:
            if self._clock_target() is not None:
                handed = await self._run_on_clock()
                if handed is None:  # re-plan: paused, stopping, throttled to unlimited, ...
                    continue
                pulled, admitted, _ = handed
            else:
                wanted = await self._permits(BATCH)
                if not wanted:
                    return
                if node.pool is None:
                    pulled = pull_now(wanted)
                else:
                    self.pulling = pulling = (
                        loop.run_in_executor(
                            node.pool, _pull, packets, wanted, stop_at_bad, self._stop
                        )
                        if next_batch is None
                        else loop.run_in_executor(node.pool, _pull_batch, next_batch, wanted)
                    )
                    try:
                        with self._stoppable():  # a device read may wait for ever
                            pulled = await asyncio.shield(pulling)
                    except asyncio.CancelledError:
                        runtime.budget.settle(wanted, 0)
                        pulling.add_done_callback(lambda done: _count_unsent_pull(node, done))
                        raise
                runtime.budget.settle(wanted, len(pulled.packets))  # bad records are not packets
                if pulled.packets:
                    metrics.passed_on(len(pulled.packets))
                admitted = 0
            if not await self._hand_on(pulled, admitted):
                return
            if not self.paced_wait:  # a wait for the pacer already let the graph run
                await asyncio.sleep(0)  # let the rest of the graph run between batches

    async def _hand_on(self, pulled: _Pulled, admitted: int) -> bool:
        """Pass on what a pull got (counted; its first `admitted` packets are in the next
        inbox already, put there by a step on the pace clock), then deal with its bad
        records and with how the source ended. False: the source is done."""
        node, runtime = self.node, self.runtime
        batch = pulled.packets
        if admitted < len(batch):
            node.metrics.last_progress = emitting = time.monotonic()
            rest = batch[admitted:] if admitted else batch
            await self._passed_on(batch[-1], await node.admit(rest))
            if node.pacer is not None:  # a wait for room downstream does not cost the rate
                node.pacer.held_back(time.monotonic() - emitting)
        if pulled.bad:
            if not await runtime.errors.bad_records(node, pulled.bad):
                return False
            if pulled.last is not None:  # dealt with: a checkpoint may pass them
                await self._passed_on(pulled.last, None)
        if pulled.failure is not None:
            await runtime.errors.source_failed(node, pulled.failure)
            return False
        return not pulled.ended

    def _clock_target(self) -> Target | None:
        """The one edge out when the pace clock may run the source's steps itself (each
        runs to its end without waiting): paced, pulled on the loop (no thread), running,
        no `--max-packets` budget, nothing waiting for a commit, and one in-memory inbox
        downstream. None: the task runs each step."""
        node, runtime = self.node, self.runtime
        pacer = node.pacer
        if (
            pacer is None
            or pacer.rate_hz is None
            or node.pool is not None
            or runtime.stopping
            or not node.running.is_set()
            or runtime.budget.remaining is not None
            or node.unsettled
        ):
            return None
        targets = node.targets
        if len(targets) != 1:
            return None
        port = next(iter(targets.values()))
        if len(port) != 1 or port[0].inbox.durable:
            return None
        return port[0]

    async def _run_on_clock(self) -> _Handed | None:
        """Park the task while the pace clock runs the source's steps (`_step`); returns
        what the first step that could not finish without waiting handed over (None: plan
        the next pull afresh)."""
        if self.runtime.stopping:  # as `_permits`: a wait a stop may cancel
            self.cancelled_by_stop = True
            raise asyncio.CancelledError
        self._parked = parked = asyncio.get_running_loop().create_future()
        self._waiting = self.paced_wait = True
        try:
            self._step()  # a permit may be there already
            return await parked
        except asyncio.CancelledError:  # a forced stop after a step handed over its pull
            if parked.done() and not parked.cancelled() and parked.exception() is None:
                handed = parked.result()
                if handed is not None and handed.admitted < len(handed.pulled.packets):
                    lost = len(handed.pulled.packets) - handed.admitted
                    handed.inbox.metrics.refused(DropReason.SHUTDOWN, lost)  # as `Inbox.put`
            raise
        finally:
            self._waiting = False
            self._parked = None
            step, self._next_step = self._next_step, None
            if step is not None:
                step.cancel()  # a stop: the clock passes over it

    def _step(self) -> None:
        """One paced pull, run by the pace clock when its permit is due (the task parked
        in `_run_on_clock`): pull, put the packets in the next inbox, file the next step.
        What cannot go on without waiting goes to the task: a full inbox, bad records, the
        source's end or failure, a pause, a stop."""
        parked, filed = self._parked, self._next_step
        if parked is None or parked.done():  # the task left the park (a stop)
            return
        if filed is not None and not filed.done():  # not the filed step: one chain only
            return
        self._next_step = None
        node = self.node
        pacer = node.pacer
        try:
            target = self._clock_target()
            if target is None:
                if not node.running.is_set() and pacer is not None:
                    pacer.resumed()  # paused: that time is not a late wake-up to make up
                self._waiting = False  # see below
                parked.set_result(None)
                return
            assert pacer is not None and self._pull_now is not None
            granted = pacer.grant(BATCH)
            if not granted:
                self._next_step = pacer.call_when_due(self._step)
                return
            pulled = self._pull_now(granted)  # no budget to settle (`_clock_target`)
            batch = pulled.packets
            admitted = 0
            if batch:
                metrics = node.metrics
                metrics.passed_on(len(batch))
                metrics.last_progress = time.monotonic()
                inbox = target.inbox
                try:
                    admitted = inbox.offer(batch, 0, target.force, newcomer=True)
                except Exception:  # as `Node.admit`
                    inbox.metrics.refused(DropReason.NODE_FAILED, len(batch))
                    raise
                if admitted == len(batch):
                    self.last_emitted = batch[-1]
            if admitted < len(batch) or pulled.bad or pulled.failure is not None or pulled.ended:
                # the task has a pull to hand on, no longer a wait a stop may cancel: a stop
                # in this pass would throw away what the step handed it, uncounted
                self._waiting = False
                parked.set_result(_Handed(pulled, admitted, target.inbox))
                return
            self._next_step = pacer.call_when_due(self._step)
        except Exception as exc:  # the task raises it, as if the step had run there
            self._waiting = False
            parked.set_exception(exc)

    async def _pump_async(self, packets: AsyncIterator[StreamPacket | BadRecord | None]) -> None:
        """Pull an async source: wait for its next item, then take the items that are ready
        at once (up to a batch, when unpaced) and hand them on together."""
        node, runtime = self.node, self.runtime
        metrics = node.metrics
        budget = runtime.budget
        waiting: _Suspended | None = None
        """A pull of the next item that started while taking ready items and had to wait."""
        try:
            while not runtime.stopping:
                if not await self._permits_while_pulling(waiting):
                    return
                pull: Any = None
                try:
                    with self._stoppable():  # a stop before the await leaves `waiting` set
                        pull = packets.__anext__() if waiting is None else waiting
                        waiting = None
                        first = await pull
                except StopAsyncIteration:
                    budget.settle(1, 0)
                    return
                except asyncio.CancelledError:
                    budget.settle(1, 0)
                    _count_handed_over(node, pull)
                    raise
                except PLUGIN_ERRORS as exc:  # sys.exit() too: it ends the source, not the run
                    budget.settle(1, 0)
                    await runtime.errors.source_failed(node, as_failure(exc))
                    return
                items, granted, waiting, end = self._take_ready(packets, first)
                if not isinstance(items[-1], StreamPacket | BadRecord | None):
                    end = _not_a_packet(items.pop())  # the plugin's bug: not handed on
                last = items[-1] if items else None
                batch = items[:-1] if last is None or isinstance(last, BadRecord) else items
                budget.settle(granted, len(batch))  # bad records are not packets
                if batch:
                    metrics.passed_on(len(batch))
                    metrics.last_progress = time.monotonic()
                    if waiting is None:
                        commits = await node.admit(batch)
                    else:
                        commits = await self._emit_while_pulling(batch, waiting)
                    await self._passed_on(batch[-1], commits, waiting)
                if isinstance(last, BadRecord):
                    if not await runtime.errors.bad_records(node, [last]):
                        return
                    await self._passed_on(last, None)
                if isinstance(end, StopAsyncIteration):
                    return
                if end is not None:
                    await runtime.errors.source_failed(node, end)
                    return
        finally:
            if waiting is not None:
                self._abandon(waiting)

    def _abandon(self, waiting: _Suspended) -> None:
        """The pump ends without awaiting the pull it started: cancel it where it waits, and
        count the packet it held already, if any."""
        node = self.node
        if (failed := waiting.abandon()) is not None:
            self.runtime.events.add("error", f"stopping the source failed: {failed}", node.id)
        _count_handed_over(node, waiting)

    async def _permits_while_pulling(self, waiting: _Suspended | None) -> int:
        """`_permits(1)`, while a pull the source started may wait in this task: as in
        `_emit_while_pulling`, a cancellation that is not a stop goes to the pull."""
        while True:
            try:
                return await self._permits(1)
            except asyncio.CancelledError:
                if waiting is None or self.runtime.stopping or self.cancelled_by_stop:
                    raise
                waiting.cancelled = True

    async def _emit_while_pulling(
        self, batch: list[StreamPacket], waiting: _Suspended
    ) -> Commits | None:
        """`node.admit` while a pull the source started waits in this task. A cancellation of
        the task that is not a stop is the source's own (its `asyncio.timeout` cancels the
        task it runs in): the admission goes on, and the pull gets the cancellation when
        awaited. Returns the commits to wait for."""
        emit = self.node.admit(batch).__await__()
        try:  # the common case: room downstream, done at once, no task
            waits_for = emit.send(None)
        except StopIteration as admitted:
            commits: Commits | None = admitted.value
            return commits
        emitting = asyncio.ensure_future(_finish(_Suspended(emit, waits_for, None)))
        while True:
            try:
                commits = await asyncio.shield(emitting)
                return commits
            except asyncio.CancelledError:
                if self.runtime.stopping or emitting.done():
                    emitting.cancel()
                    raise
                waiting.cancelled = True

    def _take_ready(
        self, packets: AsyncIterator[StreamPacket | BadRecord | None], first: Any
    ) -> tuple[list[Any], int, _Suspended | None, StopAsyncIteration | Exception | None]:
        """`first` and the items after it that the source gives without waiting, while the
        node is unpaced and running and the budget grants them, up to a batch; the first
        item that is not a packet ends them. Returns the items, the budget granted for them,
        the pull that had to wait (to await next), and how the source ended, if it did."""
        items = [first]
        if first.__class__ is not StreamPacket:
            return items, 1, None, None
        pacer, budget = self.node.pacer, self.runtime.budget
        if (pacer is not None and pacer.rate_hz is not None) or not self.node.running.is_set():
            return items, 1, None, None
        extra = budget.take(BATCH - 1)
        append = items.append
        for _ in range(extra):
            try:
                given = packets.__anext__()
                # its iterator (`__anext__` may give any awaitable: a Future has no `send`)
                pull = given.__await__()
                waits_for = pull.send(None)
            except StopIteration as ready:
                item = ready.value
                append(item)
                if item.__class__ is not StreamPacket:  # None or a bad record ends the run
                    break
                continue
            except PLUGIN_ERRORS as end:  # StopAsyncIteration: the source ended
                return items, 1 + extra, None, as_failure(end)
            return items, 1 + extra, _Suspended(pull, waits_for, given), None
        return items, 1 + extra, None, None


class _Suspended:
    """An async source's `__anext__()` that started and had to wait: awaiting this waits for
    what it waits for and gives the item. The event loop sees the same waits (and a stop's
    cancellation) it would have seen had the pull been awaited from the start."""

    __slots__ = ("cancelled", "given", "pull", "waits_for")

    def __init__(self, pull: Any, waits_for: Any, given: Any) -> None:
        self.pull = pull
        self.waits_for = waits_for
        self.given = given
        """What `__anext__()` gave (`pull` is its iterator)."""
        self.cancelled = False
        """The task was cancelled for the pull while it did something else (see
        `SourceWorker._emit_while_pulling`): the pull gets the cancellation first."""

    def __await__(self) -> Generator[Any, Any, Any]:
        pull, waits_for = self.pull, self.waits_for
        if self.cancelled:
            self.cancelled = False
            try:
                waits_for = pull.throw(asyncio.CancelledError())
            except StopIteration as ready:
                return ready.value
        while True:
            try:
                sent = yield waits_for
            except GeneratorExit:
                pull.close()
                raise
            except BaseException as exc:  # a cancellation: the source sees it where it waits
                try:
                    waits_for = pull.throw(exc)
                except StopIteration as ready:
                    return ready.value
            else:
                try:
                    waits_for = pull.send(sent)
                except StopIteration as ready:
                    return ready.value

    def abandon(self) -> Exception | None:
        """The pump ends without awaiting the pull: cancel it where it waits, as a stop
        cancels a wait, so that the source's generator is not left running (closing it would
        fail). Returns what the source raised instead of ending, if anything."""
        if asyncio.isfuture(self.given):  # as a task's cancel does: the source can tell
            self.given.cancel()
        try:
            self.pull.throw(asyncio.CancelledError())
        except (asyncio.CancelledError, StopIteration, StopAsyncIteration):
            return None
        except PLUGIN_ERRORS as exc:
            return as_failure(exc)
        self.pull.close()  # it caught the cancellation and waits again: end it there
        return None


async def _finish(step: _Suspended) -> Any:
    """Await `step` (as a task's coroutine)."""
    return await step


class _Handed(NamedTuple):
    """What a step on the pace clock hands its task: a pull it could not finish."""

    pulled: _Pulled
    admitted: int
    """Its first packets already in the next inbox."""
    inbox: Inbox
    """That inbox."""


class _Pulled(NamedTuple):
    """What one pull from a source's iterator got."""

    packets: list[StreamPacket]
    bad: list[BadRecord]
    """Records the plugin could not turn into packets, for the node's `on_error`."""
    last: StreamPacket | BadRecord | None
    """The last thing the iterator gave, packet or bad record."""
    ended: bool
    """The iterator is done (it returned, or raised `failure`)."""
    failure: Exception | None
    """The exception that ended the iterator early, if any."""


def _pull(
    packets: Iterator[StreamPacket | BadRecord | None],
    wanted: int,
    stop_at_bad: bool = False,
    stop: threading.Event | None = None,
) -> _Pulled:
    """Up to `wanted` packets and bad records: fewer once `stop` is set, when the source
    yields None (it is about to wait for input), or at the first bad record with
    `stop_at_bad`. Also the exception that ended the iterator early, if any."""
    batch: list[StreamPacket] = []
    append = batch.append
    # `islice` counts and stops in C; it never asks the source for more than `wanted`
    items = islice(packets, wanted)
    try:
        # the common case, packets only, kept to one class check per packet: anything
        # else (None, a bad record, a stop) goes on in `_pull_rest`
        if stop is None:
            for item in items:
                if item.__class__ is not StreamPacket:
                    return _pull_rest(items, batch, item, wanted, stop_at_bad, stop)
                append(item)
        else:
            for item in items:
                if item.__class__ is not StreamPacket or stop.is_set():
                    return _pull_rest(items, batch, item, wanted, stop_at_bad, stop)
                append(item)
    except PLUGIN_ERRORS as exc:  # sys.exit() too: it ends the source, not the run
        return _Pulled(batch, [], batch[-1] if batch else None, True, as_failure(exc))
    last = batch[-1] if batch else None
    return _Pulled(batch, [], last, len(batch) < wanted, None)


def _pull_batch(next_batch: Callable[[int], list[StreamPacket]], wanted: int) -> _Pulled:
    """Up to `wanted` packets from a source's `next_batch` (docs/plugins.md): one call
    instead of one `next` per packet. An empty list ends the source."""
    try:
        batch = next_batch(wanted)
    except PLUGIN_ERRORS as exc:
        return _Pulled([], [], None, True, as_failure(exc))
    # a C loop over the classes: what the runtime hands on must be packets, as `_pull` checks
    if (
        batch.__class__ is not list
        or len(batch) > wanted
        or not _PACKETS.issuperset(map(type, batch))
    ):
        got = f"a {type(batch).__name__}" if batch.__class__ is not list else _described(batch)
        error = TypeError(
            f"next_batch({wanted}) returned {got}; return a list of at most {wanted} StreamPackets"
            " (an empty list ends the source)"
        )
        return _Pulled([], [], None, True, error)
    return _Pulled(batch, [], batch[-1] if batch else None, not batch, None)


_PACKETS = frozenset({StreamPacket})


def _described(batch: list[Any]) -> str:
    """What a list `next_batch` returned holds, for the error message."""
    kinds = sorted({type(item).__name__ for item in batch})
    return f"a list of {len(batch)} items ({', '.join(kinds)})"


def _pull_rest(
    items: Iterator[StreamPacket | BadRecord | None],
    batch: list[StreamPacket],
    item: StreamPacket | BadRecord | None,
    wanted: int,
    stop_at_bad: bool,
    stop: threading.Event | None,
) -> _Pulled:
    """`_pull` from `item` on, once it met something other than a packet (or a stop):
    `batch` holds the packets pulled before it, `items` the rest of the pull."""
    bad: list[BadRecord] = []
    last: StreamPacket | BadRecord | None = batch[-1] if batch else None
    taken = len(batch)
    try:
        while True:
            if item is None:
                return _Pulled(batch, bad, last, False, None)
            if not isinstance(item, StreamPacket | BadRecord):  # the plugin's bug: not handed on
                return _Pulled(batch, bad, last, True, _not_a_packet(item))
            last = item
            taken += 1
            if isinstance(item, BadRecord):
                bad.append(item)
                if stop_at_bad:
                    break
            else:
                batch.append(item)
            if stop is not None and stop.is_set():
                break
            try:
                item = next(items)
            except StopIteration:
                return _Pulled(batch, bad, last, taken < wanted, None)
    except PLUGIN_ERRORS as exc:
        return _Pulled(batch, bad, last, True, as_failure(exc))
    return _Pulled(batch, bad, last, False, None)


def _not_a_packet(item: object) -> TypeError:
    """The error that ends a source whose `packets()` gave `item`, which it may not."""
    return TypeError(
        f"packets() gave a {type(item).__name__}; a source gives StreamPackets, a BadRecord "
        "for input it cannot read, or None when it is about to wait for input"
    )


def _nothing() -> None:
    """A source's batch whose commit failed: `last_emitted` stays where it was."""


def _count_handed_over(node: Node, pull: Any) -> None:
    """A pull of an async source that a stop cancelled, or left unawaited: a Future its
    `__anext__()` gave may hold a packet already, which no cancellation takes back (it
    cancels a coroutine where it waits, before its item is made). That packet is lost, and
    counted (`shutdown`) at the source, as a thread's pull the stop did not wait for."""
    given = pull.given if isinstance(pull, _Suspended) else pull
    if (
        asyncio.isfuture(given)
        and given.done()
        and not given.cancelled()
        and given.exception() is None
        and given.result().__class__ is StreamPacket
    ):
        node.metrics.drop(DropReason.SHUTDOWN, 1)


def _count_unsent_pull(node: Node, pulling: asyncio.Future[Any]) -> None:
    """A pull the stop did not wait for came back: what it read is lost, and counted."""
    if not pulling.cancelled() and pulling.exception() is None:
        pulled: _Pulled = pulling.result()
        if pulled.packets:
            node.metrics.drop(DropReason.SHUTDOWN, len(pulled.packets))
