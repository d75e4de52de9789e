"""Where the console's data comes from: the control API, and nothing else (DESIGN 2).

`ConsoleSource` is what every screen reads through. `EmbeddedSource` wraps the in-process
`RuntimeControl`; the attached mode serves the same calls over the control socket, so every
screen works unchanged in both.
"""

from __future__ import annotations

from typing import Any, Protocol

from schnitzel.runtime.control import RuntimeControl

__all__ = ["ConsoleSource", "EmbeddedSource"]


class ConsoleSource(Protocol):
    """The control API as the console uses it. Every call may raise `ControlError` (shown to
    the operator) or, for a remote runtime, `OSError` (shown as a lost connection)."""

    async def describe(self) -> dict[str, Any]:
        """The graph: nodes with kind, plugin, config and inbox; edges."""
        ...

    async def snapshot(self) -> dict[str, Any]:
        """The run report, live (DESIGN 3.5)."""
        ...

    async def events(self, after: int) -> list[dict[str, Any]]:
        """Events with a `seq` above `after`, oldest first."""
        ...

    async def command(self, name: str, **arguments: Any) -> dict[str, Any]:
        """Run a control command (`stop`, `pause`, `resume`, `throttle`); its answer."""
        ...


class EmbeddedSource:
    """The control API of a runtime in this process (same event loop)."""

    COMMANDS = frozenset({"stop", "pause", "resume", "throttle"})

    def __init__(self, control: RuntimeControl) -> None:
        self._control = control

    async def describe(self) -> dict[str, Any]:
        return self._control.describe()

    async def snapshot(self) -> dict[str, Any]:
        return self._control.snapshot()

    async def events(self, after: int) -> list[dict[str, Any]]:
        return self._control.events(limit=500, after=after)

    async def command(self, name: str, **arguments: Any) -> dict[str, Any]:
        if name not in self.COMMANDS:
            raise ValueError(f"unknown control command {name!r}")
        result: dict[str, Any] = getattr(self._control, name)(**arguments)
        return result
