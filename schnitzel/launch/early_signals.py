"""Signals that reach `schnitzel run` while it starts, before its event loop takes them over,
and after the run, once the loop gave them back.

Reading the graph, validating it and building the runtime take a second or more on a small
box. Without a handler of its own in that time, a SIGTERM (a service manager's stop) killed
the process with no report and no word, and a SIGHUP (`systemctl reload`, a terminal that
closed) killed it too, although the run contract says SIGTERM drains and exits 0 and SIGHUP
never stops a run. `EarlySignals` holds them until the loop's handlers are installed; then
they are handed to those handlers, as if they had arrived that moment. A second SIGTERM while
starting exits at once (130), as a second signal does in a run.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

__all__ = ["EarlySignals"]

HELD = (signal.SIGTERM, signal.SIGHUP)
"""SIGINT is not held while starting: Ctrl-C before the run started ends the command at once
(130)."""
HELD_AFTER_RUN = (*HELD, signal.SIGINT)
"""After the run SIGINT is held too: a KeyboardInterrupt then (the report being written, the
grace given plugin threads) left through the interpreter's exit, which waits for every
thread, and a plugin's hung thread held the command for ever."""


class EarlySignals:
    """Holds SIGTERM and SIGHUP from `install()` until the event loop's handlers replace
    its own; `take()` then hands over what arrived. `hold()` holds them again after the
    loop's handlers are gone, until `restore()`."""

    def __init__(self) -> None:
        self.pending: list[int] = []
        """The signals received while holding, in order."""
        self._previous: dict[int, Any] = {}
        self._run_over = False
        """After the run: a second SIGTERM is not an exit (a plugin thread still hung would
        hold the interpreter's exit for ever; the command exits on its own in a moment)."""

    @classmethod
    def install(cls) -> EarlySignals:
        """Start holding. Only the main thread may install signal handlers."""
        early = cls()
        for signum in HELD:
            early._previous[signum] = signal.signal(signum, early._on_signal)
        # not held yet, but put back as it is now by `restore` once held after the run (the
        # event loop gives SIGINT back as `default_int_handler`, whatever it was before)
        if (before := signal.getsignal(signal.SIGINT)) is not None:
            early._previous[signal.SIGINT] = before
        return early

    def hold(self) -> None:
        """Hold again once the event loop's handlers are gone (the run returned; its loop is
        closed and its report written after): a SIGHUP or SIGTERM then met the default
        action and killed the process before its report, and a SIGINT could hang its exit
        (HELD_AFTER_RUN). The command exits on its own in a moment."""
        self._run_over = True
        for signum in HELD_AFTER_RUN:
            self._previous.setdefault(signum, signal.signal(signum, self._on_signal))

    def take(self) -> list[int]:
        """What arrived while holding. Call it once the event loop's handlers replaced ours:
        then no signal can arrive in between and meet the default action, or be missed."""
        pending, self.pending = self.pending, []
        return pending

    def restore(self) -> None:
        """Put the handlers from before back where ours are still installed."""
        for signum, previous in self._previous.items():
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, previous)
        self._previous.clear()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGTERM and signal.SIGTERM in self.pending and not self._run_over:
            raise KeyboardInterrupt  # a second SIGTERM: exit now, as Ctrl-C would
        self.pending.append(signum)
