"""`schnitzel ctl` without a runtime: its arguments, the config files it reads for a swap,
and the lines it prints for people."""

from __future__ import annotations

from pathlib import Path

import pytest

from schnitzel.cli.ctl_command import (
    _read_config,
    _request_args,
    _show_audit,
    _show_changes,
    _show_reload,
    _show_swap,
    _UsageError,
)
from schnitzel.cli.main import build_parser


def parse(*argv: str) -> dict[str, object]:
    args = build_parser().parse_args(["ctl", *argv])
    return {"json": args.json, "socket": args.socket, "why": args.why, **_request_args(args)}


def test_common_options_go_before_or_after_the_command() -> None:
    assert parse("--json", "--socket", "/s", "status") == {"json": True, "socket": "/s", "why": ""}
    assert parse("status", "--json", "--socket", "/s") == {"json": True, "socket": "/s", "why": ""}
    assert parse("--why", "a", "pause", "src")["why"] == "a"
    assert parse("pause", "src", "--why", "b") == {
        "json": False, "socket": None, "why": "b", "node": "src"
    }  # fmt: skip


def test_throttle_sends_only_the_knobs_given_and_none_means_unpaced() -> None:
    assert parse("throttle", "src", "--rate-hz", "none")["rate_hz"] is None
    sent = parse("throttle", "mid", "--sample-every", "3", "--concurrency", "2")
    assert (sent["sample_every"], sent["concurrency"]) == (3, 2) and "rate_hz" not in sent
    with pytest.raises(_UsageError):
        parse("throttle", "src")


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "fast"])
def test_a_bad_rate_is_a_usage_error(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("throttle", "src", "--rate-hz", bad)
    assert caught.value.code == 2


def test_a_config_file_may_be_yaml_or_json(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("every: 3\nheaders:\n  x-a: b\n")
    (tmp_path / "c.json").write_text('{"every": 3, "when": "2024-01-01"}')
    assert _read_config(tmp_path / "c.yaml") == {"every": 3, "headers": {"x-a": "b"}}
    assert _read_config(tmp_path / "c.json") == {"every": 3, "when": "2024-01-01"}
    (tmp_path / "d.yaml").write_text("when: 2024-01-01\n")
    assert _read_config(tmp_path / "d.yaml") == {"when": "2024-01-01"}  # a date, as text


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"- a\n- b\n", "mapping"),
        (b"", "empty"),
        (b"every: 1\nevery: 2\n", "every"),
        (b"\x00\x01binary", "binary"),
        (b"a: [" + b"[" * 40 + b"]" * 40 + b"]\n", "nest"),
        (b"every: [1\n", "YAML"),
    ],
)
def test_an_unusable_config_file_is_refused_with_the_reason(
    tmp_path: Path, content: bytes, says: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(_UsageError) as caught:
        _read_config(path)
    assert says.lower() in str(caught.value).lower()


def test_a_huge_config_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: " + "x" * 600_000 + "\n")
    with pytest.raises(_UsageError) as caught:
        _read_config(path)
    assert "at most 512 KiB" in str(caught.value)


def test_a_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(_UsageError) as caught:
        _read_config(tmp_path / "nope.yaml")
    assert "cannot read" in str(caught.value)


def test_changes_print_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    _show_changes(
        {
            "node": "src",
            "changes": {
                "rate_hz": {"before": 50.0, "after": None},
                "sample_every": {"before": 1, "after": 4},
            },
        }
    )
    _show_changes({"node": "src", "paused": {"before": False, "after": True}})
    assert capsys.readouterr().out.splitlines() == [
        "src: rate_hz 50 -> none",
        "src: sample_every 1 -> 4",
        "src: paused false -> true",
    ]


def test_swap_with_a_config_file_alone_sends_no_plugin(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("every: 3\n")
    sent = parse("swap", "thin", "--config-file", str(tmp_path / "c.yaml"))
    assert sent["node"] == "thin" and sent["config"] == {"every": 3} and "plugin" not in sent
    assert parse("swap", "thin", "--plugin", "sample")["plugin"] == "sample"
    with pytest.raises(_UsageError, match="give --plugin P, --config-file F"):
        parse("swap", "thin")


def test_the_swap_line_says_config_changed_when_the_plugin_stays(
    capsys: pytest.CaptureFixture[str],
) -> None:
    same = {"before": {"plugin": "sample"}, "after": {"plugin": "sample"}, "node": "thin"}
    _show_swap({**same, "generation": 2, "state_handed_over": True, "diff": ""})
    _show_swap({**same, "applied": False})
    other = {"before": {"plugin": "passthrough"}, "after": {"plugin": "sample"}, "node": "m"}
    _show_swap({**other, "generation": 1})
    out = capsys.readouterr().out
    assert "thin: config changed, plugin sample kept (generation 2; state handed over: yes)" in out
    assert "dry run: thin would change its config (plugin sample kept); nothing was changed" in out
    assert "m: passthrough -> sample (generation 1" in out
    assert "sample -> sample" not in out


def test_the_state_dir_help_gives_the_whole_resolution_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv in (["ctl", "--help"], ["run", "--help"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert (
            "$SCHNITZEL_STATE_DIR, else $STATE_DIRECTORY (systemd), else "
            "$XDG_STATE_HOME/schnitzel, else ~/.local/state/schnitzel" in text
        ), argv


def test_the_audit_table_keeps_a_refusal_of_several_lines_on_its_row(
    capsys: pytest.CaptureFixture[str],
) -> None:
    error = (
        "g.yaml is invalid: g.yaml:4:6: error [dangling-output] node 'thin': what this node "
        "emits goes nowhere: no edge leaves it\n    hint: add an edge"
    )
    who = {"user": "op", "via": "ctl", "ssh": None}
    refused = {
        "ts": "t1", "who": who, "action": "reload", "node": None, "before": None,
        "after": {"graph": "g.yaml"}, "why": "", "outcome": "refused", "error": error,
    }  # fmt: skip
    applied = {**refused, "ts": "t2", "outcome": "applied", "error": None}
    _show_audit([refused, applied])
    _header, first, second = capsys.readouterr().out.splitlines()
    assert first.startswith("t1") and first.endswith("no edge leaves it hint: add an edge")
    assert second.startswith("t2") and second.endswith("applied")


def test_a_reload_names_each_swapped_nodes_plugin_and_config(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A config-only change once read `thin: now sample (swapped)`, as if the plugin changed.
    _show_reload(
        {
            "graph": "g.yaml",
            "applied": [
                {"node": "thin", "swap": {"plugin": "sample", "config": {"every": 3}}},
                {"node": "imu", "throttle": {"rate_hz": {"before": 100.0, "after": 50.0}}},
            ],
        }
    )
    assert capsys.readouterr().out == (
        "reloaded g.yaml:\n  thin: swapped, now sample {every: 3}\n  imu: rate_hz 100 -> 50\n"
    )
