"""`kill -9` of `schnitzel run` at random moments, again and again: no line of the input is
ever lost, and the duplicates are counted (at-least-once)."""

from __future__ import annotations

import json
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.http_backend import LoopbackBackend
from tests.logged_run import SCHNITZEL, LoggedRun, next_log
from tests.runtime.harness import HEADER
from tests.waits import GUARD_S

pytestmark = pytest.mark.slow  # kill -9 of real processes, again and again

LINES = 30_000


def start(graph: Path, state: Path) -> LoggedRun:
    """`schnitzel run` of `graph`; its log goes to `run-<n>.log` beside the graph (a new file
    per run, kept for a failure to show), never to a pipe it could fill and block on."""
    return LoggedRun(
        [*SCHNITZEL, "run", str(graph), "--state-dir", str(state), "--log-format", "json"],
        log=next_log(graph.parent),
        cwd=graph.parent,
    )


def saved_line(state: Path) -> int:
    """The line the source's checkpoint file says it is past (0: none yet)."""
    files = list((state / "checkpoints").glob("src-*.json"))
    return int(json.loads(files[0].read_text())["line"]) if files else 0


def resumed_at(log: Path) -> int:
    """The line a run's source said it resumed at (1: from the start)."""
    found = re.search(r"resuming in\.jsonl at line (\d+)", log.read_text())
    return int(found.group(1)) if found else 1


def under_way(process: LoggedRun, progress: Callable[[], int], before: int, resumes: bool) -> bool:
    """The run got past its start: `progress()` grew and, when it had a checkpoint to resume
    from, it said where it resumes (what the test reads from its log afterwards)."""
    if progress() <= before:
        return False
    return not resumes or "resuming in.jsonl at line" in process.log.read_text()


def kill_again_and_again(
    graph: Path,
    state: Path,
    progress: Callable[[], int],
    kills: int,
    seed: int,
    settled: Callable[[], bool] = lambda: True,
) -> list[float]:
    """Start and `kill -9` the run `kills` times, each at a random moment after `progress()`
    grew (mid-stream, not while it starts up); then let one run finish. Each run resumes
    where the checkpoint the run before it saved says: a killed run is sent again from its
    last checkpoint, not from the start (how many lines that is depends on how fast the
    machine wrote them in the moments since: the duplicates are counted, not bounded).
    `settled()`: what a killed run had sent is all counted by `progress()` (a server may
    still be reading a request it sent, and count it once the next run has started)."""
    moments = []
    chance = random.Random(seed)
    saved = [0]
    for _ in range(kills):
        deadline = time.monotonic() + GUARD_S  # only against a hang
        while not settled():
            assert time.monotonic() < deadline, "the killed run's requests were never read"
            time.sleep(0.01)
        before = progress()
        process = start(graph, state)
        started = time.monotonic()
        # No set time: a loaded machine can take seconds to start a run (one killed before
        # it said where it resumed would fail the check of the logs below).
        while process.poll() is None and not under_way(process, progress, before, saved[-1] > 0):
            assert time.monotonic() - started < GUARD_S, process.log_tail()
            time.sleep(0.01)
        moment = chance.uniform(0.0, 0.3)
        time.sleep(moment)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        moments.append(round(time.monotonic() - started, 2))
        saved.append(saved_line(state))
    final = start(graph, state)
    assert final.finish(120) == 0, final.log_tail()
    logs = sorted(graph.parent.glob("run-*.log"), key=lambda log: int(log.stem.split("-")[1]))
    assert [resumed_at(log) for log in logs] == [line + 1 for line in saved]
    assert saved_line(state) == LINES  # and the last run's checkpoint is past every line
    return moments


def write_input(path: Path) -> None:
    with path.open("w") as file:
        for n in range(LINES):
            file.write(json.dumps({"n": n, "pad": "x" * 64}) + "\n")


def report_and_check(written: Counter[int], moments: list[float]) -> None:
    missing = sorted(set(range(LINES)) - set(written))
    duplicates = sum(count - 1 for count in written.values())
    print(f"killed at {moments} s: {duplicates} duplicates of {LINES} lines")
    assert missing == [], f"lost {len(missing)} lines, first {missing[:10]}"
    assert set(written) == set(range(LINES))


@pytest.mark.parametrize(
    ("seed", "window", "process"), [(1, 64, False), (2, 64, True), (3, 1024, False)]
)
def test_kill_9_again_and_again_loses_no_line(
    tmp_path: Path, seed: int, window: int, process: bool
) -> None:
    """`window`: the durable inbox's `max`. With 1024, `mid` hands on several batches while
    their commit runs (runtime/commit_order.py), so kills land among batches in flight.
    `process`: the store in a process of its own, killed with the run."""
    write_input(tmp_path / "in.jsonl")
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        HEADER
        + """
nodes:
  - {id: src, kind: source, plugin: jsonl, config: {path: in.jsonl}}
  - {id: mid, kind: transform, plugin: passthrough, inbox: {max: 64}}
  - id: out
    kind: sink
    plugin: jsonl
    config: {path: out.jsonl, fsync: batch}
    inbox: {max: WINDOW, durable: {path: state/out.db, process: PROCESS}}
edges:
  - {from: src, to: mid}
  - {from: mid, to: out}
""".replace("WINDOW", str(window)).replace("PROCESS", str(process).lower())
    )
    output = tmp_path / "out.jsonl"

    def written_bytes() -> int:
        return output.stat().st_size if output.exists() else 0

    moments = kill_again_and_again(graph, tmp_path / "state", written_bytes, 6, seed)
    written: Counter[int] = Counter()
    for line in output.read_text().splitlines():
        written[json.loads(line)["payload"]["n"]] += 1  # every line parses: none torn
    report_and_check(written, moments)


def test_kill_9_again_and_again_every_line_reaches_the_server(tmp_path: Path) -> None:
    """The same against a real HTTP server on 127.0.0.1; duplicates are counted by
    Idempotency-Key (`src:<file>:<line number>`, the same after a restart)."""
    write_input(tmp_path / "in.jsonl")
    graph = tmp_path / "graph.yaml"
    with LoopbackBackend() as backend:
        graph.write_text(
            HEADER
            + f"""
nodes:
  - {{id: src, kind: source, plugin: jsonl, config: {{path: in.jsonl}}}}
  - {{id: mid, kind: transform, plugin: passthrough, inbox: {{max: 64}}}}
  - id: out
    kind: sink
    plugin: http
    config: {{url: "{backend.url}", batch_max: 64}}
    inbox: {{max: 256, durable: {{path: state/out.db}}}}
edges:
  - {{from: src, to: mid}}
  - {{from: mid, to: out}}
"""
        )
        moments = kill_again_and_again(
            graph,
            tmp_path / "state",
            lambda: len(backend.requests),
            6,
            seed=3,
            settled=lambda: backend.connections_open == 0,  # read to the end of each
        )
        written = Counter(packet["payload"]["n"] for packet in backend.packets())
    report_and_check(written, moments)
