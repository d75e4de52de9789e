"""The console's source for a runtime in another process: its control socket.

`AttachedSource` serves the same four calls as `EmbeddedSource`, so every screen works
unchanged. A lost connection raises `ConnectionError` (an OSError: the console shows it) and
is retried with a growing pause; a runtime that came back as a new run (its `run_id` changed)
is noticed, so the console reloads the graph and starts its history afresh.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from schnitzel.contract.run_report import EventEntry, RunReport, parse_events, parse_run_report
from schnitzel.control.async_client import AsyncControlClient
from schnitzel.control.client import ControlConnectionError
from schnitzel.errors import SchnitzelError

__all__ = ["AttachedSource", "Disconnected"]

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0
REPLY_TIMEOUT_S = 75.0
"""Above the runtime's 60 s for a swap, so a slow swap is answered rather than cut off."""
ARGUMENT_NAMES = {"node_id": "node", "suggestion_id": "id"}
"""The control API's argument names as the socket spells them."""


class Disconnected(SchnitzelError, ConnectionError):
    """The runtime cannot be reached now; the next try is due at `retry_at` (monotonic).
    `short` says why in a few words, for the status line."""

    def __init__(self, message: str, short: str, retry_at: float) -> None:
        super().__init__(message)
        self.short = short
        self.retry_at = retry_at


class AttachedSource:
    """The control API of a headless runtime, over its control socket."""

    attached = True
    """Quitting an attached console leaves the runtime running."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.client = AsyncControlClient(self.path, via="attach", timeout_s=REPLY_TIMEOUT_S)
        self.run_id: str | None = None
        """The run the console's picture of the graph belongs to."""
        self.restarted = False
        """Set when a snapshot came from another run than `run_id`: describe again."""
        self.lost_since: float | None = None
        """When the connection was lost (wall clock), while it is."""
        self.last_error = ""
        self._why = ""
        self._retry_at = 0.0
        self._backoff = RETRY_FIRST_S

    @property
    def connected(self) -> bool:
        return self.lost_since is None

    async def describe(self) -> dict[str, Any]:
        description: dict[str, Any] = await self._call("describe")
        self.run_id = description.get("run_id")
        self.restarted = False
        return description

    async def snapshot(self) -> RunReport:
        report = parse_run_report(await self._call("status"), f"the control socket {self.path}")
        if self.run_id is not None and report["run_id"] != self.run_id:
            self.restarted = True
        return report

    async def events(self, after: int) -> list[EventEntry]:
        found = await self._call("events", after=after, limit=500)
        return parse_events(found, f"the control socket {self.path}")

    async def command(self, name: str, **arguments: Any) -> Any:
        arguments.pop("actor", None)  # the runtime knows who we are from the socket
        why = arguments.pop("why", "")
        renamed = {ARGUMENT_NAMES.get(k, k): v for k, v in arguments.items()}
        return await self._call(name, why=why, **renamed)

    async def close(self) -> None:
        await self.client.close()

    async def _call(self, cmd: str, why: str = "", **args: Any) -> Any:
        now = time.monotonic()
        if self.lost_since is not None and now < self._retry_at:
            raise Disconnected(self.last_error, self._why, self._retry_at)
        try:
            result = await self.client.request(cmd, why=why, **args)
        except ControlConnectionError as exc:
            if self.lost_since is None:
                self.lost_since = time.time()
                self._backoff = RETRY_FIRST_S
            else:
                self._backoff = min(self._backoff * 2, RETRY_MAX_S)
            self._retry_at = time.monotonic() + self._backoff
            self.last_error, self._why = str(exc), exc.why
            raise Disconnected(self.last_error, self._why, self._retry_at) from None
        self.lost_since = None
        self._backoff = RETRY_FIRST_S
        return result
