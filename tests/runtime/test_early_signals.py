"""Signals between the end of a run and its report: the event loop's handlers are gone once
the run returns, and the loop is closed and the report written after that. A SIGHUP (a
terminal that closed, `systemctl reload`) or a SIGTERM in that moment met the default
action: the process died with no report, although SIGHUP never stops a run and SIGTERM
ends one with its report (docs/contracts/cli.md)."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

import pytest

from schnitzel import Runtime
from schnitzel.launch.early_signals import EarlySignals
from schnitzel.launch.run_command import _run_with_signals, run_loop
from tests.runtime.harness import graph_from

BODY = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 3}}
  - {id: out, kind: sink, plugin: "null"}
edges: [{from: src, to: out}]
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_after_the_run_sigterm_sighup_and_sigint_are_held_until_the_report_is_written(
    tmp_path: Path, loop: str
) -> None:
    runtime = Runtime(graph_from(tmp_path, BODY), tmp_path / "state")
    args = argparse.Namespace(
        max_packets=None,
        duration=None,
        no_control_socket=True,
        control_socket=None,
        metrics_addr=None,
        metrics_textfile=None,
    )
    held = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    before = {signum: signal.getsignal(signum) for signum in held}
    early = EarlySignals.install()
    try:
        report = run_loop(_run_with_signals(runtime, args, logging.getLogger("t"), early), loop)
        assert report["status"] == "ok"
        for signum in held:
            assert signal.getsignal(signum) is not before[signum], signum
        signal.raise_signal(signal.SIGHUP)  # held: the run is over, nothing to reload
        for _ in range(2):  # nor a second SIGTERM: a hung plugin thread would hold the exit
            signal.raise_signal(signal.SIGTERM)
        # nor Ctrl-C: a KeyboardInterrupt would leave through the interpreter's exit, which
        # waits for every thread (the report unwritten, the command hung on a plugin's)
        signal.raise_signal(signal.SIGINT)
        assert early.take() == [signal.SIGHUP, signal.SIGTERM, signal.SIGTERM, signal.SIGINT]
    finally:
        early.restore()
    assert {signum: signal.getsignal(signum) for signum in before} == before
