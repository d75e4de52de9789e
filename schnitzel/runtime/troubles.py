"""What plugins report with `report_trouble`, told to operators: events, the node's recent
errors and its health reason.

Runs in the metrics tick, once per node per tick, on the event loop: the plugin's side
(registry/trouble.py) only writes fields, so a plugin reporting thousands of retries a
second makes at most one event per trouble, one per new reason every `CHANGE_EVERY_S`, and
one when it is over.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from schnitzel.contract.run_report import TroubleReport
from schnitzel.registry.trouble import Episode, Trouble
from schnitzel.runtime.events import EventLog
from schnitzel.runtime.metrics import ErrorRecord, NodeMetrics

__all__ = ["CHANGE_EVERY_S", "QUIET_S", "TroubleWatch", "clock"]

CHANGE_EVERY_S = 10.0
"""A new reason within one trouble is announced at most this often (a flapping backend
alternating between two errors makes one event per this many seconds, not one per retry)."""
QUIET_S = 10.0
"""Trouble not reported for this long while the node makes progress is over, even if the
plugin never said so."""
RECENT_ERROR = "retrying"
"""The `error` of the recent-error records trouble makes (packet id: none)."""


class TroubleWatch:
    """The runtime's side of one node's `Trouble`: what it has told the operator so far."""

    __slots__ = (
        "_announced_at",
        "_announced_reason",
        "_announced_since",
        "_clock",
        "_seen",
        "trouble",
    )

    def __init__(self, trouble: Trouble, clock: Callable[[], float] = time.time) -> None:
        self.trouble = trouble
        self._clock = clock
        self._announced_since: float | None = None
        self._announced_reason = ""
        self._announced_at = 0.0
        self._seen: Episode | None = None
        """The last ended episode this watch has dealt with."""

    def tick(self, node_id: str, events: EventLog, metrics: NodeMetrics, progressed: bool) -> None:
        """Announce what changed since the last tick. `progressed`: the node processed or
        delivered packets over the health window."""
        trouble, now = self.trouble, self._clock()
        quiet = trouble.active and progressed and now - trouble.last >= QUIET_S
        if quiet:
            trouble.recovered()
        if self._announced_since is not None and trouble.since != self._announced_since:
            self._announce_end(node_id, events, quiet)
        elif trouble.last_episode is not self._seen and now - self._announced_at >= CHANGE_EVERY_S:
            self._announce_blip(node_id, events, metrics, now)  # began and ended between ticks
        self._seen = trouble.last_episode
        if not trouble.active:
            return
        since, reason = trouble.since, trouble.reason
        if self._announced_since is None:
            self._announced_since = since
            self._announce(node_id, events, metrics, f"{reason} (retrying)", now)
        elif reason != self._announced_reason and now - self._announced_at >= CHANGE_EVERY_S:
            text = f"{reason} ({trouble.retries} retries since {clock(trouble.since)})"
            self._announce(node_id, events, metrics, text, now)

    def health_reason(self) -> str:
        """`<reason> since HH:MM:SS, N retries` while in trouble, else empty."""
        trouble = self.trouble
        if not trouble.active:
            return ""
        return f"{trouble.reason} since {clock(trouble.reason_since)}, {trouble.retries} retries"

    def report(self) -> TroubleReport | None:
        """The report's `trouble` entry: None, or the reason, when it and the trouble began,
        when it was last reported, and the retries so far."""
        trouble = self.trouble
        since = trouble.since
        if since is None:
            return None
        return {
            "reason": trouble.reason,
            "since": since,
            "reason_since": trouble.reason_since,
            "last": trouble.last,
            "retries": trouble.retries,
        }

    def _announce(
        self, node_id: str, events: EventLog, metrics: NodeMetrics, text: str, now: float
    ) -> None:
        self._announced_reason, self._announced_at = self.trouble.reason, now
        events.add("warning", text, node_id)
        metrics.recent_errors.append(ErrorRecord(now, None, RECENT_ERROR, text))

    def _announce_blip(
        self, node_id: str, events: EventLog, metrics: NodeMetrics, now: float
    ) -> None:
        episode = self.trouble.last_episode
        assert episode is not None
        took = max(episode.ended - episode.since, 0.0)
        text = f"{episode.reason}: {episode.retries} retries in {took:.1f} s, then recovered"
        self._announced_at = now
        events.add("info", text, node_id)
        metrics.recent_errors.append(ErrorRecord(episode.since, None, RECENT_ERROR, text))

    def _announce_end(self, node_id: str, events: EventLog, quiet: bool) -> None:
        episode = self.trouble.last_episode
        self._announced_since = None
        if episode is None:
            return
        took = max(episode.ended - episode.since, 0.0)
        how = f"not reported for {QUIET_S:.0f} s while packets move" if quiet else "recovered"
        events.add(
            "info",
            f"{how} after {episode.retries} retries in {took:.0f} s (last: {episode.reason})",
            node_id,
        )


def clock(ts: float | None) -> str:
    """`HH:MM:SS` in the box's local time (as `ctl events` and the console print times)."""
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts is not None else "?"
