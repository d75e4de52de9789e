"""`schnitzel` in a child process for tests, its log (stderr) in a file, never in a pipe.

A pipe holds 64 KB. A test that waits for something else (lines in a file, requests at a
server) and reads the pipe only at the end leaves a run that logs more than that blocked on
its next log line: the run stops moving and the test waits for a run that is stuck writing,
or reads the end of a log that is not the end. A file never fills up, and it is still there
when the test fails:

    run = LoggedRun([*SCHNITZEL, "run", str(graph)], log=tmp_path / "run-1.log", cwd=tmp_path)
    ...
    assert run.finish(60) == 0, run.log_tail()
"""

from __future__ import annotations

import os
import subprocess
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from tests.conftest import REPO, SCHNITZEL

__all__ = ["SCHNITZEL", "LoggedRun", "kill_left_behind", "next_log"]

TAIL_BYTES = 6000
"""How much of the end of a log a failure message shows."""


class LoggedRun(subprocess.Popen[bytes]):
    """A child process (stdin and stdout closed) whose stderr is appended to `log`."""

    started: ClassVar[weakref.WeakSet[LoggedRun]] = weakref.WeakSet()
    """Every run not yet collected, for `kill_left_behind`."""

    def __init__(
        self, args: Sequence[str], *, log: Path, cwd: Path, env: dict[str, str] | None = None
    ) -> None:
        self.log = log
        if env is None:
            env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
        with log.open("ab") as file:  # the child has its own copy of the descriptor
            super().__init__(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=file,
                env=env,
                cwd=cwd,
            )
        LoggedRun.started.add(self)

    def finish(self, timeout_s: float) -> int:
        """The exit code once the process ended; one still running after `timeout_s` is
        killed (never left behind) and fails the test with the end of its log."""
        try:
            return self.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            self.wait()
            raise AssertionError(
                f"still running after {timeout_s} s (killed); its log: {self.log_tail()}"
            ) from None

    def log_tail(self, size: int = TAIL_BYTES) -> str:
        """The end of what the process logged so far, named by its file."""
        try:
            data = self.log.read_bytes()
        except FileNotFoundError:
            return f"(no log at {self.log})"
        return f"[{self.log}] " + data[-size:].decode(errors="replace")


def kill_left_behind() -> None:
    """Kill every run a test started and left running (a test that failed before it stopped
    its run): it would go on using a core, a port and a broker's session for the rest of the
    suite (tests/conftest.py calls this after each test)."""
    for run in list(LoggedRun.started):
        if run.poll() is None:
            run.kill()
            run.wait()


def next_log(folder: Path, stem: str = "run") -> Path:
    """`<stem>-1.log` in `folder`, or the next number free: one log per run, all kept."""
    n = 1
    while (folder / f"{stem}-{n}.log").exists():
        n += 1
    return folder / f"{stem}-{n}.log"
