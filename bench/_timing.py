"""Helpers shared by the benchmarks: best-of-N wall times, this process's memory."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


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


def timed(label: str, fn: Callable[[], Any]) -> Any:
    """Run `fn`, say how long it took under `label`, return its value."""
    start = time.perf_counter()
    value = fn()
    print(f"  ({label}: {time.perf_counter() - start:.1f} s)\n")
    return value


def print_summary(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """The closing table of a benchmark, columns padded to their widest cell."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print("summary")
    for row in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print(("  " + "  ".join(cells)).rstrip())
