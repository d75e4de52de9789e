"""A terminal that may vanish: the SSH session drops, and every write to the tty fails.

Textual writes frames from a thread through a bounded queue; when the tty write raises
(EIO on a hung-up terminal) that thread ends, the queue fills, and the next frame blocks the
event loop for good, with the runtime on it. `hangup_safe_driver` gives Textual a terminal
file whose writes never raise: the first failure calls `on_gone` (from the writer thread)
and later writes are dropped, so the loop stays free to drain the graph and close its stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO, cast

from textual.driver import Driver

__all__ = ["HangupSafeFile", "HangupWatch", "hangup_safe_driver"]


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
            terminal = cast(TextIO, self._file)  # sys.__stderr__: None only without one
            self._file = HangupSafeFile(terminal, on_gone)  # type: ignore[assignment]

    return HangupSafeLinuxDriver


class HangupWatch:
    """The terminal is gone (SSH dropped). Three ways to learn it: SIGHUP; a frame the
    terminal refused (`HangupSafeFile`); or, when SIGHUP never comes (a parent shell that
    ignores it keeps it from us) and nothing is drawn, a terminal that stops being one,
    checked twice a second. Whichever comes first swaps the terminal for /dev/null, then
    calls `on_hangup(how)` on the loop (the embedded console drains the run; an attached
    one just ends)."""

    CHECK_S = 0.5

    def __init__(self, loop: asyncio.AbstractEventLoop, on_hangup: Callable[[str], None]) -> None:
        self.loop = loop
        self.on_hangup = on_hangup
        self.seen = False
        self._terminal_fds = [fd for fd in (0, 1, 2) if is_tty(fd)]

    def on_signal(self, signum: int, frame: object) -> None:
        self._hung_up("SIGHUP")

    def on_write_error(self, exc: OSError) -> None:
        """From Textual's writer thread: the terminal refused a frame."""
        self._hung_up(f"writing to it failed: {exc}")

    async def watch(self) -> None:
        """Check the terminal until it is gone (cancelled when the console ends)."""
        while not self.seen:
            await asyncio.sleep(self.CHECK_S)
            if any(not is_tty(fd) for fd in self._terminal_fds):
                self._hung_up("the terminal stopped answering")

    def _hung_up(self, how: str) -> None:
        if self.seen:
            return
        self.seen = True
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            with contextlib.suppress(OSError):  # already closed: nothing left to protect
                os.dup2(devnull, fd)
        os.close(devnull)
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives to the exit
        self.loop.call_soon_threadsafe(self.on_hangup, how)


def is_tty(fd: int) -> bool:
    """True while `fd` is a terminal that answers."""
    try:
        return os.isatty(fd) and os.get_terminal_size(fd) is not None
    except OSError:
        return False
