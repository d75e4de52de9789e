"""The console in a real terminal: `schnitzel-tui` runs in a tmux pane of pinned size, with
TERM set and COLORTERM unset as over SSH, and the tests read the screen as an operator sees it.

Each test starts its own tmux server (`tmux -L <unique name>`), so no other server is touched,
and kills it at the end. The console runs under a small wrapper (WRAPPER) that writes the
console's pid and, once it has ended, its exit code; on SIGHUP the wrapper passes the signal
on to the console, as a login shell does to its foreground job when the SSH session drops.
Screens are polled until a condition holds, within a deadline: no sleep synchronises anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from schnitzel.durable.rows import live_packets
from schnitzel.validate.validator import validate_text
from tests.runtime.harness import assert_counts_add_up

pytestmark = pytest.mark.slow  # the console in a real terminal (tmux)

TMUX = shutil.which("tmux")
if TMUX is None:
    pytest.skip(
        "tmux is not installed: these tests drive schnitzel-tui in a real terminal through "
        "tmux (CI installs it; `apt-get install tmux` to run them here)",
        allow_module_level=True,
    )

BIN = Path(sys.executable).parent
SCHNITZEL_TUI = (
    [str(BIN / "schnitzel-tui")]
    if (BIN / "schnitzel-tui").exists()
    else [sys.executable, "-m", "schnitzel_tui"]
)
SCHNITZEL = (
    [str(BIN / "schnitzel")]
    if (BIN / "schnitzel").exists()
    else [sys.executable, "-m", "schnitzel.cli.main"]
)
WIDTH, HEIGHT = 100, 30
DEADLINE_S = 60.0

WRAPPER = """\
import signal, subprocess, sys
pid_file, code_file, *command = sys.argv[1:]
child = subprocess.Popen(command)
with open(pid_file + ".partial", "w") as f:
    f.write(str(child.pid))
__import__("os").replace(pid_file + ".partial", pid_file)
signal.signal(signal.SIGHUP, lambda signum, frame: child.send_signal(signal.SIGHUP))
code = child.wait()
with open(code_file + ".partial", "w") as f:
    f.write(str(code))
__import__("os").replace(code_file + ".partial", code_file)
"""
"""Runs the console as its child: its pid to one file, its exit code to another; SIGHUP is
passed on (what bash does to its jobs when its terminal hangs up)."""

ENDLESS = """\
version: 2
nodes:
  - {id: ticker, kind: source, plugin: synthetic, config: {rate_hz: 200.0, payload: {v: 1}}}
  - {id: relay, kind: transform, plugin: passthrough}
  - {id: void, kind: sink, plugin: "null"}
edges:
  - {from: ticker, to: relay}
  - {from: relay, to: void}
"""

UPLINK_DOWN = """\
version: 2
nodes:
  - {id: ticker, kind: source, plugin: synthetic, config: {rate_hz: 200.0, payload: {v: 1}}}
  - id: uplink
    kind: sink
    plugin: http
    config: {url: "http://127.0.0.1:9/x", timeout_s: 1}
    inbox: {durable: {path: state/up.db, max_bytes: 1048576}}
edges:
  - {from: ticker, to: uplink}
"""

INVALID = """\
version: 2
nodes:
  - {id: cam, kind: source, plugin: synthetic, config: {count: 10}}
  - {id: thin, kind: transform, plugin: sampel}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: cam, to: thin}
  - {from: thin, to: out}
"""


def wait_until(check: Callable[[], Any], what: str, timeout_s: float = DEADLINE_S) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Terminal:
    """A tmux server of its own with one pane of pinned size running the console."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.socket = f"schnitzel-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.state_dir = tmp_path / "state-dir"
        self.report = tmp_path / "report.json"
        self.pid_file = tmp_path / "console.pid"
        self.code_file = tmp_path / "console.code"
        self.started = False
        self.socket_path: Path | None = None

    def tmux(self, *args: str, check: bool = True) -> str:
        assert TMUX is not None
        done = subprocess.run(
            [TMUX, "-L", self.socket, "-f", os.devnull, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def start(
        self,
        graph: str,
        *options: str,
        term: str = "xterm-256color",
        size: tuple[int, int] = (WIDTH, HEIGHT),
        env: tuple[str, ...] = (),
    ) -> None:
        """Run `schnitzel-tui GRAPH --report-json REPORT OPTIONS` in a new pane, in the test's
        directory (an operator types a short relative path)."""
        self.run(graph, "--report-json", str(self.report), *options, term=term, size=size, env=env)

    def run(
        self,
        *arguments: str,
        term: str = "xterm-256color",
        size: tuple[int, int] = (WIDTH, HEIGHT),
        env: tuple[str, ...] = (),
    ) -> None:
        """Run `schnitzel-tui ARGUMENTS` in a new pane, in the test's directory."""
        wrapper = self.dir / "wrapper.py"
        wrapper.write_text(WRAPPER)
        # The pane's environment: TERM as the outer terminal says, no COLORTERM (SSH does not
        # forward it), nothing that would change the console's refresh or state directory.
        command = [
            "env",
            "-u",
            "COLORTERM",
            "-u",
            "SSH_CONNECTION",
            "-u",
            "STATE_DIRECTORY",
            "-u",
            "NO_COLOR",
            "-u",
            "TEXTUAL_FPS",
            "-u",  # the size comes from the tty, as in a real terminal (pytest exports 80x24)
            "COLUMNS",
            "-u",
            "LINES",
            f"TERM={term}",
            f"SCHNITZEL_STATE_DIR={self.state_dir}",
            *env,
            sys.executable,
            str(wrapper),
            str(self.pid_file),
            str(self.code_file),
            *SCHNITZEL_TUI,
            *arguments,
        ]
        self.tmux(
            "new-session",
            "-d",
            "-x",
            str(size[0]),
            "-y",
            str(size[1]),
            "-c",
            str(self.dir),
            shlex.join(command),
        )
        self.started = True
        self.socket_path = Path(self.tmux("display-message", "-p", "#{socket_path}").strip())

    def screen(self, escapes: bool = False) -> str:
        """What the pane shows now (with `escapes`: with its colours as SGR sequences)."""
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "0", check=False)

    def wait_for_screen(
        self, check: Callable[[str], Any], what: str, timeout_s: float = DEADLINE_S
    ) -> str:
        """The first screen for which `check` holds."""
        seen = [""]

        def matches() -> Any:
            seen[0] = self.screen()
            return check(seen[0])

        try:
            wait_until(matches, what, timeout_s)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the screen:\n{seen[0]}") from None
        return seen[0]

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "0", *keys)

    def pid(self) -> int:
        """The console's pid, once the wrapper has written it."""
        wait_until(self.pid_file.exists, "the console's pid file")
        return int(self.pid_file.read_text())

    def exit_code(self) -> int:
        """The console's exit code, once it has ended."""
        return self.exit_code_within(DEADLINE_S)

    def exit_code_within(self, timeout_s: float) -> int:
        wait_until(self.code_file.exists, "the console to exit", timeout_s)
        return int(self.code_file.read_text())

    def hang_up(self) -> None:
        """The terminal goes away, as when an SSH session drops: the pane's tty hangs up."""
        self.tmux("kill-server")

    def close(self) -> None:
        if not self.started:
            return
        self.tmux("kill-server", check=False)  # a console still up hangs up and drains
        if self.socket_path is not None:  # tmux leaves its socket file behind
            self.socket_path.unlink(missing_ok=True)
        if self.pid_file.exists():  # only the process this test started, by its id
            pid = int(self.pid_file.read_text())
            with contextlib.suppress(AssertionError):
                wait_until(lambda: not process_alive(pid), "the console to end", 5.0)
            with contextlib.suppress(ProcessLookupError):
                if process_alive(pid):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(tmp_path)
    try:
        yield term
    finally:
        term.close()


def write_graph(tmp_path: Path, text: str, name: str = "graph.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def status_line(screen: str) -> str:
    return screen.splitlines()[0] if screen else ""


def emitted_on(screen: str) -> str | None:
    """The `emitted N` figure of the status line, as shown."""
    match = re.search(r"emitted (\S+)", status_line(screen))
    return match.group(1) if match else None


def row_of(screen: str, node_id: str) -> str:
    """The node table's row of `node_id` (the graph's boxes are drawn above it)."""
    return next((line for line in screen.splitlines() if f"  {node_id}  " in line), "")


def test_console_runs_a_graph_shows_it_moving_and_quits_after_confirmation(
    terminal: Terminal, tmp_path: Path
) -> None:
    graph = write_graph(tmp_path, ENDLESS)
    terminal.start(graph.name)

    first = terminal.wait_for_screen(
        lambda s: "running" in status_line(s) and emitted_on(s) is not None,
        "the status line to say running",
    )
    for node_id in ("ticker", "relay", "void"):
        assert node_id in first, node_id
    terminal.wait_for_screen(
        lambda s: emitted_on(s) not in (None, emitted_on(first)), "the emitted count to move"
    )
    # Packets flow once the source's rate shows: only then does quitting ask first.
    terminal.wait_for_screen(
        lambda s: re.search(r"[1-9][\d.]*k?/s", row_of(s, "ticker")), "the source's rate"
    )

    terminal.keys("q")
    terminal.wait_for_screen(lambda s: "Stop the graph and quit?" in s, "the quit confirmation")
    assert not terminal.code_file.exists()
    terminal.keys("y")

    assert terminal.exit_code() == 0
    report = json.loads(terminal.report.read_text())
    assert report["stop_reason"] == "signal"
    assert report["totals"]["emitted"] > 0
    assert report["totals"]["delivered"] == report["totals"]["emitted"]
    assert report["totals"]["in_flight"] == 0
    validated = validate_text(ENDLESS, source=str(graph), path=graph).graph
    assert validated is not None
    assert_counts_add_up(report, validated)


def test_terminal_hang_up_drains_keeps_the_durable_backlog_and_writes_the_report(
    terminal: Terminal, tmp_path: Path
) -> None:
    graph = write_graph(tmp_path, UPLINK_DOWN)
    terminal.start(graph.name)
    pid = terminal.pid()

    def backlog_shown(screen: str) -> bool:
        row = next((line for line in screen.splitlines() if line.startswith(" uplink ")), "")
        return bool(re.match(r"\s*uplink\s+[1-9]", row))

    terminal.wait_for_screen(backlog_shown, "a durable backlog in the durable panel")
    terminal.hang_up()

    wait_until(lambda: not process_alive(pid), "the console to end after the hang-up")
    report = json.loads(terminal.report.read_text())
    # Its uplink never answered: degraded (exit 4) once health has noticed, else ok (exit 0).
    assert terminal.exit_code() == {"ok": 0, "degraded": 4}[report["status"]]
    assert report["stop_reason"] == "signal"
    assert report["stop_detail"] == "the terminal hung up"
    uplink = report["nodes"]["uplink"]
    backlog = uplink["durable"]["backlog"]
    assert backlog > 0
    assert backlog == uplink["queue_depth"]
    assert report["totals"]["dropped"] == 0
    validated = validate_text(UPLINK_DOWN, source=str(graph), path=graph).graph
    assert validated is not None
    assert_counts_add_up(report, validated)

    log = (terminal.state_dir / "logs" / "schnitzel-tui.log").read_text()
    assert "the terminal hung up" in log

    store = tmp_path / "state" / "up.db"
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert len(list(live_packets(db))) == backlog
    finally:
        db.close()

    rerun = tmp_path / "rerun.json"
    done = subprocess.run(
        # The uplink is still down: the run may end degraded (exit 4) if it lasts long enough
        # for the sink to be judged stalled; the replay is what this checks.
        [
            *SCHNITZEL,
            "run",
            str(graph),
            "--duration",
            "1",
            "--allow-degraded",
            "--report-json",
            str(rerun),
        ],
        env={**os.environ, "SCHNITZEL_STATE_DIR": str(terminal.state_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    replay = json.loads(rerun.read_text())
    assert replay["nodes"]["uplink"]["durable"]["replayed"] == backlog


def test_invalid_graph_shows_its_problems_and_q_exits_1(terminal: Terminal, tmp_path: Path) -> None:
    terminal.start(write_graph(tmp_path, INVALID, "typo.yaml").name)

    screen = terminal.wait_for_screen(
        lambda s: "is invalid" in s and "unknown plugin 'sampel'" in s, "the problems listed"
    )
    assert "1 error" in screen
    terminal.keys("q")
    assert terminal.exit_code() == 1
    assert not terminal.report.exists()


SGR = re.compile(r"\x1b\[([0-9;]*)m")


def test_16_colour_terminal_renders_health_marks_in_basic_colours(
    terminal: Terminal, tmp_path: Path
) -> None:
    terminal.start(write_graph(tmp_path, ENDLESS).name, term="xterm")
    terminal.wait_for_screen(lambda s: "running" in status_line(s), "the status line")
    terminal.wait_for_screen(lambda s: row_of(s, "void"), "the node table")

    coloured = terminal.screen(escapes=True)
    codes = set(SGR.findall(coloured))
    extended = {c for c in codes if re.search(r"(^|;)[34]8;[25](;|$)", c)}
    assert not extended, f"256-colour or RGB sequences on a 16-colour terminal: {extended}"
    # The health marks of healthy nodes are drawn in a basic ANSI green (32, or bright 92).
    marks = re.findall(r"\x1b\[([0-9;]*)m●", coloured)
    assert marks, coloured
    assert any(set(m.split(";")) & {"32", "92"} for m in marks), marks
    assert "●" in status_line(terminal.screen())


def test_status_line_shows_frozen_and_read_only_badges_at_80_columns(
    terminal: Terminal, tmp_path: Path
) -> None:
    terminal.start(write_graph(tmp_path, ENDLESS).name, "--read-only", size=(80, 24))
    terminal.wait_for_screen(lambda s: "running" in status_line(s), "the status line")

    terminal.keys("Space")  # the badge is drawn at once, not at the next poll
    status = status_line(
        terminal.wait_for_screen(lambda s: "FROZEN" in status_line(s), "the FROZEN badge", 3.0)
    )
    assert "READ-ONLY" in status


def test_status_line_shows_the_run_state_when_the_graph_path_is_long(
    terminal: Terminal, tmp_path: Path
) -> None:
    folder = tmp_path / "srv" / "schnitzel" / "graphs" / "site-north"
    folder.mkdir(parents=True)
    graph = write_graph(folder, ENDLESS, "gateway-uplink-production.yaml")
    terminal.start(str(graph.relative_to(tmp_path)), size=(80, 24))  # a 62-character path
    terminal.wait_for_screen(lambda s: row_of(s, "void"), "the node table")

    # The status line is drawn in the same batch as the table: no need to wait long.
    terminal.wait_for_screen(lambda s: "running" in status_line(s), "the run state", 3.0)


def test_over_ssh_the_console_refreshes_every_2_seconds(terminal: Terminal, tmp_path: Path) -> None:
    ssh = ("SSH_CONNECTION=192.0.2.10 52144 192.0.2.20 22",)
    terminal.start(write_graph(tmp_path, ENDLESS).name, env=ssh)
    status = status_line(
        terminal.wait_for_screen(lambda s: "running" in status_line(s), "the status line")
    )
    assert "every 2 s" in status, status


FINITE = ENDLESS.replace("config: {rate_hz: 200.0, payload: {v: 1}}", "config: {count: 50}")


def test_sigterm_closes_the_console_after_the_run_has_ended(
    terminal: Terminal, tmp_path: Path
) -> None:
    terminal.start(write_graph(tmp_path, FINITE).name)
    pid = terminal.pid()
    terminal.wait_for_screen(
        lambda s: "(sources_exhausted)" in status_line(s), "the run to end on its own"
    )

    os.kill(pid, signal.SIGTERM)
    # A console whose run is over closes at once on `q`; SIGTERM means the same.
    assert terminal.exit_code() == 0  # not waiting for an answer


REPO = Path(__file__).resolve().parents[2]
ON_REPO_PATH = (f"PYTHONPATH={REPO}",)
"""The pane's environment for graphs that use the test plugins (`tests.runtime.plugins`)."""

REFUSES_TO_OPEN = """\
version: 2
runtime: {allow_modules: [tests.runtime.plugins]}
nodes:
  - {id: ticker, kind: source, plugin: synthetic, config: {rate_hz: 50.0}}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:RefusesToOpen"}
edges:
  - {from: ticker, to: out}
"""
EXIT_FAILED = 3


def test_sigterm_closes_a_console_whose_run_failed_to_start_with_exit_3(
    terminal: Terminal, tmp_path: Path
) -> None:
    terminal.start(write_graph(tmp_path, REFUSES_TO_OPEN).name, env=ON_REPO_PATH)
    pid = terminal.pid()
    terminal.wait_for_screen(lambda s: "run failed" in s, "the start failure shown")

    os.kill(pid, signal.SIGTERM)
    # Nothing runs, nothing drains: the console closes without asking, as `q` closes it.
    assert terminal.exit_code() == EXIT_FAILED


def test_q_closes_a_console_whose_run_failed_to_start_without_asking_with_exit_3(
    terminal: Terminal, tmp_path: Path
) -> None:
    terminal.start(write_graph(tmp_path, REFUSES_TO_OPEN).name, env=ON_REPO_PATH)
    terminal.wait_for_screen(lambda s: "run failed" in s, "the start failure shown")

    terminal.keys("q")  # no question to answer: nothing runs
    assert terminal.exit_code() == EXIT_FAILED


MANY_PROBLEMS = """\
version: 2
nodes:
  - {id: cam, kind: source, plugin: synthetic, config: {count: 10, bogus: 1}}
  - {id: thin, kind: transform, plugin: sampel}
  - {id: out, kind: sink, plugin: "null", config: {x: 1}}
edges:
  - {from: cam, to: thin}
  - {from: thin, to: out}
"""


def test_invalid_graph_shows_the_first_problems_hint_at_start_at_80_columns(
    terminal: Terminal, tmp_path: Path
) -> None:
    graph = write_graph(tmp_path, MANY_PROBLEMS)
    first = validate_text(MANY_PROBLEMS, source=str(graph), path=graph).report.sorted_problems()[0]
    assert first.hint and len(first.message) > 70  # the message wraps at 80 columns
    terminal.start(graph.name, size=(80, 24))

    # The hint box shows the first problem in full, highlighted at start: no key was pressed.
    expected = f"[{first.code}] {first.message} hint: {first.hint}"
    terminal.wait_for_screen(
        lambda s: expected in " ".join(line.strip() for line in s.splitlines()),
        "the first problem's code, message and hint",
        5.0,
    )
    terminal.keys("q")
    assert terminal.exit_code() == 1
