"""`follow: true` under `kill -9`: a real `schnitzel run` tails a file that grows and is
rotated while it runs and while it is dead; after every restart it goes on where it was
(at least once: no line lost, duplicates counted)."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.logged_run import LoggedRun
from tests.runtime.harness import HEADER
from tests.runtime.test_crash_recovery import start

GUARD_S = 120.0
"""Only guards against hanging: every wait polls for a condition."""


def wait_until(condition: Callable[[], bool], what: str, run: LoggedRun) -> None:
    give_up = time.monotonic() + GUARD_S
    while not condition():
        if run.poll() is not None:
            raise AssertionError(
                f"the run ended ({run.returncode}) before {what}: {run.log_tail()}"
            )
        if time.monotonic() >= give_up:
            run.kill()  # never leave the run behind; its log says what it was doing
            run.wait()
            raise AssertionError(f"never happened: {what}; the run's log: {run.log_tail()}")
        time.sleep(0.02)


def append(path: Path, tag: str, first: int, count: int) -> None:
    with path.open("ab") as file:
        for n in range(first, first + count):
            file.write(json.dumps({"file": tag, "n": n, "pad": "x" * 40}).encode() + b"\n")


def delivered(output: Path) -> Counter[tuple[str, int]]:
    """What the sink wrote (a torn last line, if the kill cut one, is left out)."""
    seen: Counter[tuple[str, int]] = Counter()
    if not output.exists():
        return seen
    for line in output.read_bytes().split(b"\n"):
        try:
            payload = json.loads(line)["payload"]
        except ValueError:
            continue
        seen[(payload["file"], payload["n"])] += 1
    return seen


def test_follow_survives_kill_9_and_rotation_without_loss(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    output = tmp_path / "out.jsonl"
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        HEADER
        + """
nodes:
  - id: src
    kind: source
    plugin: jsonl
    config: {path: in.jsonl, follow: true, poll_interval_s: 0.05}
  - id: out
    kind: sink
    plugin: jsonl
    config: {path: out.jsonl, fsync: batch}
    inbox: {max: 64, durable: {path: state/out.db}}
edges:
  - {from: src, to: out}
"""
    )
    state = tmp_path / "state"
    expected: set[tuple[str, int]] = set()

    def write(tag: str, first: int, count: int) -> None:
        append(source, tag, first, count)
        expected.update((tag, n) for n in range(first, first + count))

    def has(count: int) -> Callable[[], bool]:
        return lambda: len(set(delivered(output)) & expected) >= count

    # 1. lines appended while it runs arrive; killed mid-stream.
    write("a", 0, 1000)
    run = start(graph, state)
    wait_until(has(500), "the first lines", run)
    write("a", 1000, 1000)
    wait_until(has(1200), "appended lines", run)
    run.send_signal(signal.SIGKILL)
    run.wait(30)

    # 2. rotated while dead: the restart finishes the old file, then the new one.
    source.rename(tmp_path / "in.jsonl.1")
    write("b", 0, 800)
    run = start(graph, state)
    wait_until(has(2500), "the new file after a rotation while down", run)
    # 3. rotated while it runs (rename, then copytruncate), killed after.
    source.rename(tmp_path / "in.jsonl.2")
    write("c", 0, 600)
    wait_until(has(3400), "the new file after a rotation while running", run)
    (tmp_path / "in.jsonl.3").write_bytes(source.read_bytes())
    source.write_bytes(b"")  # copytruncate
    write("d", 0, 400)
    run.send_signal(signal.SIGKILL)
    run.wait(30)

    # 4. one more run: everything arrives; then a clean stop.
    write("d", 400, 100)
    run = start(graph, state)
    wait_until(has(len(expected)), "every line", run)
    run.send_signal(signal.SIGTERM)
    assert run.finish(GUARD_S) == 0, run.log_tail()

    seen = delivered(output)
    missing = expected - set(seen)
    assert not missing, f"lost {len(missing)} lines, e.g. {sorted(missing)[:5]}"
    assert set(seen) == expected  # nothing that was never written
    duplicates = sum(count - 1 for count in seen.values())
    print(f"{len(expected)} lines, {duplicates} delivered twice after the kills")
    assert duplicates < len(expected)
