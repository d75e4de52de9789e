"""`schnitzel-tui` options: what the console is started with, over SSH and locally."""

from __future__ import annotations

import argparse
import os
from typing import Any

import pytest

import schnitzel_tui.embedded
from schnitzel_tui.__main__ import main


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[argparse.Namespace]:
    """The arguments `run_console` is called with (the console itself is not started: these
    tests are about the options; tests/tui/test_console_terminal.py starts the real one)."""
    calls: list[argparse.Namespace] = []

    def record(args: argparse.Namespace, prog: str = "schnitzel-tui") -> int:
        calls.append(args)
        return 0

    monkeypatch.setattr(schnitzel_tui.embedded, "run_console", record)
    for name in ("SSH_CONNECTION", "TEXTUAL_FPS", "TEXTUAL_ANIMATIONS"):
        monkeypatch.delenv(name, raising=False)
    return calls


def test_over_ssh_the_console_refreshes_less_and_draws_fewer_frames(
    started: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSH_CONNECTION", "192.0.2.10 52144 192.0.2.20 22")
    assert main(["g.yaml"]) == 0
    assert started[0].refresh == 2.0
    assert os.environ["TEXTUAL_FPS"] == "10"
    assert os.environ["TEXTUAL_ANIMATIONS"] == "none"


def test_locally_the_console_refreshes_every_second_at_textual_defaults(
    started: list[Any],
) -> None:
    assert main(["g.yaml", "--read-only", "--no-mouse"]) == 0
    args = started[0]
    assert (args.refresh, args.read_only, args.no_mouse) == (1.0, True, True)
    assert "TEXTUAL_FPS" not in os.environ


def test_an_operators_fps_choice_is_kept_over_ssh(
    started: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSH_CONNECTION", "192.0.2.10 52144 192.0.2.20 22")
    monkeypatch.setenv("TEXTUAL_FPS", "30")
    assert main(["g.yaml", "--refresh", "0.5"]) == 0
    assert started[0].refresh == 0.5
    assert os.environ["TEXTUAL_FPS"] == "30"


@pytest.mark.parametrize("value", ["0", "0.05", "61", "fast", "nan"])
def test_a_refresh_out_of_range_is_a_usage_error(
    started: list[Any], value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["g.yaml", "--refresh", value])
    assert exit_info.value.code == 2
    assert "--refresh" in capsys.readouterr().err
    assert not started
