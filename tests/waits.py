"""Waiting in a test for something to happen: poll for it, and fail only on a hang, never
on a machine being slow (the suite must pass while another process keeps a core busy)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["GUARD_S", "until"]

GUARD_S = 60.0
"""Only against a hang: no test waits a set amount of real time."""


async def until(predicate: Callable[[], object], guard_s: float = GUARD_S) -> None:
    """Return once `predicate()` is true, polling it on the running loop."""
    async with asyncio.timeout(guard_s):
        while not predicate():
            await asyncio.sleep(0.01)
