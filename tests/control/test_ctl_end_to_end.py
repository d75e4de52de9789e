"""A headless `schnitzel run` steered with `schnitzel ctl`, as an operator does it: status,
nodes, throttle, pause and resume, a swap and its rollback, the audit log; then SIGTERM and
a final report in which every packet is accounted for. Plus where the socket goes, and what
happens when it is taken."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schnitzel.control.paths import default_socket_path
from tests.conftest import REPO, SCHNITZEL, SCHNITZEL_TUI
from tests.control.harness import GUARD_S, socket_dir
from tests.runtime.harness import assert_counts_add_up, graph_from

GRAPH = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 300.0},
     limits: {rate_hz: [1, 1000]}}
  - {id: mid, kind: transform, plugin: passthrough}
  - {id: out, kind: sink, plugin: jsonl, config: {path: out/e2e.jsonl}}
edges:
  - {from: src, to: mid}
  - {from: mid, to: out}
"""
REPORT_KEYS = {"status", "stop_reason", "graph", "duration_s", "totals", "nodes"}
NODE_REPORT_KEYS = {
    "kind", "plugin", "in", "out", "dropped", "errors", "queue_depth", "queue_depth_max",
    "latency_ms", "health",
}  # fmt: skip


def ctl(socket: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SCHNITZEL, "ctl", "--socket", str(socket), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ctl_json(socket: Path, *args: str) -> Any:
    done = ctl(socket, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_for(condition: Any) -> None:
    deadline = time.monotonic() + GUARD_S
    while not condition():
        assert time.monotonic() < deadline, "hang guard"
        time.sleep(0.05)


def start_run(tmp_path: Path, *options: str, cmd: list[str] | None = None) -> subprocess.Popen[str]:
    graph = tmp_path / "graph.yaml"
    run = [*SCHNITZEL, "run", str(graph)] if cmd is None else [*cmd, str(graph), "--no-ui"]
    return subprocess.Popen(
        [*run, "--report-json", str(tmp_path / "report.json"), *options],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def until_answering(socket: Path, process: subprocess.Popen[str]) -> None:
    def answers() -> bool:
        assert process.poll() is None, process.communicate()[1]
        return socket.exists() and ctl(socket, "hello").returncode == 0

    wait_for(answers)


def stop(process: subprocess.Popen[str], exit_code: int = 0) -> str:
    """SIGTERM the run and wait for it: 0 when it ended ok, 4 when degraded (cli.md)."""
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == exit_code, stderr
    return stderr


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with socket_dir() as directory:
        yield directory


@pytest.mark.slow
def test_an_operator_steers_a_headless_run_and_everything_adds_up(
    tmp_path: Path, short_dir: Path
) -> None:
    graph = graph_from(tmp_path, GRAPH)
    sock = short_dir / "run.sock"
    process = start_run(tmp_path, "--state-dir", str(tmp_path / "state"), "--control-socket",
                        str(sock))  # fmt: skip
    try:
        until_answering(sock, process)
        live = ctl_json(sock, "status")
        assert set(live) >= REPORT_KEYS and live["status"] == "running"
        assert set(live["nodes"]["out"]) >= NODE_REPORT_KEYS
        assert live["pid"] == process.pid
        text = ctl(sock, "status").stdout
        assert "NODE" in text and "src" in text and "passthrough" in text

        nodes = ctl_json(sock, "nodes")
        assert [n["id"] for n in nodes] == ["src", "mid", "out"]
        assert nodes[0]["throttle"]["rate_hz"] == 300.0
        assert nodes[0]["limits"]["rate_hz"] == [1, 1000]

        throttled = ctl(sock, "throttle", "src", "--rate-hz", "100", "--why", "calmer please")
        assert throttled.returncode == 0, throttled.stderr
        assert throttled.stdout.strip() == "src: rate_hz 300 -> 100"
        over = ctl(sock, "throttle", "src", "--rate-hz", "5000")
        assert over.returncode == 1 and "1" in over.stderr and "1000" in over.stderr
        assert ctl(sock, "throttle", "src").returncode == 2
        assert ctl(sock, "throttle", "src", "--rate-hz", "fast").returncode == 2
        unknown = ctl(sock, "pause", "nope")
        assert unknown.returncode == 1 and "no node 'nope'" in unknown.stderr

        paused = ctl(sock, "pause", "src", "--why", "look at the sink")
        assert paused.returncode == 0 and "src: paused false -> true" in paused.stdout
        assert ctl_json(sock, "nodes")[0]["paused"] is True
        assert ctl(sock, "resume", "src").returncode == 0
        assert ctl_json(sock, "nodes")[0]["paused"] is False

        config = tmp_path / "sample.yaml"
        config.write_text("every: 3\n")
        dry = ctl(sock, "swap", "mid", "--plugin", "sample", "--config-file", str(config),
                  "--dry-run")  # fmt: skip
        assert dry.returncode == 0 and "dry run" in dry.stdout and "every" in dry.stdout
        assert ctl_json(sock, "nodes")[1]["plugin"] == "passthrough"
        swapped = ctl_json(sock, "swap", "mid", "--plugin", "sample", "--config-file",
                           str(config), "--why", "fewer packets")  # fmt: skip
        assert swapped["applied"] and swapped["after"] == {"plugin": "sample",
                                                           "config": {"every": 3}}  # fmt: skip
        described = ctl_json(sock, "describe")
        mid = next(n for n in described["nodes"] if n["id"] == "mid")
        assert mid["plugin"] == "sample" and mid["generation"] == 1

        config.write_text("- not\n- a mapping\n")
        not_mapping = ctl(sock, "swap", "mid", "--plugin", "sample", "--config-file", str(config))
        assert not_mapping.returncode == 2 and "mapping" in not_mapping.stderr
        missing = ctl(sock, "swap", "mid", "--plugin", "sample", "--config-file", "/nonexistent")
        assert missing.returncode == 2 and "cannot read" in missing.stderr
        config.write_text("every: 0\n")
        invalid = ctl(sock, "swap", "mid", "--plugin", "sample", "--config-file", str(config))
        assert invalid.returncode == 1 and "every" in invalid.stderr

        rolled = ctl(sock, "rollback", "mid", "--why", "seen enough")
        assert rolled.returncode == 0 and "sample -> passthrough" in rolled.stdout
        assert ctl(sock, "rollback", "mid").returncode == 1  # nothing left to roll back
        assert ctl(sock, "approve", "s-1").returncode == 1  # the controller is off

        audit = ctl_json(sock, "audit", "--limit", "100")
        applied = [(e["action"], e["node"], e["why"]) for e in audit if e["outcome"] == "applied"]
        assert applied == [
            ("throttle", "src", "calmer please"),
            ("pause", "src", "look at the sink"),
            ("resume", "src", ""),
            ("swap", "mid", "fewer packets"),
            ("rollback", "mid", "seen enough"),
        ]
        refused = {e["action"] for e in audit if e["outcome"] == "refused"}
        assert refused >= {"throttle", "pause", "swap", "rollback"}
        first = audit[0]
        assert first["before"] == {"rate_hz": 300.0} and first["after"] == {"rate_hz": 100.0}
        me = pwd.getpwuid(os.geteuid()).pw_name
        assert all(e["who"]["user"] == me and e["who"]["via"] == "ctl" for e in audit)
        assert all(e["who"]["pid"] not in (None, process.pid, os.getpid()) for e in audit)
        table = ctl(sock, "audit").stdout
        assert "ACTION" in table and "rate_hz 300 -> 100" in table
        events = ctl(sock, "events").stdout
        assert "swapped by" in events and "rolled back by" in events
    finally:
        stderr = stop(process)
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["status"], report["stop_reason"]) == ("ok", "signal"), stderr
    assert_counts_add_up(report, graph)
    lines = (tmp_path / "out" / "e2e.jsonl").read_text().splitlines()
    assert report["nodes"]["out"]["delivered"] == len(lines)
    assert report["totals"]["emitted"] == len(lines) + report["nodes"]["mid"]["filtered"]
    assert not sock.exists()


@pytest.mark.slow
def test_the_default_socket_is_in_the_state_dir_and_ctl_finds_it(
    tmp_path: Path, short_dir: Path
) -> None:
    graph = graph_from(tmp_path, GRAPH).path
    assert graph is not None
    state = short_dir / "state"
    process = start_run(tmp_path, "--state-dir", str(state))
    sock = default_socket_path(state, graph)
    assert sock.parent == state / "control" and sock.name.startswith("graph-")
    try:
        until_answering(sock, process)
        done = subprocess.run(
            [*SCHNITZEL, "ctl", "--state-dir", str(state), "hello", "--json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0 and json.loads(done.stdout)["pid"] == process.pid
        # A second run of the same graph on the same state dir goes on without a socket,
        # and says so (another graph gets its own: tests/control/test_ctl_choice.py).
        second = start_run(tmp_path, "--state-dir", str(state), "--max-packets", "50")
        _, second_stderr = second.communicate(timeout=60)
        assert second.returncode == 0, second_stderr
        assert "no control socket for this run" in second_stderr
        assert json.loads(ctl(sock, "hello", "--json").stdout)["pid"] == process.pid
        # With the socket chosen explicitly, it refuses to start instead.
        third = start_run(tmp_path, "--state-dir", str(state), "--control-socket",
                          str(sock))  # fmt: skip
        _, third_stderr = third.communicate(timeout=60)
        assert third.returncode == 2 and "nothing was run" in third_stderr
        assert f"pid {process.pid}" in third_stderr
    finally:
        stop(process)
    assert not sock.exists()


@pytest.mark.slow
def test_sighup_and_ctl_reload_apply_the_edited_graph_file(tmp_path: Path, short_dir: Path) -> None:
    graph = graph_from(tmp_path, GRAPH)
    sock = short_dir / "run.sock"
    process = start_run(tmp_path, "--state-dir", str(tmp_path / "state"), "--control-socket",
                        str(sock))  # fmt: skip
    try:
        until_answering(sock, process)
        edited = graph.path.read_text().replace(
            "plugin: passthrough}", "plugin: sample, config: {every: 2}}"
        )
        assert edited != graph.path.read_text()
        graph.path.write_text(edited)
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: ctl_json(sock, "nodes")[1]["plugin"] == "sample")
        graph.path.write_text(edited.replace("plugin: sample, config: {every: 2}}",
                                             "plugin: passthrough}"))  # fmt: skip
        reloaded = ctl(sock, "reload", "--why", "back to normal")
        assert reloaded.returncode == 0, reloaded.stderr
        assert "mid: swapped, now passthrough" in reloaded.stdout
        # a throttle, then its rate written into the file: reloads go on being applied
        assert ctl(sock, "throttle", "src", "--rate-hz", "120").returncode == 0
        slower = edited.replace("rate_hz: 300.0", "rate_hz: 120.0")
        graph.path.write_text(slower.replace("plugin: sample, config: {every: 2}}",
                                             "plugin: passthrough}"))  # fmt: skip
        written = ctl(sock, "reload")
        assert written.returncode == 0, written.stderr
        assert "src: rate_hz 120 -> 120" in written.stdout
        graph.path.write_text(slower)
        swapped = ctl(sock, "reload")
        assert swapped.returncode == 0, swapped.stderr
        assert "mid: swapped, now sample" in swapped.stdout and "src" not in swapped.stdout
        assert ctl_json(sock, "nodes")[0]["throttle"]["rate_hz"] == 120.0
        graph.path.write_text(slower.replace("to: out}", "to: nowhere}"))
        refused = ctl(sock, "reload")
        assert refused.returncode == 1 and "nowhere" in refused.stderr
        reloads = [e for e in ctl_json(sock, "audit", "--limit", "100")
                   if e["action"] == "reload"]  # fmt: skip
        assert [(e["who"]["via"], e["outcome"]) for e in reloads] == [
            ("reload", "applied"), ("ctl", "applied"), ("ctl", "applied"), ("ctl", "applied"),
            ("ctl", "refused")
        ]  # fmt: skip
        assert reloads[1]["why"] == "back to normal"
    finally:
        stop(process)
    report = json.loads((tmp_path / "report.json").read_text())
    assert_counts_add_up(report, graph)


def test_no_control_socket_serves_nothing(tmp_path: Path, short_dir: Path) -> None:
    graph_from(tmp_path, GRAPH)
    state = short_dir / "state"
    done = start_run(tmp_path, "--state-dir", str(state), "--no-control-socket",
                     "--max-packets", "20")  # fmt: skip
    _, stderr = done.communicate(timeout=60)
    assert done.returncode == 0, stderr
    assert not (state / "control").exists() and "control socket" not in stderr


def test_a_socket_path_that_cannot_be_served_is_a_usage_error(
    tmp_path: Path, short_dir: Path
) -> None:
    graph_from(tmp_path, GRAPH)
    long_path = short_dir / ("x" * 120 + ".sock")
    done = start_run(tmp_path, "--state-dir", str(short_dir), "--control-socket", str(long_path))
    _, stderr = done.communicate(timeout=60)
    assert done.returncode == 2 and "at most 107" in stderr
    assert not (tmp_path / "report.json").exists()


def test_the_tui_no_ui_serves_the_socket_too(tmp_path: Path, short_dir: Path) -> None:
    graph_from(tmp_path, GRAPH)
    sock = short_dir / "tui.sock"
    process = start_run(tmp_path, "--state-dir", str(short_dir / "state"), "--control-socket",
                        str(sock), cmd=SCHNITZEL_TUI)  # fmt: skip
    try:
        until_answering(sock, process)
        assert ctl_json(sock, "hello")["pid"] == process.pid
        stopped = ctl(sock, "stop", "--why", "done here")
        assert stopped.returncode == 0 and "stopping" in stopped.stdout
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
    finally:
        if process.poll() is None:
            stop(process)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["stop_reason"] == "signal"


def test_ctl_without_a_runtime_exits_3_and_says_how_to_start_one(short_dir: Path) -> None:
    done = ctl(short_dir / "none.sock", "status")
    assert done.returncode == 3
    assert "no socket there" in done.stderr and "schnitzel run GRAPH" in done.stderr
