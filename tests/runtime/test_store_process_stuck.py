"""A store's process that stops answering (SIGSTOP, a file system that hangs): the run's stop
still ends, within its timeouts, names the store and ends the process; the next run takes
the store from its file with nothing lost."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.logged_run import SCHNITZEL, LoggedRun, next_log
from tests.runtime.harness import HEADER
from tests.runtime.test_store_process import (
    GUARD_S,
    _command_line,
    graph_with_a_durable_inbox,
    lines_written,
    stop_once_all_written,
    store_process_of,
    wait_until,
)

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")

STUCK = "did not answer within"


def start(graph: Path, *options: str) -> LoggedRun:
    return LoggedRun(
        [*SCHNITZEL, "run", str(graph), "--state-dir", str(graph.parent / "state"), *options],
        log=next_log(graph.parent),
        cwd=graph.parent,
    )


def stopped_store_under_a_run(tmp_path: Path, *options: str) -> tuple[Path, LoggedRun, int]:
    graph = graph_with_a_durable_inbox(tmp_path)
    run = start(graph, *options)
    store = store_process_of(run)
    wait_until(lambda: len(lines_written(tmp_path / "out.jsonl")) > 100, "100 written")
    os.kill(store, signal.SIGSTOP)
    return graph, run, store


def resume(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # killed, as it should be
        os.kill(pid, signal.SIGCONT)


def test_a_second_signal_ends_a_run_whose_store_process_is_stopped(tmp_path: Path) -> None:
    graph, run, store = stopped_store_under_a_run(tmp_path)
    try:
        run.send_signal(signal.SIGTERM)
        wait_until(lambda: "again to exit now" in run.log_tail(), "the first stop began")
        run.send_signal(signal.SIGTERM)  # (two at once may arrive as one)
        assert run.finish(GUARD_S) == 130, run.log_tail()
    finally:
        resume(store)  # a store left stopped by a failed test holds its lock
    assert STUCK in run.log_tail(), run.log_tail()
    wait_until(lambda: not _command_line(store), "the stopped store's process ended")
    stop_once_all_written(start(graph), tmp_path / "out.jsonl")


@pytest.mark.slow
def test_a_run_whose_store_process_is_stopped_stops_within_its_timeouts(tmp_path: Path) -> None:
    graph, run, store = stopped_store_under_a_run(tmp_path, "--drain-timeout", "1")
    try:
        run.send_signal(signal.SIGTERM)
        code = run.finish(GUARD_S)
    finally:
        resume(store)
    assert code != 0 and STUCK in run.log_tail(), run.log_tail()
    wait_until(lambda: not _command_line(store), "the stopped store's process ended")
    stop_once_all_written(start(graph), tmp_path / "out.jsonl")


def out_node(tmp_path: Path) -> dict[str, Any]:
    """The sink, as `schnitzel ctl status --json` gives it (empty before the run serves)."""
    sockets = list((tmp_path / "state" / "control").glob("*.sock"))
    if not sockets:
        return {}
    asked = subprocess.run(
        [*SCHNITZEL, "ctl", "--socket", str(sockets[0]), "--json", "status"],
        capture_output=True,
        text=True,
        check=False,
    )
    return json.loads(asked.stdout)["nodes"]["out"] if asked.returncode == 0 else {}


def out_health(tmp_path: Path) -> tuple[str, str]:
    """The sink's health and its reason."""
    node = out_node(tmp_path)
    return node.get("health", ""), node.get("health_reason", "")


def test_a_store_process_that_stopped_answering_is_named_in_the_nodes_health(
    tmp_path: Path,
) -> None:
    """A source kept waiting for its commits, nothing queued: the node said `ok`, with
    nothing moving, for as long as its store stayed stopped."""
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        HEADER
        + """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: null, rate_hz: 200}}
  - id: out
    kind: sink
    plugin: "null"
    inbox: {max: 16, durable: {path: state/out.db, process: true}}
edges:
  - {from: src, to: out}
"""
    )
    run = start(graph)
    store = store_process_of(run)
    wait_until(lambda: out_node(tmp_path).get("in", 0) > 0, "packets flow")
    os.kill(store, signal.SIGSTOP)
    try:
        wait_until(
            lambda: "has not answered for" in out_health(tmp_path)[1],
            "the node's health names the store",
        )
        assert out_health(tmp_path)[0] == "degraded"
    finally:
        resume(store)
    wait_until(lambda: out_health(tmp_path)[0] == "ok", "the node's health back to ok")
    run.send_signal(signal.SIGTERM)
    assert run.finish(GUARD_S) == 0, run.log_tail()
