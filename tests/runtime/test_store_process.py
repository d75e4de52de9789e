"""The durable store in a process of its own (schnitzel/durable/store_worker.py and
store_process.py): calls answered in the order they were made, a store's error raised where
the call was made, a store process killed under a run named with nothing lost, the signals
a terminal or a service manager sends left to the run, and the store's process ending with
the run at a `kill -9`, so a restart right after takes the store."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from schnitzel.durable import store_worker
from schnitzel.durable.store import DurableStore, StoreError
from schnitzel.durable.store_worker import ProcessWorker, StoreProcessDied
from schnitzel.errors import BadRecord
from tests.logged_run import SCHNITZEL, LoggedRun, next_log
from tests.runtime.harness import HEADER

GUARD_S = 60.0
"""Hang guard only: nothing waits for a set amount of real time."""


def count_packets(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM packets").fetchone()[0])


def refuse(_store: DurableStore, why: str) -> None:
    raise StoreError(why)


def unpicklable(_store: DurableStore) -> object:
    return lambda: None


def refuse_in_a_shape_that_does_not_unpickle(_store: DurableStore) -> None:
    raise BadRecord("a reason", where="a place")  # its __init__ wants `where` again


def fail_to_build() -> None:
    raise ValueError("cannot be built in the run")


class Unreadable:
    """An answer that pickles in the child and fails to unpickle in the run."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return fail_to_build, ()


def answer_unreadably(_store: DurableStore) -> Unreadable:
    return Unreadable()


def say(_store: DurableStore, words: str) -> None:
    print(words, flush=True)


async def serves_then_closes(worker: ProcessWorker, packets: int) -> None:
    """The store still answers after the errors (it holds `packets`), then closes."""
    assert await worker.call(DurableStore.query, count_packets) == packets
    await worker.call(DurableStore.close)
    await worker.close()


def test_calls_come_back_in_order_and_a_stores_error_is_raised_where_it_was_called(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        worker = ProcessWorker(tmp_path / "s.db", "FULL")
        backlog = await worker.call(DurableStore.open)
        assert backlog.count == 0 and backlog.next_seq == 1
        commits = [
            worker.call(DurableStore.commit, [(seq, 1.0, b'{"n":%d}' % seq)], [], 0)
            for seq in range(1, 51)
        ]
        counts = [worker.call(DurableStore.query, count_packets) for _ in range(3)]
        await asyncio.gather(*commits)
        assert await asyncio.gather(*counts) == [50, 50, 50]  # made after the 50 commits
        with pytest.raises(StoreError, match=r"^refused by the test$"):
            await worker.call(refuse, "refused by the test")
        with pytest.raises(StoreError, match=r"function.*not sent back whole"):
            await worker.call(unpicklable)
        await serves_then_closes(worker, 50)

    asyncio.run(asyncio.wait_for(scenario(), GUARD_S))


def test_a_killed_store_process_is_named_to_its_watcher_and_in_the_error_of_every_call_after(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        worker = ProcessWorker(tmp_path / "s.db", "FULL")
        await worker.call(DurableStore.open)
        told: list[StoreProcessDied] = []
        worker.watch(told.append)
        assert worker._process is not None and not worker.gone
        os.kill(worker._process.pid, signal.SIGKILL)
        for _ in range(2):
            with pytest.raises(StoreProcessDied, match=r"is gone: .* killed by signal 9$"):
                await worker.call(DurableStore.query, count_packets)
        assert worker.gone and len(told) == 1 and "killed by signal 9" in str(told[0])
        late: list[StoreProcessDied] = []
        worker.watch(late.append)  # watched after it died: told at once, on the loop
        await asyncio.sleep(0)
        assert late == told
        await worker.close()
        assert worker.gone and len(told) == 1  # a close after is no second death

    asyncio.run(asyncio.wait_for(scenario(), GUARD_S))


LINES = 10_000


def graph_with_a_durable_inbox(folder: Path) -> Path:
    """`jsonl (follow) -> jsonl`, the sink's inbox durable and small, each batch fsynced (so
    a run is still writing when the test acts); the source resumes after the last line the
    inbox committed."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "in.jsonl").open("w") as file:
        file.writelines(json.dumps({"n": n}) + "\n" for n in range(LINES))
    graph = folder / "graph.yaml"
    graph.write_text(
        HEADER
        + """
nodes:
  - {id: src, kind: source, plugin: jsonl, config: {path: in.jsonl, follow: true}}
  - id: out
    kind: sink
    plugin: jsonl
    config: {path: out.jsonl, fsync: batch}
    inbox: {max: 16, durable: {path: state/out.db, process: true}}
edges:
  - {from: src, to: out}
"""
    )
    return graph


def start(graph: Path) -> LoggedRun:
    return LoggedRun(
        [*SCHNITZEL, "run", str(graph), "--state-dir", str(graph.parent / "state")],
        log=next_log(graph.parent),
        cwd=graph.parent,
    )


def store_process_of(run: LoggedRun) -> int:
    """The pid of the run's store process, once it started."""
    children = Path(f"/proc/{run.pid}/task/{run.pid}/children")
    started = time.monotonic()
    while True:
        for pid in children.read_text().split():
            if "schnitzel.durable.store_process" in _command_line(int(pid)):
                return int(pid)
        assert time.monotonic() - started < GUARD_S, "no store process"
        time.sleep(0.01)


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def lines_written(output: Path) -> set[int]:
    if not output.exists():
        return set()
    lines = output.read_text().splitlines()
    return {json.loads(line)["payload"]["n"] for line in lines if line.endswith("}")}


def stop_once_all_written(run: LoggedRun, output: Path) -> None:
    """The source follows its file for ever: once every line is out, stop the run."""
    wait_until(lambda: lines_written(output) == set(range(LINES)), "every line written")
    run.send_signal(signal.SIGTERM)
    assert run.finish(GUARD_S) == 0, run.log_tail()


def wait_until(condition: Any, what: str) -> None:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < GUARD_S, f"never happened: {what}"
        time.sleep(0.01)


@pytest.mark.slow  # real runs signalled and killed
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_the_store_process_leaves_sigint_sigterm_and_sighup_to_the_run(tmp_path: Path) -> None:
    """A Ctrl-C, a `systemctl stop` (SIGTERM to every process of the service) or a closed
    SSH session reaches the store's process too: it must outlive them until the run has
    committed what is pending and closed the store through it."""
    graph = graph_with_a_durable_inbox(tmp_path)
    run = start(graph)
    store = store_process_of(run)
    wait_until(lambda: len(lines_written(tmp_path / "out.jsonl")) > 100, "100 written")
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        os.kill(store, sig)
    stop_once_all_written(run, tmp_path / "out.jsonl")  # through the store's process
    assert "closing the durable store failed" not in run.log_tail()
    wait_until(lambda: not _command_line(store), "the store's process ended")


@pytest.mark.slow  # real runs signalled and killed
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_a_kill_9_of_the_run_ends_its_store_process_and_a_restart_takes_the_store(
    tmp_path: Path,
) -> None:
    graph = graph_with_a_durable_inbox(tmp_path)
    run = start(graph)
    store = store_process_of(run)
    wait_until(lambda: len(lines_written(tmp_path / "out.jsonl")) > 100, "100 written")
    run.send_signal(signal.SIGKILL)
    run.wait(GUARD_S)
    wait_until(lambda: not _command_line(store), "the store's process ended with the run")
    stop_once_all_written(start(graph), tmp_path / "out.jsonl")  # at once: the store is free


@pytest.mark.slow  # real runs signalled and killed
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_a_store_process_killed_under_a_run_stops_it_named_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    """The run cannot go on without its store (its producers would wait for ever): it stops
    by itself with an error, exit 3, which a service manager's `Restart=on-failure` restarts."""
    graph = graph_with_a_durable_inbox(tmp_path)
    run = start(graph)
    store = store_process_of(run)
    wait_until(lambda: len(lines_written(tmp_path / "out.jsonl")) > 100, "100 written")
    os.kill(store, signal.SIGKILL)
    assert run.finish(GUARD_S) == 3  # what was admitted and never committed was never acked
    log = run.log_tail()
    assert "killed by signal 9; the run stops" in log, log
    assert "failing (durable store" in log, log  # the node's health, in the run's summary
    assert "retrying" not in log, log  # nothing retries a store that cannot answer again
    stop_once_all_written(start(graph), tmp_path / "out.jsonl")


def test_a_store_process_that_fails_to_start_says_why_and_writes_nothing_to_the_runs_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A child whose `schnitzel` does not import (a broken PYTHONPATH): its traceback would
    land on the run's stderr (in a `--log-format json` stream, on a console's screen) while
    the run said only "exited with code 1"."""
    broken = tmp_path / "broken" / "schnitzel"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('a schnitzel broken by the test')\n")
    environment = store_worker._child_environment()
    shadowed = {
        **environment,
        "PYTHONPATH": f"{broken.parent}{os.pathsep}{environment['PYTHONPATH']}",
    }
    monkeypatch.setattr(store_worker, "_child_environment", lambda: shadowed)
    monkeypatch.chdir(tmp_path)  # `-m` puts the working directory first: not a source tree

    async def scenario() -> None:
        worker = ProcessWorker(tmp_path / "s.db", "FULL")
        with pytest.raises(
            StoreProcessDied,
            match=r"exited with code 1 \(it wrote: .*ImportError: a schnitzel broken by the test\)",
        ):
            await worker.call(DurableStore.open)
        await worker.close()

    asyncio.run(asyncio.wait_for(scenario(), GUARD_S))
    out, err = capfd.readouterr()
    assert "broken by the test" not in out + err


def test_what_a_store_process_writes_is_kept_from_the_runs_output_and_shown_at_its_close(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    async def scenario() -> None:
        worker = ProcessWorker(tmp_path / "s.db", "FULL")
        await worker.call(DurableStore.open)
        await worker.call(say, "first words\nlast words of the store's process")
        await worker.call(DurableStore.close)
        await worker.close()
        assert worker.said == "first words | last words of the store's process"

    asyncio.run(asyncio.wait_for(scenario(), GUARD_S))
    out, err = capfd.readouterr()
    assert "words" not in out + err


def test_stores_closed_together_each_end_on_their_own_and_never_hold_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At a close, the end of the socket used to ask how the child ended, waiting for it
    (0.5 s) with the event loop held, for a child that could not yet have seen that end:
    eleven stores closed at once held the loop 5.5 s, and the last ones were killed
    (EXIT_WAIT_S) rather than ending at the end of their socket."""
    asked: list[Path] = []
    words = ProcessWorker._exit_words

    def exit_words(worker: ProcessWorker) -> str:
        asked.append(worker.path)
        return words(worker)

    monkeypatch.setattr(ProcessWorker, "_exit_words", exit_words)

    async def scenario() -> list[int | None]:
        workers = [ProcessWorker(tmp_path / f"s{n}.db", "FULL") for n in range(11)]
        await asyncio.gather(*(worker.call(DurableStore.open) for worker in workers))
        await asyncio.gather(*(worker.call(DurableStore.close) for worker in workers))
        await asyncio.gather(*(worker.close() for worker in workers))
        return [worker._process.returncode for worker in workers if worker._process]

    assert asyncio.run(asyncio.wait_for(scenario(), GUARD_S)) == [0] * 11
    assert asked == []  # only a child that ended on its own is asked how


def store_processes_of_this_process() -> int:
    return sum(
        "schnitzel.durable.store_process" in _command_line(int(pid))
        for task in Path("/proc/self/task").iterdir()
        for pid in (task / "children").read_text().split()
    )


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_a_runs_store_processes_start_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One after another, each store's process started only once the store before it was
    open: its imports (0.1 to 0.3 s of CPU) one after another too; ten durable inboxes took
    3.9 s to start against 2.6 s started together (load 6)."""
    from schnitzel.durable.store_calls import open_on_store
    from schnitzel.runtime.runtime import Runtime
    from tests.runtime.harness import graph_from

    seen_at_first_open: list[int] = []
    call = ProcessWorker.call

    async def counting_call(worker: ProcessWorker, fn: Any, *args: Any) -> Any:
        answer = await call(worker, fn, *args)
        if fn is open_on_store and not seen_at_first_open:
            seen_at_first_open.append(store_processes_of_this_process())
        return answer

    monkeypatch.setattr(ProcessWorker, "call", counting_call)
    sinks = "".join(
        f"""
  - id: out{n}
    kind: sink
    plugin: "null"
    inbox: {{durable: {{path: state/out{n}.db, process: true}}}}"""
        for n in range(3)
    )
    graph = graph_from(
        tmp_path,
        f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: 10}}}}{sinks}
edges:
"""
        + "".join(f"  - {{from: src, to: out{n}}}\n" for n in range(3)),
    )
    runtime = Runtime(graph, state_dir=tmp_path / "state")
    report = asyncio.run(asyncio.wait_for(runtime.run(), GUARD_S))
    assert report["totals"]["delivered"] == 30
    assert seen_at_first_open == [3]


def test_an_answer_that_does_not_unpickle_is_raised_as_a_store_error_and_the_store_serves_on(
    tmp_path: Path,
) -> None:
    """An exception whose class needs more than its message (a keyword-only argument) pickles
    in the child but fails to unpickle in the run: that ended the whole connection (every
    later call: "its process closed the connection", while the process lived on)."""

    async def scenario() -> None:
        worker = ProcessWorker(tmp_path / "s.db", "FULL")
        await worker.call(DurableStore.open)
        with pytest.raises(StoreError, match=r"BadRecord.*a place: a reason"):
            await worker.call(refuse_in_a_shape_that_does_not_unpickle)
        with pytest.raises(StoreError, match=r"answer was unreadable: cannot be built in the run"):
            await worker.call(answer_unreadably)
        await serves_then_closes(worker, 0)

    asyncio.run(asyncio.wait_for(scenario(), GUARD_S))


def test_a_store_process_starts_where_no_temporary_file_can_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its output goes to a temporary file; a box without a writable one (TMPDIR on a
    read-only file system) still runs the store in its process, not on a thread."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))

    async def scenario() -> None:
        worker = ProcessWorker(tmp_path / "s.db", "FULL")
        await worker.call(DurableStore.open)
        assert worker.fallback is None and worker._process is not None
        await worker.call(DurableStore.close)
        await worker.close()

    asyncio.run(asyncio.wait_for(scenario(), GUARD_S))


def test_a_process_the_run_forks_does_not_keep_a_store_process_alive(tmp_path: Path) -> None:
    """A plugin's process pool forks the run (multiprocessing's default on Linux): its
    workers inherited the run's end of each store's socket, so a store's process never saw
    the end of it at the close, and was killed after EXIT_WAIT_S instead of ending."""
    import multiprocessing

    async def scenario() -> int | None:
        worker = ProcessWorker(tmp_path / "s.db", "FULL")
        await worker.call(DurableStore.open)
        forked = multiprocessing.get_context("fork").Process(target=time.sleep, args=(GUARD_S,))
        forked.start()
        try:
            await worker.call(DurableStore.close)
            await worker.close()
        finally:
            forked.kill()
            forked.join()
        assert worker._process is not None
        return worker._process.returncode

    assert asyncio.run(asyncio.wait_for(scenario(), GUARD_S)) == 0  # not -9


def test_a_store_process_imports_the_runs_schnitzel_not_the_working_directorys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m` puts the working directory first on `sys.path`: a run started in a folder
    holding another `schnitzel` (a checkout of another version) had its stores run that
    one, or fail to start with its error."""
    other = tmp_path / "schnitzel"
    other.mkdir()
    (other / "__init__.py").write_text("raise ImportError('the working directory schnitzel')\n")
    monkeypatch.chdir(tmp_path)

    async def scenario() -> None:
        worker = ProcessWorker(tmp_path / "s.db", "FULL")
        await worker.call(DurableStore.open)
        await worker.call(DurableStore.close)
        await worker.close()

    asyncio.run(asyncio.wait_for(scenario(), GUARD_S))


def test_a_stop_does_not_wait_for_commits_a_dead_store_process_can_never_make(
    tmp_path: Path,
) -> None:
    """The stop waited out its store timeouts (a flush, then the committer's retries: 10 s
    of the 17 a run took to stop after its store's process was killed) for commits that
    could never happen."""
    from schnitzel.contract.packet import StreamPacket
    from tests.runtime.test_parking_model import make_inbox

    async def scenario() -> None:
        inbox = make_inbox(tmp_path / "d.db")
        await inbox.open()
        assert inbox.worker._process is not None  # type: ignore[attr-defined]
        os.kill(inbox.worker._process.pid, signal.SIGKILL)  # type: ignore[attr-defined]
        packets = [StreamPacket.new("sensor", "m", n, {"n": n}) for n in range(3)]
        commit = await inbox.admit(packets)
        assert commit is not None
        hour = 3600.0  # as long as a full disk may be waited for: never, here
        assert await inbox.flush(hour) is False
        assert commit.done() and commit.result() is False  # its producer was told
        assert inbox.metrics.dropped == {"shutdown": 3}  # refused once the commit failed
        assert await inbox.shutdown(hour) == 0  # nothing left to refuse, nor to close
        assert "killed by signal 9" in inbox.stats.last_error

    asyncio.run(asyncio.wait_for(scenario(), GUARD_S))


def test_parked_packets_asked_for_before_the_store_is_open_are_refused_as_not_open_yet(
    tmp_path: Path,
) -> None:
    """Its process starting (0.1 to 0.3 s, more on a busy box), a store is not open yet when
    the control socket already answers: `ctl parked` said the store "is closed"."""
    from schnitzel.durable.parking import Selection
    from tests.runtime.test_parking_model import make_inbox

    async def scenario() -> None:
        inbox = make_inbox(tmp_path / "p.db")
        with pytest.raises(RuntimeError, match=r"is not open yet \(the run is starting\)"):
            await inbox.list_parked()
        with pytest.raises(RuntimeError, match=r"is not open yet \(the run is starting\)"):
            await inbox.change_parked("drop", Selection(everything=True))
        await inbox.open()
        assert await inbox.list_parked() == []
        await inbox.shutdown()
        with pytest.raises(RuntimeError, match=r"is closed \(the run is ending\)"):
            await inbox.list_parked()

    asyncio.run(asyncio.wait_for(scenario(), GUARD_S))
