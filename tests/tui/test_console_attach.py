"""`schnitzel-tui --attach SOCKET` in a real terminal (tmux), against a headless `schnitzel run`
in its own process: the same screens, changes audited as coming from the attached console,
quitting leaves the runtime running, and a runtime that goes away and comes back is shown
and recovered from.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from schnitzel.control.client import ControlClient, ControlConnectionError
from tests.tui.test_console_terminal import (
    ENDLESS,
    SCHNITZEL,
    Terminal,
    process_alive,
    row_of,
    status_line,
    terminal,  # noqa: F401 - the fixture
    wait_until,
    write_graph,
)

pytestmark = pytest.mark.slow  # real runtimes and consoles in a real terminal


class Headless:
    """`schnitzel run GRAPH` with a control socket at a short path (unix limit: 107 bytes)."""

    def __init__(self, graph: Path, state_dir: Path) -> None:
        self.graph = graph
        self.state_dir = state_dir
        self.short_dir = Path(tempfile.mkdtemp(prefix="att-", dir="/tmp"))
        self.socket = self.short_dir / "c.sock"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, default_socket: bool = False) -> None:
        """Run the graph; `default_socket`: serve the state dir's default control socket."""
        if default_socket:
            from schnitzel.control.paths import default_socket_path

            self.socket = default_socket_path(self.state_dir, self.graph)
        where = [] if default_socket else ["--control-socket", str(self.socket)]
        self.process = subprocess.Popen(
            [*SCHNITZEL, "run", str(self.graph), "--state-dir", str(self.state_dir), *where],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, "the runtime's control socket")

    def answers(self) -> bool:
        try:
            with ControlClient(self.socket) as client:
                client.request("hello")
        except ControlConnectionError:
            return False
        return True

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=60)
        self.socket.unlink(missing_ok=True)
        shutil.rmtree(self.short_dir, ignore_errors=True)


def typed_rate(screen: str) -> str:
    """The throttle dialog's rate_hz row up to `now`: the label and what is typed."""
    row = next((line for line in screen.splitlines() if "now 200" in line), "")
    return " ".join(row.split("now")[0].replace("█", " ").replace("▊", " ").split())


@pytest.fixture
def headless(tmp_path: Path) -> Iterator[Headless]:
    runtime = Headless(write_graph(tmp_path, ENDLESS), tmp_path / "runtime-state")
    try:
        yield runtime
    finally:
        runtime.close()


def test_attached_console_steers_a_headless_runtime_and_quits_without_stopping_it(
    terminal: Terminal,  # noqa: F811 - the fixture
    headless: Headless,
) -> None:
    headless.start()
    terminal.run("--attach", str(headless.socket))
    terminal.wait_for_screen(
        lambda s: "running" in status_line(s) and "ticker" in row_of(s, "ticker"),
        "the attached console to show the running graph",
    )

    # throttle the source (first row, under the cursor) from 200 to 20 packets/s
    terminal.keys("t")
    terminal.wait_for_screen(lambda s: "rate_hz" in s, "the throttle dialog")
    terminal.keys("C-u")
    terminal.wait_for_screen(lambda s: typed_rate(s) == "rate_hz", "the rate field emptied")
    terminal.keys("2", "0")
    terminal.wait_for_screen(lambda s: typed_rate(s) == "rate_hz 20", "20 in the rate field")
    terminal.keys("C-s")
    terminal.wait_for_screen(lambda s: "200 -> 20" in s, "the confirmation with the change")
    terminal.keys("y")

    def audited() -> list[dict[str, object]]:
        path = headless.state_dir / "audit.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines]

    [entry] = wait_until(audited, "the throttle in the runtime's audit log")
    assert entry["action"] == "throttle" and entry["outcome"] == "applied"
    assert entry["after"] == {"rate_hz": 20.0}
    assert entry["who"]["via"] == "attach"  # type: ignore[index]

    terminal.keys("q")
    assert terminal.exit_code() == 0
    assert headless.process is not None and process_alive(headless.process.pid)
    with ControlClient(headless.socket) as client:
        assert client.request("status")["nodes"]["ticker"]["rate_hz"] == 20.0
    assert headless.stop() == 0


def test_attached_console_shows_a_lost_runtime_and_recovers_when_it_is_back(
    terminal: Terminal,  # noqa: F811 - the fixture
    headless: Headless,
) -> None:
    headless.start()
    terminal.run("--attach", str(headless.socket))
    first = terminal.wait_for_screen(
        lambda s: "running" in status_line(s), "the attached console to show the run"
    )
    assert "disconnected" not in first

    assert headless.stop() == 0  # drains and removes its socket
    terminal.wait_for_screen(
        lambda s: "disconnected" in status_line(s), "the status line to say disconnected"
    )
    assert not terminal.code_file.exists()  # the console stays up, retrying

    headless.start()  # a new run: same graph, new run id
    # the status line and the table are drawn in separate frames: wait for both
    terminal.wait_for_screen(
        lambda s: (
            "running" in status_line(s)
            and "disconnected" not in status_line(s)
            and "ticker" in row_of(s, "ticker")
        ),
        "the console to read the new run and draw its nodes",
    )
    terminal.keys("q")
    assert terminal.exit_code() == 0
    assert headless.process is not None and process_alive(headless.process.pid)


def test_attach_to_nothing_says_so_and_exits_3(terminal: Terminal, tmp_path: Path) -> None:  # noqa: F811
    terminal.run("--attach", str(tmp_path / "none.sock"))
    assert terminal.exit_code() == 3


def test_attach_without_a_socket_finds_the_state_dirs_default_one(
    terminal: Terminal,  # noqa: F811 - the fixture
    headless: Headless,
) -> None:
    headless.start(default_socket=True)
    terminal.run("--attach", "--state-dir", str(headless.state_dir))
    terminal.wait_for_screen(lambda s: "running" in status_line(s), "the attached console")
    terminal.keys("q")
    assert terminal.exit_code() == 0
    assert headless.stop() == 0
