"""A terminal that may vanish: the SSH session drops, and every write to the tty fails.

Textual writes frames from a thread through a bounded queue; when the tty write raises
(EIO on a hung-up terminal) that thread ends, the queue fills, and the next frame blocks the
event loop for good, with the runtime on it. `hangup_safe_driver` gives Textual a terminal
file whose writes never raise: the first failure calls `on_gone` (from the writer thread)
and later writes are dropped, so the loop stays free to drain the graph and close its stores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TextIO

from textual.driver import Driver

__all__ = ["HangupSafeFile", "hangup_safe_driver"]


class HangupSafeFile:
    """Wraps the terminal's file: writes and flushes never raise once the terminal is gone."""

    def __init__(self, file: TextIO, on_gone: Callable[[OSError], None]) -> None:
        self._file = file
        self._on_gone = on_gone
        self.gone = threading.Event()

    def write(self, text: str) -> int:
        if not self.gone.is_set():
            try:
                return self._file.write(text)
            except OSError as exc:
                self._lost(exc)
        return len(text)

    def flush(self) -> None:
        if not self.gone.is_set():
            try:
                self._file.flush()
            except OSError as exc:
                self._lost(exc)

    def fileno(self) -> int:
        return self._file.fileno()

    def isatty(self) -> bool:
        return not self.gone.is_set() and self._file.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def _lost(self, exc: OSError) -> None:
        if not self.gone.is_set():
            self.gone.set()
            self._on_gone(exc)


def hangup_safe_driver(on_gone: Callable[[OSError], None]) -> type[Driver] | None:
    """Textual's Linux driver writing through a `HangupSafeFile`; None where Textual uses
    another driver (Windows), which keeps its own."""
    try:
        from textual.drivers.linux_driver import LinuxDriver
    except ImportError:  # pragma: no cover - not on Linux or macOS
        return None

    class HangupSafeLinuxDriver(LinuxDriver):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._file = HangupSafeFile(self._file, on_gone)  # type: ignore[assignment]

    return HangupSafeLinuxDriver
