"""Trouble a plugin handles itself (a retry, an open circuit breaker), kept for the operator.

A plugin that fails on a packet raises, and the runtime counts an error. A plugin that
retries inside its own call (a sink waiting for its backend) fails nothing the runtime can
see, so it tells the operator instead: `context.report_trouble(reason)` each time it retries
or waits because of a problem, `context.report_recovered()` once the thing works again.

Both calls are O(1) field writes, take no lock and log nothing, so they are safe on the hot
path and from a plugin's own threads (reports from several threads at once may come out a
few short in the count; nothing else is lost). The runtime reads a node's `Trouble` once per metrics
tick (runtime/troubles.py) and turns what changed into events, the node's health reason and
its recent errors: a backend reported dead a thousand times a second costs a thousand field
writes and a handful of events.
"""

from __future__ import annotations

import time
from typing import NamedTuple

__all__ = ["Episode", "Trouble"]


class Episode(NamedTuple):
    """A stretch of trouble that ended: from its first report to `report_recovered()`."""

    since: float
    ended: float
    reason: str
    """The last reason reported."""
    retries: int


class Trouble:
    """What one node's plugin reported since it last recovered. Written by the plugin,
    read by the runtime's metrics tick."""

    __slots__ = ("last", "last_episode", "reason", "reason_since", "retries", "since", "total")

    def __init__(self) -> None:
        self.since: float | None = None
        """When the current trouble began (time.time()); None while there is none."""
        self.reason = ""
        """The latest reason reported, in words (`connection refused; circuit open`)."""
        self.reason_since = 0.0
        """When `reason` was first reported in the current trouble."""
        self.last = 0.0
        """When trouble was last reported."""
        self.retries = 0
        """Reports since the trouble began: each is a retry or a wait."""
        self.total = 0
        """Reports over the whole run."""
        self.last_episode: Episode | None = None
        """The trouble that ended most recently."""

    @property
    def active(self) -> bool:
        """True from the first report until the plugin recovers."""
        return self.since is not None

    def report(self, reason: str) -> None:
        """One more retry or wait because of `reason`. Repeats of one reason are counted,
        not kept one by one."""
        now = time.time()
        if self.since is None:
            self.since, self.retries = now, 0
        if reason != self.reason:
            self.reason, self.reason_since = reason, now
        self.retries += 1
        self.total += 1
        self.last = now

    def recovered(self) -> None:
        """The trouble is over (a request succeeded). Costs one comparison when there was
        none, so a plugin may call it after every success."""
        since = self.since
        if since is None:
            return
        self.last_episode = Episode(since, time.time(), self.reason, self.retries)
        self.since = None
        self.reason = ""
