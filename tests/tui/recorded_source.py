"""A `ConsoleSource` that plays back what a real run answered, for tests that must render the
same screen on every machine (snapshot tests). Record with `python -m tests.tui.record`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schnitzel.contract.run_report import EventEntry, RunReport, parse_events, parse_run_report

if TYPE_CHECKING:
    from schnitzel_tui.app import ConsoleApp

__all__ = ["RECORDED", "RecordedSource", "read_recorded_polls"]

RECORDED = Path(__file__).parent / "recorded"


class RecordedSource:
    """Answers `describe`, then each recorded snapshot in turn (the last one repeats), the
    recorded events, and the suggestions and controller state as recorded at the end.
    Other commands are kept in `commands` and answered as the runtime would."""

    def __init__(self, name: str) -> None:
        self.name = name
        data = json.loads((RECORDED / f"{name}.json").read_text())
        self.description: dict[str, Any] = data["describe"]
        self.snapshots: list[dict[str, Any]] = data["snapshots"]
        self.recorded_events: list[dict[str, Any]] = data["events"]
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self.answers: dict[str, Any] = data.get("answers", {})
        self._next = 0

    async def describe(self) -> dict[str, Any]:
        return self.description

    async def snapshot(self) -> RunReport:
        snapshot = self.snapshots[min(self._next, len(self.snapshots) - 1)]
        self._next += 1
        return parse_run_report(snapshot, f"the recording {self.name}")

    async def events(self, after: int) -> list[EventEntry]:
        found = [e for e in self.recorded_events if e["seq"] > after]
        return parse_events(found, f"the recording {self.name}")

    async def command(self, name: str, **arguments: Any) -> Any:
        self.commands.append((name, arguments))
        if name in READING:  # as the runtime answered at the end of the recording
            return self.answers.get(name, READING[name])
        return {"node": arguments.get("node_id"), "command": name}


READING: dict[str, Any] = {"suggestions": [], "controller": {"mode": "off", "why_none": []}}
"""Read-only commands a recording answers, with what a recording without them answers."""


async def read_recorded_polls(app: ConsoleApp, polls: int) -> None:
    """Poll until `polls` recorded snapshots have been read. A poll that reads nothing (a
    recording the run report contract no longer accepts: record it again, or add the new
    key) fails the test, saying why, instead of polling for ever."""
    while app.polls < polls:
        before = app.polls
        await app.poll()
        assert app.polls > before, f"the console could not read the recording: {app.lost}"
