"""What a node's worker may ask of the runtime: a narrow protocol, as the controller sees
`ControlApi`, so the workers (runtime/runners.py) do not depend on `Runtime` itself."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from schnitzel.contract.packet import StreamPacket
from schnitzel.errors import BadRecord
from schnitzel.runtime.budget import Budget
from schnitzel.runtime.events import EventLog

if TYPE_CHECKING:
    from schnitzel.runtime.error_policy import ErrorPolicy
    from schnitzel.runtime.node import Node

__all__ = ["NodeWorker", "OutputTrail", "WorkerRuntime"]


class OutputTrail(Protocol):
    """Where a durable node's output went in memory-only inboxes (the checkpoint tracker)."""

    def trail(self, node: Node) -> dict[str, int] | None: ...


class NodeWorker(Protocol):
    """A node's worker (runtime/runners.py) as the runtime, draining and the control plane
    see it: the state of the batch it is on stays its own."""

    @property
    def waiting_downstream(self) -> bool:
        """True while it waits for room downstream (backpressure, not a stall)."""
        ...

    @property
    def last_emitted(self) -> StreamPacket | BadRecord | None:
        """A source's newest packet the graph accepted, or bad record its `on_error` dealt
        with (checkpoint tracking); None for other nodes."""
        ...

    @property
    def cancelled_by_stop(self) -> bool:
        """A stop cancelled the worker's task in a wait that was safe to cancel."""
        ...

    def stop_pulling(self) -> None:
        """On stop: a source's pull running in a thread returns at its next packet."""
        ...

    def stop_waiting(self) -> None:
        """On stop: cancel the worker's task if it is in a wait that is safe to cancel (a
        source's pacing, a pause, an async pull)."""
        ...

    def pull_in_thread(self) -> asyncio.Future[Any] | None:
        """A source's pull still running in its thread, if any."""
        ...

    def interrupt(self) -> bool:
        """Cancel the plugin call on the current batch, which goes back to the front of its
        durable inbox; False when there is none or it cannot be cancelled."""
        ...

    async def emit(self, packets: list[Any], routed: bool = False) -> None:
        """Pass packets on to the node's targets, as a wait for room downstream."""
        ...

    async def run(self) -> None:
        """The node's task: until its source ends or its inbox closes."""
        ...


class WorkerRuntime(Protocol):
    """The runtime as a node's worker sees it."""

    stopping: bool
    """Set once the run stops its sources (a drain follows)."""
    budget: Budget
    """The run's `max_packets` budget, shared by every source."""
    events: EventLog

    @property
    def checkpoints(self) -> OutputTrail:
        """Where a durable node's output went (so its inbox deletes only what is safe)."""
        ...

    @property
    def errors(self) -> ErrorPolicy:
        """Each node's `on_error`, applied to failed packets and bad source records."""
        ...

    def request_stop(self, reason: str, detail: str = "") -> None: ...

    def keep_durable_batch(self, node: Node) -> None:
        """A durable node's output was refused downstream: it stops, keeping its batch."""
        ...
