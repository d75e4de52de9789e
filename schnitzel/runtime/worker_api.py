"""What a node's worker may ask of the runtime: a narrow protocol, as the controller sees
`ControlApi`, so the workers (runtime/runners.py) do not depend on `Runtime` itself."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Protocol

from schnitzel.errors import BadRecord
from schnitzel.runtime.budget import Budget
from schnitzel.runtime.events import EventLog
from schnitzel.runtime.processing import Failure

if TYPE_CHECKING:
    from schnitzel.runtime.node import Node

__all__ = ["OutputTrail", "WorkerRuntime"]


class OutputTrail(Protocol):
    """Where a durable node's output went in memory-only inboxes (the checkpoint tracker)."""

    def trail(self, node: Node) -> dict[str, int] | None: ...


class WorkerRuntime(Protocol):
    """The runtime as a node's worker sees it."""

    stopping: bool
    """Set once the run stops its sources (a drain follows)."""
    budget: Budget
    """The run's `max_packets` budget, shared by every source."""
    events: EventLog
    checkpoints: OutputTrail

    def stoppable(self, node: Node) -> contextlib.AbstractContextManager[None]:
        """Mark a source's wait as safe to cancel on stop."""
        ...

    def request_stop(self, reason: str, detail: str = "") -> None: ...

    async def handle_failures(self, node: Node, failures: list[Failure]) -> None:
        """Count failed packets and apply the node's `on_error`."""
        ...

    async def bad_records(self, node: Node, records: list[BadRecord]) -> bool:
        """Apply a source's `on_error` to bad records; False: the source must end."""
        ...

    async def source_failed(self, node: Node, exc: Exception) -> None: ...

    def keep_durable_batch(self, node: Node) -> None:
        """A durable node's output was refused downstream: it stops, keeping its batch."""
        ...
