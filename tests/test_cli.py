"""The `schnitzel` and `schnitzel-tui` commands: exit codes, stdin, JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schnitzel.cli.main import build_parser, main
from tests.conftest import GRAPHS, SCHNITZEL_TUI, run_cli

INVALID = (
    "version: 2\nnodes:\n  - {id: a, kind: source, plugin: nope}\n"
    '  - {id: b, kind: sink, plugin: "null"}\nedges: [{from: a, to: b}]\n'
)


def test_valid_graph_exits_0_and_summarises_the_nodes() -> None:
    result = run_cli("validate", str(GRAPHS / "demo.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid (8 nodes, 7 edges" in result.stdout
    assert "unique   policy" in result.stdout


def test_invalid_graph_exits_1_listing_file_line_and_hint(tmp_path: Path) -> None:
    graph = tmp_path / "bad.yaml"
    graph.write_text(INVALID)
    result = run_cli("validate", str(graph))
    assert result.returncode == 1
    assert f"{graph}:3:" in result.stdout and "[unknown-plugin]" in result.stdout
    assert "hint:" in result.stdout
    assert "nothing was run" in result.stdout


def test_json_report_has_valid_flag_problems_and_nodes(tmp_path: Path) -> None:
    result = run_cli("validate", str(GRAPHS / "fan.yaml"), "--json")
    report = json.loads(result.stdout)
    assert report["valid"] is True and report["errors"] == 0
    assert {n["id"] for n in report["nodes"]} >= {"s1", "thin", "slow"}
    assert {"from": "thin.out", "to": "slow.in"} in report["edges"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(INVALID)
    report = json.loads(run_cli("validate", str(bad), "--json").stdout)
    assert report["valid"] is False
    problem = report["problems"][0]
    assert problem["code"] == "unknown-plugin" and problem["line"] == 3
    assert problem["node"] == "a" and problem["path"] == "nodes[0].plugin"


def test_graph_on_stdin_is_validated() -> None:
    result = run_cli("validate", "-", stdin=INVALID)
    assert result.returncode == 1 and "<stdin>:3:" in result.stdout


def test_missing_file_is_a_usage_error_without_traceback() -> None:
    result = run_cli("validate", "/nonexistent/graph.yaml")
    assert result.returncode == 2
    assert "no such file" in result.stderr and "Traceback" not in result.stderr


def test_directory_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("validate", str(tmp_path))
    assert result.returncode == 2 and "is a directory" in result.stderr


def test_bad_arguments_exit_2() -> None:
    assert run_cli("validate").returncode == 2
    assert run_cli("frobnicate").returncode == 2


def test_tui_refuses_an_invalid_graph_with_exit_1(tmp_path: Path) -> None:
    graph = tmp_path / "bad.yaml"
    graph.write_text(INVALID)
    result = run_cli(str(graph), cmd=SCHNITZEL_TUI)
    assert result.returncode == 1 and "[unknown-plugin]" in result.stdout


def test_tui_without_a_terminal_says_to_run_headless_and_exits_2() -> None:
    result = run_cli(str(GRAPHS / "demo.yaml"), cmd=SCHNITZEL_TUI)
    assert result.returncode == 2 and "needs a terminal" in result.stderr
    assert "--no-ui" in result.stderr


def test_every_command_is_listed_whichever_one_runs(capsys: pytest.CaptureFixture[str]) -> None:
    # `main` declares ctl's commands only when ctl runs (docs/architecture.md, "Lazy imports
    # for CLI start-up"): what people read must not depend on that
    for argv in (["--help"], ["ctl", "--help"], ["frobnicate"], ["ctl", "frobnicate"]):
        with pytest.raises(SystemExit):
            main(argv)
        lazily = capsys.readouterr()
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)
        assert capsys.readouterr() == lazily, argv
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("validate", "run", "ctl", "schema", "plugins"))
    with pytest.raises(SystemExit):
        main(["ctl", "--help"])
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("status", "throttle", "swap", "parked", "stop"))


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["ctl", "status", "extra"], "schnitzel ctl status"),
        (["ctl", "throttle", "src", "--rate-hz", "5", "extra"], "schnitzel ctl throttle"),
        (["ctl", "status", "--bogus"], "schnitzel ctl status"),
        (["ctl", "parked", "out", "--frobnicate"], "schnitzel ctl parked"),
        (["ctl", "--bogus", "status"], "schnitzel ctl"),  # given to ctl, before its command
        (["validate", "g.yaml", "extra"], "schnitzel validate"),
        (["run", "g.yaml", "--bogus"], "schnitzel run"),
        (["state", "prune", "extra"], "schnitzel state prune"),
        (["schema", "extra"], "schnitzel schema"),
        (["plugins", "extra"], "schnitzel plugins"),
    ],
)
def test_arguments_a_command_does_not_take_are_refused_naming_that_command(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    unknown = argv[-1] if argv[1] != "--bogus" else "--bogus"
    assert f"{named}: error: unrecognized arguments: {unknown}\n" in err, err
    assert err.startswith(f"usage: {named} "), err


@pytest.mark.parametrize("indent", ["-3", "two"])
def test_schema_refuses_an_indent_that_is_not_a_whole_number_of_spaces(
    indent: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--indent -3` printed the schema as if 0 (one line) was asked for."""
    with pytest.raises(SystemExit) as exited:
        main(["schema", "--indent", indent])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "schnitzel schema: error: argument --indent: " in err, err
    assert ("must be at least 0" if indent == "-3" else "is not a whole number") in err, err
