"""A run a test leaves behind is killed when the test ends (tests/logged_run.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.logged_run import LoggedRun, kill_left_behind


def test_a_run_left_running_is_killed(tmp_path: Path) -> None:
    run = LoggedRun(
        [sys.executable, "-c", "import time; time.sleep(600)"], log=tmp_path / "1.log", cwd=tmp_path
    )
    assert run.poll() is None
    kill_left_behind()
    assert run.poll() is not None  # killed and collected, not left for the rest of the suite
