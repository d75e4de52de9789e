"""`schnitzel state list` and `schnitzel state prune` on a state directory real runs filled.

Prune removes only what is stale: the checkpoint of an input file that is gone (not one whose
file was rotated beside it, nor one whose file is there), a damaged checkpoint moved aside and
a control socket nobody listens on; it names each file it removes. It never removes a durable
store holding packets, the socket of a runtime that listens, or anything written more
recently than `--older-than`."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.control.harness import socket_dir


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with socket_dir() as directory:
        yield directory


WEEK_AGO = time.time() - 8 * 86400


def fill_state_dir(tmp_path: Path, state: Path | None = None) -> tuple[Path, dict[str, Path]]:
    """Two real runs: three `jsonl` sources checkpoint their input files, and an `http` sink
    whose backend is down keeps its packets in a durable store inside the state dir (by
    default `tmp_path / "state"`)."""
    state = state or tmp_path / "state"
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.jsonl").write_text('{"n": 1}\n{"n": 2}\n')
    readers = tmp_path / "readers.yaml"
    readers.write_text(
        "version: 2\nnodes:\n"
        + "".join(
            f"  - {{id: {n}, kind: source, plugin: jsonl, config: {{path: {n}.jsonl}}}}\n"
            for n in "abc"
        )
        + '  - {id: out, kind: sink, plugin: "null"}\n'
        + "edges: [{from: a, to: out}, {from: b, to: out}, {from: c, to: out}]\n"
    )
    done = run_cli("run", str(readers), "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    store = state / "backlog" / "up.db"
    uplink = tmp_path / "uplink.yaml"
    uplink.write_text(
        "version: 2\nnodes:\n"
        "  - {id: src, kind: source, plugin: synthetic, config: {count: 20}}\n"
        "  - id: up\n    kind: sink\n    plugin: http\n"
        '    config: {url: "http://127.0.0.1:9/ingest"}\n'  # nothing listens on port 9
        f"    inbox: {{durable: {{path: '{store}'}}}}\n"
        "edges: [{from: src, to: up}]\n"
    )
    report = tmp_path / "report.json"
    args = ("--duration", "1", "--report-json", str(report), "--no-control-socket")
    done = run_cli("run", str(uplink), "--state-dir", str(state), *args)
    assert json.loads(report.read_text())["nodes"]["up"]["durable"]["backlog"] == 20, done.stderr
    checkpoints = {p.name.split("-")[0]: p for p in (state / "checkpoints").glob("*.json")}
    assert set(checkpoints) == {"a", "b", "c"}
    return state, {**checkpoints, "store": store}


def leave_socket(path: Path, listening: bool) -> socket.socket:
    """A unix socket file as a runtime leaves it: listening, or left by one killed -9."""
    path.parent.mkdir(parents=True, exist_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    if listening:
        server.listen()
    else:
        server.close()
    os.utime(path, (WEEK_AGO, WEEK_AGO))
    return server


def lock_of(checkpoint: Path) -> Path:
    """The lock a `jsonl` source takes beside its checkpoint (plugins/io/checkpoint_lock.py)."""
    return checkpoint.with_name(checkpoint.name + ".lock")


def listed(state: Path, *options: str) -> dict[str, dict[str, Any]]:
    done = run_cli("state", "list", "--state-dir", str(state), "--json", *options)
    assert done.returncode == 0, done.stderr
    return {e["path"]: e for e in json.loads(done.stdout)["entries"]}


def test_prune_removes_only_what_is_stale_and_names_it(tmp_path: Path, short_dir: Path) -> None:
    state, files = fill_state_dir(tmp_path, short_dir / "state")  # unix socket paths are short
    (tmp_path / "a.jsonl").unlink()  # a's input is gone
    (tmp_path / "c.jsonl").rename(tmp_path / "c.jsonl.1")  # c's was rotated: still needed
    damaged = files["a"].with_name(files["a"].name + ".corrupt-20260101T000000Z")
    damaged.write_text("{half")
    dead = state / "control" / "killed-0123abcd.sock"
    live = state / "control" / "running-4567cdef.sock"
    leave_socket(dead, listening=False)
    server = leave_socket(live, listening=True)
    held = os.open(lock_of(files["c"]), os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # as a running jsonl source holds it
    for path in (files["a"], files["b"], files["c"], damaged):
        os.utime(path, (WEEK_AGO, WEEK_AGO))
    try:
        entries = listed(state)
        assert entries[str(files["a"])]["stale"] == "its input file is gone"
        assert entries[str(files["a"])]["about"].endswith("a.jsonl gone")
        assert entries[str(files["b"])]["stale"] is None
        assert entries[str(files["c"])]["stale"] is None  # c.jsonl.1 is beside it
        assert entries[str(files["store"])]["kind"] == "durable-store"
        assert entries[str(dead)]["stale"] == "nobody listens"
        assert entries[str(live)]["stale"] is None
        assert entries[str(lock_of(files["a"]))]["about"] == "of a stale checkpoint"
        assert entries[str(lock_of(files["c"]))]["about"] == "a run holds it"

        done = run_cli("state", "prune", "--state-dir", str(state))
        assert done.returncode == 0, done.stderr
        for path in (files["a"], lock_of(files["a"]), damaged, dead):
            assert f"removed {path} (" in done.stdout
            assert not path.exists()
        assert "4 removed" in done.stdout
        kept = (files["b"], files["c"], lock_of(files["b"]), lock_of(files["c"]), live)
        for path in (*kept, files["store"]):
            assert path.exists()  # its input is there, rotated, held, a backlog, a runtime
        assert listed(state)[str(files["store"])]["size"] > 0
    finally:
        server.close()
        os.close(held)


def test_prune_keeps_what_was_written_more_recently_than_older_than(tmp_path: Path) -> None:
    state, files = fill_state_dir(tmp_path)
    (tmp_path / "a.jsonl").unlink()
    entries = listed(state)
    assert entries[str(files["a"])]["stale"] is None  # gone, but checkpointed just now
    done = run_cli("state", "prune", "--state-dir", str(state))
    assert "0 removed" in done.stdout and files["a"].exists()
    done = run_cli("state", "prune", "--state-dir", str(state), "--older-than", "0")
    assert f"removed {files['a']} (checkpoint: its input file is gone)" in done.stdout
    assert not files["a"].exists() and files["b"].exists() and files["store"].exists()


def test_a_bad_age_is_a_usage_error_that_shows_the_form(tmp_path: Path) -> None:
    done = run_cli("state", "prune", "--state-dir", str(tmp_path), "--older-than", "soon")
    assert done.returncode == 2
    assert "30d, 12h, 15m, 90s or 0" in done.stderr


def test_list_in_text_says_what_each_file_is_and_what_prune_does(tmp_path: Path) -> None:
    state, files = fill_state_dir(tmp_path)
    (tmp_path / "a.jsonl").unlink()
    done = run_cli("state", "list", "--state-dir", str(state), "--older-than", "0")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    [a] = [line for line in lines if files["a"].name in line and "checkpoint-lock" not in line]
    assert "remove" in a and "its input file is gone" in a
    [lock] = [line for line in lines if f"{files['a'].name}.lock" in line]
    assert "remove" in lock and "of a stale checkpoint" in lock
    [store] = [line for line in lines if line.rstrip().endswith("never pruned)")]
    assert "durable-store" in store and "keep" in store
    assert "2 stale" in lines[-1]


def stale_checkpoint(state: Path, name: str, input_path: str) -> Path:
    """A `jsonl` checkpoint of `input_path`, not written for a week."""
    checkpoint = state / "checkpoints" / f"{name}-0123456789ab.json"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_text(json.dumps({"version": 2, "path": input_path, "offset": 0}))
    os.utime(checkpoint, (WEEK_AGO, WEEK_AGO))
    return checkpoint


def test_prune_keeps_a_checkpoint_a_running_source_holds_though_its_input_is_gone(
    tmp_path: Path,
) -> None:
    """A run reading (following) a file that was deleted still holds its checkpoint's lock:
    the checkpoint is its, and went with only the lock left."""
    from schnitzel.control.state_entries import prune, survey

    state = tmp_path / "state"
    checkpoint = stale_checkpoint(state, "a", str(tmp_path / "gone.jsonl"))
    held = os.open(lock_of(checkpoint), os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # as the running jsonl source holds it
    try:
        entries = {e.path: e for e in survey(state, 86400)}
        assert entries[checkpoint].stale is None, entries[checkpoint]
        prune(list(entries.values()))
        assert checkpoint.exists()
    finally:
        os.close(held)


def test_a_lock_a_run_takes_after_the_survey_is_not_removed_under_it(tmp_path: Path) -> None:
    """`prune` surveys, then removes: a run that took a stale lock in between held a lock on
    a file no longer there, and a second run made a new lock file, took it too, and both
    read and checkpointed the one input (what the lock exists to stop)."""
    from schnitzel.control.state_entries import prune, survey

    state = tmp_path / "state"
    lock = lock_of(stale_checkpoint(state, "a", str(tmp_path / "gone.jsonl")))
    lock.write_text("")
    os.utime(lock, (WEEK_AGO, WEEK_AGO))
    entries = survey(state, 86400)
    assert {e.path: e for e in entries}[lock].stale is not None  # nobody holds it: yet
    first = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a run starts: it takes the lock
    try:
        prune(entries)
        second = os.open(lock, os.O_RDWR | os.O_CREAT)  # a second run of the graph
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(second)
    finally:
        os.close(first)


def test_a_checkpoint_that_names_a_relative_path_is_kept(tmp_path: Path) -> None:
    """A checkpoint written by a run started with a relative graph path (`schnitzel run
    graph.yaml`) named its input relative to that run's directory: judged from prune's
    directory its input was 'gone', and the checkpoint of a file still there was removed."""
    from schnitzel.control.state_entries import survey

    state = tmp_path / "state"
    checkpoint = stale_checkpoint(state, "a", "in.jsonl")
    [entry] = [e for e in survey(state, 86400) if e.path == checkpoint]
    assert entry.stale is None, entry


def test_a_durable_store_moved_aside_inside_checkpoints_is_never_pruned(tmp_path: Path) -> None:
    """A store that SQLite could not read is renamed `<store>.corrupt-<time>` (with its
    -wal): its packets are the operator's to recover, wherever the store lives."""
    from schnitzel.control.state_entries import survey

    state = tmp_path / "state"
    aside = state / "checkpoints" / "up.db.corrupt-20260101T000000Z"
    aside.parent.mkdir(parents=True)
    for path in (aside, aside.with_name(aside.name + "-wal")):
        path.write_bytes(b"\x00garbage")  # its header is what was damaged
        os.utime(path, (WEEK_AGO, WEEK_AGO))
    entries = {e.path: e for e in survey(state, 86400)}
    assert entries[aside].stale is None, entries[aside]
    assert entries[aside.with_name(aside.name + "-wal")].stale is None


def test_a_jsonl_checkpoint_names_its_input_by_an_absolute_path(tmp_path: Path) -> None:
    """`schnitzel run graph.yaml` from the graph's directory: the checkpoint says where the
    input is from anywhere (prune runs from elsewhere: a timer, another shell)."""
    import subprocess

    from tests.conftest import SCHNITZEL

    (tmp_path / "in.jsonl").write_text('{"n": 1}\n')
    (tmp_path / "g.yaml").write_text(
        "version: 2\nnodes:\n"
        "  - {id: a, kind: source, plugin: jsonl, config: {path: in.jsonl}}\n"
        '  - {id: out, kind: sink, plugin: "null"}\n'
        "edges: [{from: a, to: out}]\n"
    )
    done = subprocess.run(
        [*SCHNITZEL, "run", "g.yaml", "--state-dir", "state", "--no-control-socket"],
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [checkpoint] = (tmp_path / "state" / "checkpoints").glob("*.json")
    named = Path(json.loads(checkpoint.read_text())["path"])
    assert named.is_absolute() and named.resolve() == (tmp_path / "in.jsonl").resolve()


def test_a_socket_a_new_runtime_binds_after_the_survey_is_not_removed(short_dir: Path) -> None:
    """A new run of the graph replaces the dead socket (same path) between prune's survey
    and its removal: the live runtime's socket went, and `ctl` could not reach it."""
    from schnitzel.control.state_entries import prune, survey

    state = short_dir / "state"
    path = state / "control" / "demo-0123abcd.sock"
    leave_socket(path, listening=False)
    entries = survey(state, 86400)
    assert {e.path: e for e in entries}[path].stale == "nobody listens"
    path.unlink()  # what a runtime starting does with a dead socket at its path
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    try:
        prune(entries)
        assert path.exists()
    finally:
        server.close()


def test_list_does_not_hang_on_a_fifo_in_the_state_dir(tmp_path: Path) -> None:
    """Every file was opened to look for a SQLite header: a named pipe's open waits for a
    writer, for ever, and `state list` (and prune) with it."""
    state = tmp_path / "state"
    state.mkdir()
    os.mkfifo(state / "pipe")
    import subprocess

    from tests.conftest import SCHNITZEL

    done = subprocess.run(  # a hang fails on the timeout, only against hanging
        [*SCHNITZEL, "state", "list", "--state-dir", str(state), "--json"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [entry] = json.loads(done.stdout)["entries"]
    assert (entry["kind"], entry["stale"]) == ("other", None)
