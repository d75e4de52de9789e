"""The jsonl source in the runtime: bad input never blocks the stream (skip, dead_letter,
stop), rotation during a run loses and repeats nothing, keys name the file, and `follow`
tails the file through appends, rotation and truncation."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from schnitzel import NodeContext, Runtime, RuntimeControl
from schnitzel_plugins.io.jsonl import JsonlSource, JsonlSourceConfig
from tests.runtime import plugins
from tests.runtime.harness import assert_counts_add_up, graph_from, run, steer

GUARD_S = 60.0
"""Only guards against hanging: conditions are polled, never timed."""


def write_lines(path: Path, first: int, count: int, tag: str = "a") -> None:
    with path.open("ab") as file:
        for n in range(first, first + count):
            file.write(json.dumps({"n": n, "file": tag}).encode() + b"\n")


def received(node_id: str = "out") -> list[tuple[str, int]]:
    return [(p.payload["file"], p.payload["n"]) for p in plugins.RECORDS[node_id]]


def graph(
    tmp_path: Path,
    source: str = "",
    sink: str = "Recorder",
    extra: str = "",
    config: str = "",
) -> Any:
    return graph_from(
        tmp_path,
        f"""
nodes:
  - {{id: src, kind: source, plugin: jsonl, config: {{path: in.jsonl{config}}}{source}}}
  - {{id: out, kind: sink, plugin: "tests.runtime.plugins:{sink}", inbox: {{max: 8}}}}
{extra}edges:
  - {{from: src, to: out}}
""",
    )


def with_bad_lines(path: Path) -> None:
    """100 lines: line 41 (n=40) is cut short, line 70 (n=69) is not UTF-8."""
    with path.open("wb") as file:
        for n in range(100):
            if n == 40:
                file.write(b'{"n": 40, "file": "a"\n')
            elif n == 69:
                file.write(b'{"n": 69, "file": "\xff\xfe"}\n')
            else:
                file.write(json.dumps({"n": n, "file": "a"}).encode() + b"\n")


def run_telling(g: Any, tmp_path: Path, **options: Any) -> tuple[dict[str, Any], list[str]]:
    """Run to a stop condition; the report and the events' messages."""
    runtime = Runtime(g, state_dir=tmp_path / "state", **options)
    report = asyncio.run(asyncio.wait_for(runtime.run(), GUARD_S))
    return report, [event.message for event in runtime.events.recent]


def poll(condition: Callable[[], bool], what: str) -> Any:
    """An awaitable that returns once `condition()` holds (fails after GUARD_S)."""

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + GUARD_S
        while not condition():
            assert loop.time() < give_up, f"never happened: {what}"
            await asyncio.sleep(0.02)

    return wait()


# -- bad input ------------------------------------------------------------------------------


def test_skip_counts_bad_lines_with_their_line_number_and_the_rest_arrives(
    tmp_path: Path,
) -> None:
    with_bad_lines(tmp_path / "in.jsonl")
    g = graph(tmp_path, ", on_error: skip")
    report = run(g, tmp_path)
    assert [n for _f, n in received()] == [n for n in range(100) if n not in (40, 69)]
    src = report["nodes"]["src"]
    assert src["errors"] == 2 and report["totals"]["errors"] == 2
    messages = [e["message"] for e in src["recent_errors"]]
    assert messages[0].startswith("in.jsonl line 41: not JSON") and '"n": 40' in messages[0]
    assert messages[1].startswith("in.jsonl line 70: not UTF-8") and "\\xff" in messages[1]
    assert {e["error"] for e in src["recent_errors"]} == {"BadRecord"}
    assert_counts_add_up(report, g)

    write_lines(tmp_path / "in.jsonl", 100, 5)
    plugins.reset()
    again = run(g, tmp_path)  # the bad lines were consumed: never met again
    assert [n for _f, n in received()] == list(range(100, 105))
    assert again["nodes"]["src"]["errors"] == 0


def test_a_bad_last_line_is_checkpointed_past_and_not_counted_again(tmp_path: Path) -> None:
    write_lines(tmp_path / "in.jsonl", 0, 10)
    with (tmp_path / "in.jsonl").open("ab") as file:
        file.write(b"[1, 2]\n")
    g = graph(tmp_path)  # the default policy is skip
    first = run(g, tmp_path)
    assert first["nodes"]["src"]["errors"] == 1
    assert "not a JSON object (a list)" in first["nodes"]["src"]["recent_errors"][0]["message"]
    plugins.reset()
    second = run(g, tmp_path)
    assert received() == [] and second["nodes"]["src"]["errors"] == 0


def test_a_line_nested_too_deep_is_a_bad_record_and_the_lines_after_it_arrive(
    tmp_path: Path,
) -> None:
    """A line of 100,000 `[` raised RecursionError out of the source: the run ended there,
    and a resuming source met the same line again every run."""
    write_lines(tmp_path / "in.jsonl", 0, 3)
    with (tmp_path / "in.jsonl").open("ab") as file:
        file.write(b'{"n": 3, "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    write_lines(tmp_path / "in.jsonl", 4, 3)
    g = graph(tmp_path)  # the default policy is skip
    report = run(g, tmp_path)
    assert [n for _f, n in received()] == [0, 1, 2, 4, 5, 6]
    src = report["nodes"]["src"]
    assert src["errors"] == 1 and src["health"] != "failing"
    message = src["recent_errors"][0]["message"]
    assert message.startswith("in.jsonl line 4: not JSON") and "nested too deep" in message
    assert report["stop_reason"] == "sources_exhausted"
    assert_counts_add_up(report, g)


def test_a_line_over_max_line_bytes_is_a_bad_record_and_the_lines_after_it_arrive(
    tmp_path: Path,
) -> None:
    """There was no limit: a 300 MB line (a corrupted log, a file with no newlines) took
    1.3 GB of memory, enough to have the box kill the runtime, again on every restart."""
    write_lines(tmp_path / "in.jsonl", 0, 2)
    with (tmp_path / "in.jsonl").open("ab") as file:
        file.write(b'{"n": 2, "pad": "' + b"x" * 300_000 + b'"}\n')
    write_lines(tmp_path / "in.jsonl", 3, 2)
    g = graph(tmp_path, config=", max_line_bytes: 100000")
    report = run(g, tmp_path)
    assert [n for _f, n in received()] == [0, 1, 3, 4]
    src = report["nodes"]["src"]
    assert src["errors"] == 1
    message = src["recent_errors"][0]["message"]
    assert message.startswith("in.jsonl line 3: longer than max_line_bytes (100000)"), message
    assert "300019 bytes" in message and '{"n": 2, "pad": "xxx' in message
    assert_counts_add_up(report, g)
    plugins.reset()
    write_lines(tmp_path / "in.jsonl", 5, 1)
    run(g, tmp_path)  # the checkpoint is past the long line: the next run starts after it
    assert [n for _f, n in received()] == [5]


def test_an_incomplete_last_line_is_left_for_the_next_run_not_passed_over(
    tmp_path: Path,
) -> None:
    """A run without `follow` that meets a line still being written (no newline, not yet
    JSON) leaves it: the next run reads it whole."""
    path = tmp_path / "in.jsonl"
    write_lines(path, 0, 5)
    with path.open("ab") as file:
        file.write(b'{"n": 5, "fi')
    g = graph(tmp_path)
    report, told = run_telling(g, tmp_path)
    assert [n for _f, n in received()] == list(range(5))
    assert report["nodes"]["src"]["errors"] == 0
    assert any("incomplete line 6" in message for message in told), told
    with path.open("ab") as file:
        file.write(b'le": "a"}\n')
    plugins.reset()
    again = run(g, tmp_path)
    assert received() == [("a", 5)] and again["nodes"]["src"]["errors"] == 0


def test_dead_letter_sends_a_portable_description_of_each_bad_line(tmp_path: Path) -> None:
    with_bad_lines(tmp_path / "in.jsonl")
    g = graph(
        tmp_path,
        ", on_error: dead_letter, dead_letter: bad",
        extra='  - {id: bad, kind: sink, plugin: "tests.runtime.plugins:Recorder"}\n',
    )
    report = run(g, tmp_path)
    assert len(received()) == 98
    letters = plugins.RECORDS["bad"]
    assert [p.payload["line"] for p in letters] == [41, 70]
    first = letters[0]
    assert first.kind == "bad_record" and first.source_id == "src"
    assert first.payload["file"] == str(tmp_path / "in.jsonl")
    assert first.payload["where"] == "in.jsonl line 41"
    assert first.payload["excerpt"] == '{"n": 40, "file": "a"'
    assert first.payload["reason"].startswith("not JSON")
    assert first.meta["error"]["error"] == "BadRecord"
    json.dumps(first.payload)  # portable
    keys = {p.idempotency_key for p in [*plugins.RECORDS["out"], *letters]}
    assert len(keys) == 100  # one per line, bad ones included
    assert_counts_add_up(report, g)


def test_stop_ends_the_run_at_the_bad_line_and_the_next_run_meets_it_again(
    tmp_path: Path,
) -> None:
    with_bad_lines(tmp_path / "in.jsonl")
    g = graph(tmp_path, ", on_error: stop")
    first = run(g, tmp_path)
    assert first["status"] == "error" and "in.jsonl line 41" in first["stop_detail"]
    assert [n for _f, n in received()] == list(range(40))
    plugins.reset()
    second = run(g, tmp_path)  # stop means the operator decides: nothing is skipped
    assert received() == [] and second["status"] == "error"


# -- rotation and keys ----------------------------------------------------------------------


@pytest.mark.parametrize("field", ["offset", "line"])
def test_a_checkpoint_with_a_negative_position_is_said_unreadable_and_the_file_read_again(
    tmp_path: Path, field: str
) -> None:
    """A negative offset ended the source with a bare `[Errno 22] Invalid argument` on every
    run, naming neither the checkpoint nor what to do."""
    write_lines(tmp_path / "in.jsonl", 0, 5)
    g = graph(tmp_path)
    run(g, tmp_path)
    (saved,) = (tmp_path / "state" / "checkpoints").glob("src-*.json")
    record = json.loads(saved.read_text())
    saved.write_text(json.dumps({**record, field: -10}))
    plugins.reset()
    report, messages = run_telling(g, tmp_path)
    assert [n for _f, n in received()] == list(range(5))
    assert report["nodes"]["src"]["errors"] == 0
    assert any("checkpoint of in.jsonl unreadable" in m and field in m for m in messages)


def test_rotation_by_rename_during_a_run_delivers_both_files_once_with_distinct_keys(
    tmp_path: Path,
) -> None:
    """The source is held by backpressure in the middle of the file when it is renamed and a
    new one created: it finishes the old file, then reads the new one; the next run reads
    nothing again."""
    path = tmp_path / "in.jsonl"
    write_lines(path, 0, 3000)
    g = graph(tmp_path, sink="Gated")

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await poll(lambda: runtime.nodes["src"].metrics.emitted > 0, "the source started")
        path.rename(tmp_path / "in.jsonl.1")
        write_lines(path, 0, 500, tag="b")
        plugins.GATES["out"].set()
        await poll(lambda: len(plugins.RECORDS["out"]) == 3500, "both files delivered")

    steer(g, tmp_path / "state", steps, stop=False)
    assert received() == [("a", n) for n in range(3000)] + [("b", n) for n in range(500)]
    keys = [p.idempotency_key for p in plugins.RECORDS["out"]]
    assert len(set(keys)) == 3500 and keys[0].startswith("src:") and keys[0].endswith(":0")

    plugins.reset()
    plugins.GATES["out"].set()
    write_lines(path, 500, 5, tag="b")
    run(g, tmp_path)
    assert received() == [("b", n) for n in range(500, 505)]  # nothing skipped, none again


def test_copytruncate_during_a_run_reads_the_copy_then_the_new_content(tmp_path: Path) -> None:
    """Held by backpressure after its first 64 KiB, the source finds the file truncated: the
    rest of the old content is read from the copy, then the new lines."""
    path = tmp_path / "in.jsonl"
    write_lines(path, 0, 6000)  # about 150 KiB: more than one read
    g = graph(tmp_path, sink="Gated")

    told: list[str] = []

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await poll(lambda: runtime.nodes["src"].metrics.emitted > 0, "the source started")
        shutil.copyfile(path, tmp_path / "in.jsonl.1")
        os.truncate(path, 0)
        write_lines(path, 0, 300, tag="b")
        plugins.GATES["out"].set()
        await poll(lambda: len(plugins.RECORDS["out"]) == 6300, "old and new content delivered")
        told.extend(event.message for event in runtime.events.recent)

    steer(g, tmp_path / "state", steps, stop=False)
    assert received() == [("a", n) for n in range(6000)] + [("b", n) for n in range(300)]
    assert len({p.idempotency_key for p in plugins.RECORDS["out"]}) == 6300
    assert any("copytruncate" in message for message in told), told


def test_a_file_rotated_between_runs_is_finished_then_the_new_one_read(tmp_path: Path) -> None:
    """The first run stops after 100 of 300 lines (`max_packets`): the next run finds that
    file under its new name and finishes it first."""
    path = tmp_path / "in.jsonl"
    write_lines(path, 0, 300)
    g = graph(tmp_path)
    run(g, tmp_path, max_packets=100)
    assert received() == [("a", n) for n in range(100)]
    path.rename(tmp_path / "in.jsonl.1")
    write_lines(path, 0, 50, tag="b")
    plugins.reset()
    _report, told = run_telling(g, tmp_path)
    assert received() == [("a", n) for n in range(100, 300)] + [("b", n) for n in range(50)]
    assert any("finishing in.jsonl.1 from line 101" in message for message in told), told


def test_a_checkpoint_whose_file_was_deleted_still_reads_the_file_rotated_after_it(
    tmp_path: Path,
) -> None:
    """Stopped for more rotations than logrotate keeps (`rotate 1`): the checkpoint's file is
    gone, but the file rotated away after it (`in.jsonl.1`) is read before the new one. An
    older rotation, written before the checkpoint, is not read again."""
    path = tmp_path / "in.jsonl"
    write_lines(tmp_path / "in.jsonl.2", 0, 5, tag="z")
    os.utime(tmp_path / "in.jsonl.2", ns=(1_000_000_000, 1_000_000_000))
    write_lines(path, 0, 300)
    g = graph(tmp_path)
    run(g, tmp_path, max_packets=100)
    path.unlink()
    write_lines(path, 0, 50, tag="b")
    path.rename(tmp_path / "in.jsonl.1")
    write_lines(path, 0, 20, tag="c")
    plugins.reset()
    _report, told = run_telling(g, tmp_path)
    assert received() == [("b", n) for n in range(50)] + [("c", n) for n in range(20)]
    assert any("reading in.jsonl.1, then in.jsonl" in message for message in told), told


def test_a_run_killed_before_its_first_checkpoint_finishes_the_rotated_file_next_time(
    tmp_path: Path,
) -> None:
    """A run reads lines and dies (`kill -9`) before anything it passed on was safe enough to
    checkpoint; the file is rotated before the next run. The next run must still finish the
    old file (from its first line: duplicates, never loss), then read the new one. Before,
    it found no checkpoint, read only the new file and never the rest of the old one."""
    path = tmp_path / "in.jsonl"
    write_lines(path, 0, 300)

    def source() -> JsonlSource:
        context = NodeContext("src", tmp_path, tmp_path / "state", logging.getLogger("test"))
        plugin = JsonlSource(JsonlSourceConfig(path="in.jsonl"), context)
        asyncio.run(plugin.open())
        return plugin

    first = source()
    read = first.packets()
    assert [next(read) is not None for _ in range(100)] == [True] * 100  # never checkpointed
    path.rename(tmp_path / "in.jsonl.1")
    write_lines(path, 0, 50, tag="b")
    second = source()
    got = [(p.payload["file"], p.payload["n"]) for p in second.packets() if p is not None]
    assert got == [("a", n) for n in range(300)] + [("b", n) for n in range(50)]


# -- follow ---------------------------------------------------------------------------------


def test_follow_delivers_appended_lines_and_follows_rename_and_truncation(
    tmp_path: Path,
) -> None:
    path = tmp_path / "in.jsonl"
    write_lines(path, 0, 10)
    g = graph(tmp_path, config=", follow: true, poll_interval_s: 0.02")

    def count() -> int:
        return len(plugins.RECORDS["out"])

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await poll(lambda: count() == 10, "the first lines")
        write_lines(path, 10, 5)
        with path.open("ab") as file:
            file.write(b'{"n": 15, "fi')  # a partial line waits for its newline
        await poll(lambda: count() == 15, "appended lines")
        with path.open("ab") as file:
            file.write(b'le": "a"}\n')
        await poll(lambda: count() == 16, "the completed line")
        path.rename(tmp_path / "in.jsonl.1")
        write_lines(path, 0, 20, tag="b")
        await poll(lambda: count() == 36, "the new file after a rename")
        shutil.copyfile(path, tmp_path / "in.jsonl.2")
        os.truncate(path, 0)
        write_lines(path, 0, 7, tag="c")
        await poll(lambda: count() == 43, "the file after copytruncate")
        assert not runtime.finished  # follow never ends on its own

    report = steer(g, tmp_path / "state", steps)
    assert received() == (
        [("a", n) for n in range(16)] + [("b", n) for n in range(20)] + [("c", n) for n in range(7)]
    )
    assert report["nodes"]["src"]["errors"] == 0
    assert len({p.idempotency_key for p in plugins.RECORDS["out"]}) == 43

    (saved,) = (tmp_path / "state" / "checkpoints").glob("src-*.json")
    record = json.loads(saved.read_text())
    assert (record["path"], record["line"]) == (str(path), 7)
    assert (record["inode"], record["offset"]) == (path.stat().st_ino, path.stat().st_size)

    plugins.reset()  # a restart goes on after the last line, in the file at the path
    write_lines(path, 7, 3, tag="c")

    async def more(runtime: Runtime, control: RuntimeControl) -> None:
        await poll(lambda: count() == 3, "the lines written while stopped")

    steer(g, tmp_path / "state", more)
    assert received() == [("c", n) for n in range(7, 10)]


def test_dead_letter_on_a_source_that_reports_no_bad_records_is_refused(tmp_path: Path) -> None:
    from schnitzel.validate.validator import validate_text

    text = """version: 2
nodes:
  - {id: s, kind: source, plugin: synthetic, on_error: dead_letter, dead_letter: d}
  - {id: o, kind: sink, plugin: "null"}
  - {id: d, kind: sink, plugin: "null"}
edges:
  - {from: s, to: o}
"""
    result = validate_text(text, source="g.yaml", path=tmp_path / "g.yaml")
    (problem,) = [p for p in result.report.problems if p.code == "bad-dead-letter"]
    assert "does not report bad input records" in problem.message


def test_a_source_whose_input_fails_to_open_leaves_its_checkpoint_unlocked(
    tmp_path: Path,
) -> None:
    """The runtime closes no plugin whose open() raised: a jsonl source whose file cannot be
    read kept its checkpoint's lock for the life of the process, and a later run of the
    graph (another process, `schnitzel-tui`'s next run) was refused as a second run."""
    import fcntl

    context = NodeContext("src", tmp_path, tmp_path / "state", logging.getLogger("test"))
    plugin = JsonlSource(JsonlSourceConfig(path="missing.jsonl"), context)
    with pytest.raises(OSError, match="cannot read input file"):
        asyncio.run(plugin.open())
    [lock] = (tmp_path / "state").rglob("*.lock")
    fd = os.open(lock, os.O_RDWR)  # another open file: flock conflicts as with a process
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError while still held
    finally:
        os.close(fd)


def test_a_lock_file_removed_while_a_source_takes_it_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`schnitzel state prune` removes a stale lock holding it: a source that opened the
    file just before locked a file no longer at the path, and the next run, making a new
    lock file there, would run beside it. The source finds it gone and makes it again."""
    import fcntl

    from schnitzel.durable import lock_file
    from schnitzel_plugins.io import checkpoint_lock

    lock = checkpoint_lock.CheckpointLock(tmp_path / "cp.json", "src", "run")
    real_flock = fcntl.flock
    calls = []

    def prune_in_between(fd: int, operation: int) -> None:
        if not calls:  # the source opened the file; prune removes it before the flock
            lock.path.unlink()
        calls.append(operation)
        real_flock(fd, operation)

    monkeypatch.setattr(lock_file.fcntl, "flock", prune_in_between)
    lock.acquire()
    monkeypatch.undo()
    try:
        fd = os.open(lock.path, os.O_RDWR | os.O_CREAT)  # the next run
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    finally:
        lock.release()


def test_a_long_incomplete_last_line_is_left_for_the_next_run_too(tmp_path: Path) -> None:
    """A line still being written that is already over max_line_bytes was counted a bad
    record and checkpointed past in its middle: the next run read the rest of it as a line
    of its own (a second bad record, or a packet where the rest parses)."""
    path = tmp_path / "in.jsonl"
    write_lines(path, 0, 2)
    with path.open("ab") as file:
        file.write(b'{"n": 2, "pad": "' + b"x" * 3000)
    g = graph(tmp_path, config=", max_line_bytes: 1024")
    report, told = run_telling(g, tmp_path)
    assert [n for _f, n in received()] == [0, 1]
    assert report["nodes"]["src"]["errors"] == 0
    assert any("incomplete line 3" in message for message in told), told
    with path.open("ab") as file:
        file.write(b'x"}\n')
    write_lines(path, 3, 1)
    plugins.reset()
    again = run(g, tmp_path)
    assert [n for _f, n in received()] == [3]
    assert again["nodes"]["src"]["errors"] == 1
    message = again["nodes"]["src"]["recent_errors"][0]["message"]
    assert message.startswith("in.jsonl line 3: longer than max_line_bytes (1024)"), message
