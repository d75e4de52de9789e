"""The `schnitzel` and `schnitzel-tui` commands: exit codes, stdin, JSON output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import GRAPHS

CLI = [sys.executable, "-m", "schnitzel.cli.main"]
TUI = [sys.executable, "-m", "schnitzel_tui"]
INVALID = (
    "version: 2\nnodes:\n  - {id: a, kind: source, plugin: nope}\n"
    '  - {id: b, kind: sink, plugin: "null"}\nedges: [{from: a, to: b}]\n'
)


def run(*args: str, stdin: str | None = None, cmd: list[str] = CLI) -> subprocess.CompletedProcess:
    return subprocess.run([*cmd, *args], input=stdin, capture_output=True, text=True, check=False)


def test_valid_graph_exits_0_and_summarises_the_nodes() -> None:
    result = run("validate", str(GRAPHS / "demo.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid (8 nodes, 7 edges" in result.stdout
    assert "unique   policy" in result.stdout


def test_invalid_graph_exits_1_listing_file_line_and_hint(tmp_path: Path) -> None:
    graph = tmp_path / "bad.yaml"
    graph.write_text(INVALID)
    result = run("validate", str(graph))
    assert result.returncode == 1
    assert f"{graph}:3:" in result.stdout and "[unknown-plugin]" in result.stdout
    assert "hint:" in result.stdout
    assert "nothing was run" in result.stdout


def test_json_report_has_valid_flag_problems_and_nodes(tmp_path: Path) -> None:
    result = run("validate", str(GRAPHS / "fan.yaml"), "--json")
    report = json.loads(result.stdout)
    assert report["valid"] is True and report["errors"] == 0
    assert {n["id"] for n in report["nodes"]} >= {"s1", "thin", "slow"}
    assert {"from": "thin.out", "to": "slow.in"} in report["edges"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(INVALID)
    report = json.loads(run("validate", str(bad), "--json").stdout)
    assert report["valid"] is False
    problem = report["problems"][0]
    assert problem["code"] == "unknown-plugin" and problem["line"] == 3
    assert problem["node"] == "a" and problem["path"] == "nodes[0].plugin"


def test_graph_on_stdin_is_validated() -> None:
    result = run("validate", "-", stdin=INVALID)
    assert result.returncode == 1 and "<stdin>:3:" in result.stdout


def test_missing_file_is_a_usage_error_without_traceback() -> None:
    result = run("validate", "/nonexistent/graph.yaml")
    assert result.returncode == 2
    assert "no such file" in result.stderr and "Traceback" not in result.stderr


def test_directory_is_a_usage_error(tmp_path: Path) -> None:
    result = run("validate", str(tmp_path))
    assert result.returncode == 2 and "is a directory" in result.stderr


def test_bad_arguments_exit_2() -> None:
    assert run("validate").returncode == 2
    assert run("frobnicate").returncode == 2


def test_tui_refuses_an_invalid_graph_with_exit_1(tmp_path: Path) -> None:
    graph = tmp_path / "bad.yaml"
    graph.write_text(INVALID)
    result = run(str(graph), cmd=TUI)
    assert result.returncode == 1 and "[unknown-plugin]" in result.stdout


def test_tui_says_plainly_that_this_build_cannot_run_graphs() -> None:
    result = run(str(GRAPHS / "demo.yaml"), cmd=TUI)
    assert result.returncode == 3 and "no runtime" in result.stderr
