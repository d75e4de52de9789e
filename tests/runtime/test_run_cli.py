"""`schnitzel run` and `schnitzel-tui --no-ui` as an operator runs them: exit codes, the
JSON report, structured logs, and signals (SIGTERM drains; a second signal exits at once)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from schnitzel.launch.run_command import exit_code
from tests.conftest import REPO, SCHNITZEL, SCHNITZEL_TUI
from tests.runtime.harness import HEADER

SMALL = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 500}}
  - {id: thin, kind: transform, plugin: sample, config: {every: 5}}
  - {id: out, kind: sink, plugin: jsonl, config: {path: out/small.jsonl}}
edges:
  - {from: src, to: thin}
  - {from: thin, to: out}
"""


def write_graph(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "graph.yaml"
    path.write_text(HEADER + body)
    return path


def schnitzel(*args: str, cmd: list[str] = SCHNITZEL) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cmd, *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def test_run_prints_the_report_as_json_and_writes_the_sink_file(tmp_path: Path) -> None:
    graph = write_graph(tmp_path, SMALL)
    done = schnitzel("run", str(graph), "--report-json", "-")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["status"], report["stop_reason"]) == ("ok", "sources_exhausted")
    assert report["totals"]["emitted"] == 500 and report["totals"]["delivered"] == 100
    assert report["graph"] == str(graph)
    assert len((tmp_path / "out" / "small.jsonl").read_text().splitlines()) == 100


def test_tui_no_ui_runs_the_same_code_path_as_run(tmp_path: Path) -> None:
    graph = write_graph(tmp_path, SMALL)
    report_path = tmp_path / "reports" / "run.json"
    done = schnitzel(str(graph), "--no-ui", "--report-json", str(report_path), cmd=SCHNITZEL_TUI)
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    assert report["totals"]["delivered"] == 100
    assert "ok (sources_exhausted)" in done.stderr  # the text summary goes to stderr


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    body = SMALL.replace("config: {every: 5}}", "config: {every: 5}, on_error: skip}")
    body = body.replace("config: {count: 500}", "config: {count: 500, rate_hz: 100000.0}")
    graph = write_graph(tmp_path, body)
    done = schnitzel("run", str(graph), "--log-format", "json", "--max-packets", "50")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    assert any("run ended: max_packets" in line["msg"] for line in lines)


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["run", "missing.yaml"], 2, "no such file"),
        (["run", "GRAPH", "--max-packets", "0"], 2, "must be at least 1"),
        (["run", "GRAPH", "--duration", "soon"], 2, "not a number of seconds"),
    ],
)
def test_bad_arguments_are_usage_errors(
    args: list[str], code: int, says: str, tmp_path: Path
) -> None:
    graph = write_graph(tmp_path, SMALL)
    done = schnitzel(*[str(graph) if a == "GRAPH" else a for a in args])
    assert done.returncode == code and says in done.stderr


def test_an_invalid_graph_is_refused_with_every_problem_and_nothing_runs(tmp_path: Path) -> None:
    graph = write_graph(
        tmp_path, SMALL.replace("every: 5", "every: 0").replace("to: out}", "to: x}")
    )
    done = schnitzel("run", str(graph), "--report-json", "-")
    assert done.returncode == 1 and done.stdout == ""
    assert "[bad-config]" in done.stderr and "[edge-missing-node]" in done.stderr
    assert "nothing was run" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            SMALL.replace("plugin: jsonl, config: {path: out/small.jsonl}",
                          'plugin: "tests.runtime.plugins:RefusesToOpen"'),
            "could not open: backend 127.0.0.1:9 refused the connection",
        ),
        (SMALL.replace("plugin: sample, config: {every: 5}",
                       'plugin: "tests.runtime.plugins:Flaky", config: {every: 3}, '
                       "on_error: stop"),
         "failed on packet"),
    ],
)  # fmt: skip
def test_a_run_that_fails_exits_3_and_says_why(body: str, says: str, tmp_path: Path) -> None:
    graph = write_graph(tmp_path, body)
    done = schnitzel("run", str(graph))
    assert done.returncode == 3, done.stderr
    assert says in done.stderr


EVERY_PACKET_FAILS = SMALL.replace("config: {count: 500}", "config: {count: 50}").replace(
    "plugin: sample, config: {every: 5}",
    'plugin: "tests.runtime.plugins:Flaky", config: {every: 1}',
)


@pytest.mark.parametrize(
    ("cmd", "first"), [(SCHNITZEL, ["run"]), (SCHNITZEL_TUI, ["--no-ui"])], ids=["run", "tui"]
)
def test_a_run_in_which_every_packet_fails_is_not_success(
    cmd: list[str], first: list[str], tmp_path: Path
) -> None:
    graph = write_graph(tmp_path, EVERY_PACKET_FAILS)
    report_path = tmp_path / "report.json"
    done = schnitzel(*first, str(graph), "--report-json", str(report_path), cmd=cmd)
    report = json.loads(report_path.read_text())
    assert (report["status"], report["totals"]["delivered"]) == ("degraded", 0)
    assert report["nodes"]["thin"]["errors"] == 50
    assert done.returncode == 4, done.stderr
    assert "degraded" in done.stderr  # the summary says why the code is not 0


def test_allow_degraded_lets_a_degraded_run_exit_0_and_a_clean_run_stays_0(tmp_path: Path) -> None:
    degraded = write_graph(tmp_path, EVERY_PACKET_FAILS)
    done = schnitzel("run", str(degraded), "--allow-degraded")
    assert done.returncode == 0, done.stderr
    assert "degraded" in done.stderr
    clean = write_graph(tmp_path, SMALL)
    assert schnitzel("run", str(clean)).returncode == 0


def test_allow_degraded_does_not_hide_a_failed_run(tmp_path: Path) -> None:
    graph = write_graph(
        tmp_path,
        EVERY_PACKET_FAILS.replace("config: {every: 1}", "config: {every: 1}, on_error: stop"),
    )
    done = schnitzel("run", str(graph), "--allow-degraded")
    assert done.returncode == 3, done.stderr


@pytest.mark.parametrize(
    ("status", "forced", "allow_degraded", "code"),
    [
        ("ok", False, False, 0),
        ("degraded", False, False, 4),
        ("degraded", False, True, 0),
        ("error", False, False, 3),
        ("error", False, True, 3),
        ("ok", True, False, 130),
        ("running", False, True, 3),  # a status this build does not know is never success
    ],
)
def test_exit_code_follows_the_report_status(
    status: str, forced: bool, allow_degraded: bool, code: int
) -> None:
    assert exit_code(status, forced, allow_degraded) == code


ENDLESS_TO_FILE = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 5000.0}}
  - {id: out, kind: sink, plugin: jsonl, config: {path: out/endless.jsonl}}
edges:
  - {from: src, to: out}
"""
SLOW_SINK = """
nodes:
  - {id: src, kind: source, plugin: synthetic}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:Recorder", config: {delay_s: 0.05},
     inbox: {max: 500}}
  - {id: tap, kind: sink, plugin: jsonl, config: {path: out/tap.jsonl}}
edges:
  - {from: src, to: out}
  - {from: src, to: tap}
"""


def _start(tmp_path: Path, body: str) -> tuple[subprocess.Popen[str], Path]:
    graph = write_graph(tmp_path, body)
    report = tmp_path / "report.json"
    process = subprocess.Popen(
        [*SCHNITZEL, "run", str(graph), "--report-json", str(report)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, report


def _wait_for(condition: Any, guard_s: float = 30.0) -> None:
    deadline = time.monotonic() + guard_s
    while not condition():
        assert time.monotonic() < deadline, "hang guard"
        time.sleep(0.05)


def test_sigterm_drains_everything_in_flight_and_exits_0(tmp_path: Path) -> None:
    process, report_path = _start(tmp_path, ENDLESS_TO_FILE)
    written = tmp_path / "out" / "endless.jsonl"
    _wait_for(lambda: written.exists() and written.stat().st_size > 10_000)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    report = json.loads(report_path.read_text())
    assert (report["status"], report["stop_reason"]) == ("ok", "signal")
    lines = written.read_text().splitlines()
    assert report["totals"]["emitted"] == report["totals"]["delivered"] == len(lines)
    assert [json.loads(line)["seq"] for line in lines] == list(range(len(lines)))


def test_a_second_signal_exits_at_once_and_counts_what_it_abandons(tmp_path: Path) -> None:
    process, report_path = _start(tmp_path, SLOW_SINK)
    written = tmp_path / "out" / "tap.jsonl"
    # The tap sees what the source made; the slow sink's inbox holds the same packets.
    _wait_for(lambda: written.exists() and len(written.read_text().splitlines()) >= 200)
    process.send_signal(signal.SIGTERM)  # drain: the slow sink would need many seconds
    process.send_signal(signal.SIGINT)  # and the second signal ends it now
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    report = json.loads(report_path.read_text())
    assert report["stop_reason"] == "signal" and report["status"] == "degraded"
    assert report["nodes"]["out"]["dropped_by_reason"]["shutdown"] > 0
    assert "exiting now" in stderr


HELD_START = """
nodes:
  - {id: src, kind: source, plugin: "tests.runtime.plugins:HeldAtValidation",
     config: {folder: "FOLDER", count: 5}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: out}
"""


def _start_held(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    """`schnitzel run` held in validation until `go` exists in tmp_path."""
    process, report = _start(tmp_path, HELD_START.replace("FOLDER", str(tmp_path)))
    _wait_for(lambda: (tmp_path / "checking").exists() or process.poll() is not None)
    assert process.poll() is None, process.communicate()
    return process, report


def test_sigterm_while_starting_is_held_then_drains_with_a_report_and_exits_0(
    tmp_path: Path,
) -> None:
    """It killed the process (no report, no word) until the event loop was up."""
    process, report_path = _start_held(tmp_path)
    process.send_signal(signal.SIGTERM)
    _wait_for((tmp_path / "held-1").exists)
    (tmp_path / "go").touch()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    report = json.loads(report_path.read_text())
    assert (report["status"], report["stop_reason"]) == ("ok", "signal")
    assert "SIGTERM received; draining" in stderr


def test_sighup_while_starting_does_not_stop_the_run(tmp_path: Path) -> None:
    """It killed the process; SIGHUP never stops a run (docs/contracts/cli.md)."""
    process, report_path = _start_held(tmp_path)
    process.send_signal(signal.SIGHUP)
    _wait_for((tmp_path / "held-1").exists)
    (tmp_path / "go").touch()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    report = json.loads(report_path.read_text())
    assert (report["status"], report["stop_reason"]) == ("ok", "sources_exhausted")
    assert report["totals"]["delivered"] == 5
    assert "SIGHUP ignored: the run has not started yet" in stderr


def test_a_second_sigterm_while_starting_exits_130_at_once(tmp_path: Path) -> None:
    process, report_path = _start_held(tmp_path)
    process.send_signal(signal.SIGTERM)
    _wait_for((tmp_path / "held-1").exists)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)  # `go` never appears: it must not wait
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and not report_path.exists()


FOLLOWED = """
nodes:
  - {id: src, kind: source, plugin: jsonl, config: {path: in.jsonl, follow: true,
     poll_interval_s: 0.05}}
  - {id: out, kind: sink, plugin: jsonl, config: {path: out/followed.jsonl}}
edges:
  - {from: src, to: out}
"""


def test_a_second_run_sharing_a_jsonl_sources_checkpoint_is_refused_naming_the_first(
    tmp_path: Path,
) -> None:
    """It ran: both read the file, both wrote the one checkpoint (`checkpoint failed: ...
    .tmp`), and every line the second read was written twice."""
    (tmp_path / "in.jsonl").write_text("".join(f'{{"n": {n}}}\n' for n in range(10)))
    first, _report = _start(tmp_path, FOLLOWED)
    written = tmp_path / "out" / "followed.jsonl"
    try:
        _wait_for(lambda: written.exists() and len(written.read_text().splitlines()) == 10)
        # --duration only ends it where it is not refused (follow never ends on its own)
        second = schnitzel("run", str(tmp_path / "graph.yaml"), "--duration", "3")
        assert second.returncode == 3, second.stderr
        assert f"in use by another running schnitzel (pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        _, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stderr
    assert len(written.read_text().splitlines()) == 10


HUNG_THREAD = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 3}}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:HangsInThread",
     config: {folder: "FOLDER"}}
edges:
  - {from: src, to: out}
"""


def test_ctrl_c_after_a_run_whose_plugin_thread_hangs_does_not_hang_the_exit(
    tmp_path: Path,
) -> None:
    """Ctrl-C drains; the drain gives up on the hung call and the run ends; more Ctrl-C
    while the report is written and in the grace the command gives plugin threads met the
    default SIGINT action (KeyboardInterrupt): the command then left through the
    interpreter's exit, which waits for every thread, the hung one too. Now they are held
    like SIGTERM and the command exits through its grace, as without them."""
    graph = write_graph(tmp_path, HUNG_THREAD.replace("FOLDER", str(tmp_path)))
    report_path = tmp_path / "report.json"
    process = subprocess.Popen(
        [
            *SCHNITZEL,
            "run",
            str(graph),
            "--drain-timeout",
            "0.5",
            "--report-json",
            str(report_path),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for((tmp_path / "delivering").exists)
        process.send_signal(signal.SIGINT)
        _wait_for(report_path.exists)
        deadline = time.monotonic() + 60  # only against a hang
        while process.poll() is None and time.monotonic() < deadline:
            process.send_signal(signal.SIGINT)
            time.sleep(0.02)
    finally:
        if process.poll() is None:
            process.kill()
        _, stderr = process.communicate(timeout=60)
    report = json.loads(report_path.read_text())
    assert report["stop_reason"] == "signal", report
    assert process.returncode == exit_code(report["status"], False), stderr
    assert "a plugin call is still running in a thread; exiting without it" in stderr
    assert "Traceback" not in stderr
