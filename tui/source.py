"""Where the console's data comes from: the control API, and nothing else (DESIGN 2).

`ConsoleSource` is what every screen reads through. `EmbeddedSource` wraps the in-process
`RuntimeControl`; the attached mode serves the same calls over the control socket, so every
screen works unchanged in both.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol

from schnitzel.contract.run_report import EventEntry, RunReport
from schnitzel.control.actor import Actor
from schnitzel.control.runtime_control import RuntimeControl

__all__ = ["MUTATING", "READING", "ConsoleSource", "EmbeddedSource"]

MUTATING = frozenset(
    {"stop", "pause", "resume", "throttle", "swap", "rollback", "approve", "reject"}
)
"""Commands that change the run: each is audited with who asked (`actor`) and `why`."""

READING = frozenset({"suggestions", "controller", "audit", "plugins"})
"""Commands that only read."""


class ConsoleSource(Protocol):
    """The control API as the console uses it. Every call may raise `ControlError` (shown to
    the operator: a refusal says why) or, for a remote runtime, `OSError` (shown as a lost
    connection)."""

    async def describe(self) -> dict[str, Any]:
        """The graph: nodes with kind, plugin, config (secrets masked), inbox, limits and
        generation; edges."""
        ...

    async def snapshot(self) -> RunReport:
        """The run report, live (DESIGN 3.5), with each node's throttle, limits, generation
        and can_rollback, and the controller's mode. A remote runtime's answer is checked:
        `ReportShapeError` when it lacks a key this console reads."""
        ...

    async def events(self, after: int) -> list[EventEntry]:
        """Events with a `seq` above `after`, oldest first."""
        ...

    async def command(self, name: str, **arguments: Any) -> Any:
        """Run a control command and return its answer. The commands and their arguments
        (those of `RuntimeControl`; `why` is optional on every change):

        - `stop(force=False)`, `pause(node_id)`, `resume(node_id)`;
        - `throttle(node_id, rate_hz=, sample_every=, concurrency=)`: any of the knobs;
        - `swap(node_id, plugin, config, dry_run=False)`: `config` a mapping or None;
        - `rollback(node_id)`;
        - `suggestions()` (a list), `approve(suggestion_id)`, `reject(suggestion_id)`;
        - `controller()`: its mode, open suggestions and `why_none` (why nothing is
          suggested now, in sentences);
        - `audit(limit=100)` (a list, oldest first), `plugins(kind=None)` (a list).
        """
        ...


class EmbeddedSource:
    """The control API of a runtime in this process (same event loop). Changes are audited
    as made by whoever runs this process, through the console."""

    COMMANDS = MUTATING | READING

    def __init__(self, control: RuntimeControl) -> None:
        self._control = control
        self._actor = Actor.local("console")

    async def describe(self) -> dict[str, Any]:
        return self._control.describe()

    async def snapshot(self) -> RunReport:
        return self._control.snapshot()

    async def events(self, after: int) -> list[EventEntry]:
        return self._control.events(limit=500, after=after)

    async def command(self, name: str, **arguments: Any) -> Any:
        if name not in self.COMMANDS:
            raise ValueError(f"unknown control command {name!r}")
        if name in MUTATING:
            arguments["actor"] = self._actor
        result = getattr(self._control, name)(**arguments)
        if inspect.isawaitable(result):  # swap, rollback and approve wait for the node
            result = await result
        return result
