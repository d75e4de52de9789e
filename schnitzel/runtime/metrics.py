"""Per-node counters and histograms, updated by the node's own task in O(1) per batch.

Counters grow, with one exception: a swap that interrupts a durable node's unfinished call
gives the batch back to the store and takes it off `processed` (those packets are counted
again when they are taken again). Rates and health are derived from the counters by
`RateWindow` samples, so the hot path never computes a rate or keeps a history of packets;
a counter that went down over a window counts as no increase, so a rate is never negative.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from schnitzel.runtime.histogram import Histogram

__all__ = ["DropReason", "ErrorRecord", "NodeMetrics", "RateSample", "RateWindow", "message_of"]

RECENT_ERRORS = 20
"""Errors kept per node for the console and the report (newest last)."""


class DropReason:
    """Why a packet was dropped. Intentional filtering is counted apart (`filtered`)."""

    INBOX_FULL = "inbox_full"
    """`overflow: drop_new` refused the arriving packet."""
    DISPLACED = "displaced"
    """`overflow: drop_oldest` pushed the oldest queued packet out."""
    NODE_FAILED = "node_failed"
    """Sent to a node whose task had stopped with an error."""
    SHUTDOWN = "shutdown"
    """Still queued when the drain timed out or a second signal forced the exit."""
    NOT_PORTABLE = "not_portable"
    """Could not be encoded for a durable inbox (a payload that is not JSON-portable)."""
    CORRUPT = "corrupt"
    """A durable store row that no longer decodes (kept out of the run, logged with its seq)."""
    PARKED_DROPPED = "parked_dropped"
    """A parked packet an operator dropped (`schnitzel ctl drop-parked`)."""
    PARKED_OVERFLOW = "parked_overflow"
    """The oldest parked packet, dropped when parking went over `max_parked(_bytes)`."""


def message_of(exc: BaseException) -> str:
    """`str(exc)` (its repr when empty), for a report, an event or a dead letter. A plugin's
    exception whose `__str__` raises must not take the error handling down with it: it is
    named instead."""
    try:
        return str(exc) or repr(exc)
    except Exception as broken:
        return f"<{type(exc).__name__}: str() raised {type(broken).__name__}>"


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """One failure of a node on one packet."""

    ts: float
    packet_id: str | None
    error: str
    message: str


class NodeMetrics:
    """What one node did. Read by snapshots; written only through the methods below, each
    named for what happened (`took`, `passed_on`, `filtered_out`, `refused`, ...), so every
    change of a counter can be found by its name (`assert_counts_add_up` in the tests checks
    that they add up)."""

    __slots__ = (
        "abandoned",
        "crashed",
        "delivered",
        "depth_max",
        "dropped",
        "emitted",
        "errors",
        "filtered",
        "last_progress",
        "latency",
        "processed",
        "processing",
        "received",
        "recent_errors",
    )

    def __init__(self) -> None:
        self.received = 0
        """Packets that arrived at the inbox (accepted or dropped)."""
        self.processed = 0
        """Packets taken from the inbox and handed to the plugin (`in` in the report)."""
        self.emitted = 0
        """Packets the node produced, before fan-out (`out` in the report)."""
        self.filtered = 0
        """Inputs the plugin chose not to pass on (sample, dedup): not a loss."""
        self.delivered = 0
        """Packets a sink completed."""
        self.errors = 0
        self.abandoned = 0
        """Of `errors`: packets a plugin still held when the run gave up on the node."""
        self.dropped: dict[str, int] = {}
        self.depth_max = 0
        self.latency = Histogram()
        """Age of packets (now - packet.ts) when this node finished them."""
        self.processing = Histogram()
        """Time the plugin spent per packet."""
        self.recent_errors: deque[ErrorRecord] = deque(maxlen=RECENT_ERRORS)
        self.last_progress = time.monotonic()
        self.crashed: str | None = None
        """Why the node's task ended with an error, if it did."""

    # -- the inbox -------------------------------------------------------------------------

    def arrived(self, n: int, depth: int = 0) -> None:
        """`n` packets got into the inbox, which then held `depth` (for `depth_max`)."""
        self.received += n
        self.depth_max = max(self.depth_max, depth)

    def refused(self, reason: str, n: int) -> None:
        """`n` packets arrived and were dropped at once for `reason` (inbox full, node failed,
        not portable, a stop while they waited to get in)."""
        self.received += n
        self.dropped[reason] = self.dropped.get(reason, 0) + n

    def drop(self, reason: str, count: int) -> None:
        """Count `count` packets that had arrived as dropped for `reason` (displaced, left
        queued at a forced stop, damaged on disk)."""
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    def saw_depth(self, depth: int) -> None:
        """The inbox held `depth` packets (for `depth_max`)."""
        self.depth_max = max(self.depth_max, depth)

    # -- the node's work ---------------------------------------------------------------------

    def took(self, n: int) -> None:
        """The node took `n` packets from its inbox for its plugin."""
        self.processed += n

    def handed_back(self, n: int, sampled_out: int = 0) -> None:
        """`n` packets taken went back unfinished (a swap gave them back; a stop kept them in
        the durable store): counted again when taken again, with the `sampled_out` of them
        the sample throttle had counted as filtered."""
        self.processed -= n
        self.filtered -= sampled_out

    def filtered_out(self, n: int) -> None:
        """`n` inputs were deliberately not passed on (sample throttle, a plugin's filter)."""
        self.filtered += n

    def passed_on(self, n: int, filtered: int = 0) -> None:
        """The node (a source, a processor) produced `n` packets from its inputs, of which
        it deliberately passed `filtered` on to no one."""
        self.emitted += n
        self.filtered += filtered

    def completed(self, n: int, filtered: int = 0) -> None:
        """A sink delivered `n` packets (and deliberately left `filtered` aside)."""
        self.delivered += n
        self.filtered += filtered

    def abandoned_in_plugin(self, n: int, why: str) -> None:
        """The run gave up on `n` packets a plugin still held: errors, with one record."""
        self.errors += n
        self.abandoned += n
        self.recent_errors.append(ErrorRecord(time.time(), None, "Abandoned", f"{n} packets {why}"))

    def crashed_with(self, exc: BaseException) -> None:
        """The node's task ended with `exc`."""
        self.crashed = f"{type(exc).__name__}: {message_of(exc)}"

    @property
    def dropped_total(self) -> int:
        """Every drop, whatever the reason."""
        return sum(self.dropped.values())

    def error(self, packet_id: str | None, exc: BaseException) -> ErrorRecord:
        """Count one error and keep it among the recent ones."""
        self.errors += 1
        return self.note(packet_id, exc)

    def note(self, packet_id: str | None, exc: BaseException) -> ErrorRecord:
        """Keep `exc` among the recent errors without counting it as a failed packet (a
        drop counted by its reason, a store that could not be written)."""
        record = ErrorRecord(time.time(), packet_id, type(exc).__name__, message_of(exc))
        self.recent_errors.append(record)
        return record


@dataclass(frozen=True, slots=True)
class RateSample:
    """Counters of one node at one moment."""

    at: float
    received: int
    processed: int
    emitted: int
    dropped: int
    errors: int


class RateWindow:
    """Samples of a node's counters over a sliding window, for rates and health."""

    __slots__ = ("_samples", "window_s")

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._samples: deque[RateSample] = deque()

    def sample(self, metrics: NodeMetrics, now: float) -> None:
        """Record the counters now and forget samples older than the window."""
        samples = self._samples
        samples.append(
            RateSample(
                now,
                metrics.received,
                metrics.processed,
                metrics.emitted + metrics.delivered,  # "out": a sink's out is what it delivered
                metrics.dropped_total,
                metrics.errors,
            )
        )
        while len(samples) > 2 and now - samples[1].at >= self.window_s:
            samples.popleft()

    def delta(self) -> tuple[float, RateSample] | None:
        """Seconds covered and the counter increases over the window; None before 2 samples.
        An increase is never negative: a batch given back by a swap (counted when taken,
        uncounted when given back) within the window is no work done, not negative work."""
        if len(self._samples) < 2:
            return None
        first, last = self._samples[0], self._samples[-1]
        return (
            last.at - first.at,
            RateSample(
                last.at - first.at,
                max(0, last.received - first.received),
                max(0, last.processed - first.processed),
                max(0, last.emitted - first.emitted),
                max(0, last.dropped - first.dropped),
                max(0, last.errors - first.errors),
            ),
        )
