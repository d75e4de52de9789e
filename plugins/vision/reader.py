"""A decoding thread that reads ahead of the graph, bounded (no runtime import).

`ReadAhead` runs a `read()` callable on its own thread and hands what it returns to an
asyncio consumer through a queue of at most `depth` items: decoding (OpenCV releases the GIL)
overlaps with the graph's work on another core, and never runs more than `depth` frames ahead.
`read()` returns an item, or None at the end of the stream; an exception it raises reaches the
consumer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["ReadAhead"]

T = TypeVar("T")
_END = object()


class ReadAhead(Generic[T]):
    """Items from `read()` on a thread, at most `depth` ahead of the consumer."""

    def __init__(self, read: Callable[[], T | None], depth: int, name: str) -> None:
        self._read = read
        self._room = threading.Semaphore(depth)
        self._stop = threading.Event()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        put = self._queue.put_nowait
        while not self._stop.is_set():
            if not self._room.acquire(timeout=0.2):
                continue
            if self._stop.is_set():
                break
            try:
                item: Any = self._read()
            except Exception as exc:
                item = exc
            try:
                self._loop.call_soon_threadsafe(put, _END if item is None else item)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return
            if item is None or isinstance(item, Exception):
                return

    async def next(self) -> T | None:
        """The next item; None once the stream ended. Raises what `read()` raised."""
        item = await self._queue.get()
        self._room.release()
        if item is _END:
            return None
        if isinstance(item, Exception):
            raise item
        return item

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the thread to end and wait for it (up to `timeout`); True when it ended."""
        self._stop.set()
        self._room.release()
        self._thread.join(timeout)
        return not self._thread.is_alive()
