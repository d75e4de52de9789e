"""Helpers shared by the benchmarks: best-of-N wall times, this process's memory."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """The fastest of `repeat` runs of `fn`, in seconds (least disturbed by a shared machine)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def proc_status_kb(field: str) -> int:
    """A `/proc/self/status` field in KiB (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)
