"""The audit log: one JSON object per line for every change an operator, the controller or a
reload made (or tried to make), appended to `<state dir>/audit.jsonl` and flushed to disk.

The log is the record of who did what: it is only appended to, and a line is on disk before
the change is reported as done. A log that cannot be written (a full disk) does not stop the
change: steering a graph out of trouble matters more; the failure is reported instead.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schnitzel.control.actor import Actor
from schnitzel.runtime.knobs import plain_value

__all__ = ["AUDIT_FILE", "AuditLog", "audit_change", "utc_timestamp"]

AUDIT_FILE = "audit.jsonl"
READ_TAIL_BYTES = 4 << 20
"""How much of the end of the file `recent()` reads: enough for thousands of entries."""


class AuditLog:
    """Append-only JSONL of changes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(
        self,
        actor: Actor,
        action: str,
        node: str | None,
        before: Any,
        after: Any,
        why: str = "",
        suggestion: str | None = None,
        error: str | None = None,
    ) -> dict[str, Any]:
        """Append one entry and flush it to disk; the entry. Raises OSError when the log
        cannot be written."""
        entry = {
            "ts": utc_timestamp(time.time()),
            "who": actor.to_json(),
            "action": action,
            "node": node,
            "before": before,
            "after": after,
            "why": why,
            "suggestion": suggestion,
            "outcome": "refused" if error else "applied",
            "error": error,
        }
        line = (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"only {written} of {len(line)} bytes of the entry were written")
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """The last `limit` entries, oldest first. Lines that do not parse (a torn last line
        after a crash) are skipped."""
        try:
            with self.path.open("rb") as file:
                size = file.seek(0, os.SEEK_END)
                file.seek(max(size - READ_TAIL_BYTES, 0))
                data = file.read()
        except FileNotFoundError:
            return []
        if len(data) == READ_TAIL_BYTES:
            data = data.partition(b"\n")[2]  # the first line may be cut
        entries: deque[dict[str, Any]] = deque(maxlen=max(limit, 0))
        for raw in data.splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return list(entries)


def utc_timestamp(ts: float) -> str:
    """`2026-11-24T08:00:00.123Z` for a time.time() value."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


NAMED_VALUES = {"pause": "paused", "resume": "paused"}
"""Actions whose audit entry records one value, and what that value is (`paused`)."""


def audit_change(before: Any, after: Any, action: str = "", width: int | None = None) -> str:
    """What an audit entry changed, in the vocabulary of events, `ctl` and the console
    (`plain_value`): `paused false -> true`, `rate_hz 50 -> 40, concurrency 1 -> 2` (only the
    keys that differ, or all when none do), `k -> v` for a key that had no value before (a
    refused change), `none -> {force: false}` for anything but two mappings (named after
    `action` where NAMED_VALUES knows the value: `paused false -> true`), empty when both
    are None. An approval's `after` is the suggested action: its arguments are the new
    values. `width`: cut each value to this many characters."""
    if isinstance(after, Mapping) and "command" in after and "args" in after:
        after = after["args"]

    def shown(value: Any) -> str:
        text = plain_value(value)
        return text if width is None or len(text) <= width else text[: width - 1] + "…"

    if (
        isinstance(before, Mapping | None)
        and isinstance(after, Mapping | None)
        and (before or after)
    ):
        old: Mapping[str, Any] = before or {}
        new: Mapping[str, Any] = after or {}
        keys = [k for k in {**old, **new} if old.get(k) != new.get(k)] or list({**old, **new})
        return ", ".join(
            f"{k} {shown(old[k])} -> {shown(new.get(k))}" if k in old else f"{k} -> {shown(new[k])}"
            for k in keys
        )
    if before is None and after is None:
        return ""
    name = NAMED_VALUES.get(action)
    return f"{name + ' ' if name else ''}{shown(before)} -> {shown(after)}"
