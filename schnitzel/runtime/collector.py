"""CPython's cyclic garbage collector while a graph runs.

Packets are containers (a tuple and, usually, a payload dict) that live for a few batches in
inboxes. At CPython's default settings a young collection runs every 700 net allocations of
containers: each one scans the packets in flight, which survive it, are promoted, and are
scanned again by the full collections, together with everything alive since start-up
(modules, pydantic models, plugins). In the real-work pipeline of `bench/bench_pipeline.py`
that was a fifth of the CPU; a full collection took tens of milliseconds.

For the length of a run, `collector_tuned_for` therefore

- collects, then freezes what is alive when the run starts (`gc.freeze`): full collections no
  longer scan the start-up heap, and no garbage is frozen with it;
- sizes the young generation to what the graph's inboxes may hold, so a packet in flight is
  usually gone (freed by its reference count) before a young collection sees it.

Cycles are still collected, only later; both settings are undone when the last run in the
process ends. A process that disabled the collector or froze objects itself keeps its own
settings.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["MAX_YOUNG", "OBJECTS_PER_PACKET", "collector_tuned_for", "young_threshold"]

OBJECTS_PER_PACKET = 4
"""Containers a packet in flight may account for: its tuple and payload dict, and those of
the packet a transform derives from it while both are alive."""
MAX_YOUNG = 100_000
"""Most containers a young collection may wait for (its pause grows with them)."""


class _Runs:
    """The runs tuning the collector now, and what to restore when the last one ends."""

    count = 0
    saved: tuple[int, int, int] = (700, 10, 10)
    """The thresholds before the first run."""
    froze = False
    """The runs froze the heap (so the last one unfreezes it)."""


def young_threshold(packets_in_flight: int) -> int:
    """The young generation's threshold for a graph holding at most `packets_in_flight`
    packets: never below CPython's default, never above `MAX_YOUNG`."""
    default = _Runs.saved[0] if _Runs.count else gc.get_threshold()[0]
    return max(default, min(MAX_YOUNG, OBJECTS_PER_PACKET * packets_in_flight))


@contextmanager
def collector_tuned_for(packets_in_flight: int) -> Iterator[None]:
    """Tune the collector for a run whose inboxes hold at most `packets_in_flight` packets;
    restored when the last run ends (runs may overlap in one process)."""
    if not gc.isenabled() and _Runs.count == 0:  # the process manages the collector itself
        yield
        return
    if _Runs.count == 0:
        _Runs.saved = gc.get_threshold()
        _Runs.froze = gc.get_freeze_count() == 0
        if _Runs.froze:
            # Garbage frozen with the heap would never be collected while the run lasts:
            # cycles holding files (an unclosed sqlite3 connection) would keep them open.
            gc.collect()
            gc.freeze()
    young = young_threshold(packets_in_flight)
    current = gc.get_threshold()
    if young > current[0]:
        gc.set_threshold(young, current[1], current[2])
    _Runs.count += 1
    try:
        yield
    finally:
        _Runs.count -= 1
        if _Runs.count == 0:
            gc.set_threshold(*_Runs.saved)
            if _Runs.froze:
                gc.unfreeze()
