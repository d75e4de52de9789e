"""A damaged durable store is never a healthy empty store.

Each reproduction of issue 13 §1: a real `schnitzel run` leaves a 3,000-packet backlog toward
a backend that is down, is killed with `kill -9`, the store's files are damaged on disk, and
a second run delivers to a live backend. What arrived plus what is reported lost must be
exactly what was emitted, the lost range must name exactly the packets that did not arrive,
and the operator is told: run status `degraded`, node health `degraded` with the reason, an
error event (in the log), and `durable.lost` in the report."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from schnitzel.durable.rows import live_packets
from tests.http_backend import LoopbackBackend
from tests.logged_run import SCHNITZEL, LoggedRun, next_log
from tests.runtime.harness import HEADER

BACKLOG = 3000
MARK = "abcdefghijklmnop"
"""Every payload carries it, so a test can find a stored body in the file."""


def write_graph(tmp_path: Path, url: str, count: int) -> Path:
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        HEADER
        + f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: {count}, payload: {{m: {MARK}}}}}}}
  - id: out
    kind: sink
    plugin: http
    config: {{url: "{url}", batch_max: 64, retry_max_s: 0.2}}
    inbox: {{max: 256, durable: {{path: state/out.db}}}}
edges:
  - {{from: src, to: out}}
"""
    )
    return graph


def start(graph: Path, *extra: str) -> LoggedRun:
    """`schnitzel run`, its log in `run-<n>.log` beside the graph (a run retrying a backend
    that is down logs on; a pipe read only at the end would fill and block it)."""
    return LoggedRun(
        [*SCHNITZEL, "run", str(graph), "--state-dir", str(graph.parent / "run"), *extra],
        log=next_log(graph.parent),
        cwd=graph.parent,
    )


def stored(store: Path) -> int:
    """Packets in the store, read as another process would (0 while it does not exist)."""
    if not store.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
            return len(list(live_packets(db)))
    except sqlite3.OperationalError:  # not created yet
        return 0


def leave_backlog_and_kill(tmp_path: Path, backend: LoopbackBackend) -> Path:
    """A run that committed BACKLOG packets toward a backend that is down, killed -9."""
    graph = write_graph(tmp_path, backend.url, BACKLOG)
    store = tmp_path / "state" / "out.db"
    process = start(graph)
    try:
        waited = time.monotonic()
        while stored(store) < BACKLOG:  # the guard only stops a hang
            assert process.poll() is None, process.log_tail()
            assert time.monotonic() - waited < 60, "the backlog was never committed"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    assert stored(store) == BACKLOG
    return store


def deliver(tmp_path: Path, backend: LoopbackBackend) -> tuple[dict[str, Any], str]:
    """A second run against the live backend; its report and its log."""
    graph = write_graph(tmp_path, backend.url, 0)
    report = tmp_path / "report.json"
    process = start(graph, "--report-json", str(report), "--log-format", "json")
    process.finish(120)
    result = json.loads(report.read_text())
    # Exit 0 for an ok run, 4 for a degraded one (a store that lost or quarantined rows).
    wanted = {"ok": 0, "degraded": 4}[result["status"]]
    assert process.returncode == wanted, process.log_tail()
    return result, process.log.read_text(errors="replace")


def arrived(backend: LoopbackBackend) -> set[int]:
    """Packet seqs the backend accepted."""
    return {int(packet["seq"]) for packet in backend.packets()}


def flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as file:
        file.seek(offset)
        byte = file.read(1)
        file.seek(offset)
        file.write(bytes([byte[0] ^ 0xFF]))


def damage_the_wal_mid_file(store: Path) -> None:
    wal = store.with_name(store.name + "-wal")
    flip_byte(wal, wal.stat().st_size // 2)


def delete_the_wal(store: Path) -> None:
    store.with_name(store.name + "-wal").unlink()


def truncate_the_file(store: Path) -> None:
    os.truncate(store, 0)


def delete_the_file(store: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        store.with_name(store.name + suffix).unlink(missing_ok=True)


@pytest.fixture
def backend() -> Any:
    backend = LoopbackBackend().start()
    backend.stop()  # down while the backlog builds up; the same port later, held meanwhile
    yield backend
    backend.close()


@pytest.mark.parametrize(
    "damage",
    [damage_the_wal_mid_file, delete_the_wal, truncate_the_file, delete_the_file],
    ids=["flipped-byte-mid-wal", "wal-deleted", "file-truncated-to-0", "files-deleted"],
)
def test_rows_a_damaged_store_lost_are_reported_with_count_and_range(
    tmp_path: Path, backend: LoopbackBackend, damage: Any
) -> None:
    store = leave_backlog_and_kill(tmp_path, backend)
    damage(store)
    backend.start()
    report, log = deliver(tmp_path, backend)
    out = report["nodes"]["out"]
    lost = out["durable"]["lost"]
    got = arrived(backend)
    assert lost is not None and lost["count"] > 0, f"nothing reported lost; {len(got)} arrived"
    assert len(got) + lost["count"] == BACKLOG  # every packet arrived or is counted lost
    # store seq n holds packet seq n - 1: the range names exactly the packets that are gone
    gone = set(range(BACKLOG)) - got
    assert gone == set(range(lost["first_seq"] - 1, lost["last_seq"]))
    assert report["status"] == "degraded"
    assert out["health"] == "degraded" and f"{lost['count']} packets lost" in out["health_reason"]
    errors = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(
        e.get("level") == "error" and f"{lost['count']} packets lost" in e.get("msg", "")
        for e in errors
    ), log[-2000:]
    print(f"{damage.__name__}: {len(got)} arrived, {lost['count']} lost: {lost['cause']}")


def test_a_payload_changed_on_disk_is_quarantined_never_delivered(
    tmp_path: Path, backend: LoopbackBackend
) -> None:
    store = leave_backlog_and_kill(tmp_path, backend)
    with closing(sqlite3.connect(store)) as db:  # move the WAL into the file, as a close would
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = store.read_bytes()
    middle = data.index(MARK.encode(), len(data) // 2)
    flip_byte(store, middle + 3)  # still valid JSON and a valid packet: only the checksum knows
    backend.start()
    report, _log = deliver(tmp_path, backend)
    out = report["nodes"]["out"]
    assert all(p["payload"]["m"] == MARK for p in backend.packets())  # none delivered changed
    with closing(sqlite3.connect(store)) as db:
        kept = db.execute("SELECT seq, coalesce(last, seq), packets FROM quarantine").fetchall()
        left = db.execute("SELECT count(*) FROM packets").fetchone()[0]
    assert len(kept) == 1 and left == 0  # kept aside for inspection, the backlog delivered
    # The changed byte damaged its whole batch row: every packet of it is counted, exactly
    # those are missing (store seq n holds packet seq n - 1), nothing else.
    first, last, count = kept[0]
    assert count == last - first + 1
    assert set(range(BACKLOG)) - arrived(backend) == set(range(first - 1, last))
    assert out["durable"]["rows_quarantined"] == count and out["durable"]["lost"] is None
    assert out["dropped_by_reason"] == {"corrupt": count}
    assert "does not match its checksum" in out["recent_errors"][0]["message"]
    assert report["status"] == "degraded" and out["health"] == "degraded"


@pytest.mark.slow  # a writing process killed with kill -9
def test_an_undamaged_store_after_kill_9_reports_nothing_lost(
    tmp_path: Path, backend: LoopbackBackend
) -> None:
    """The control: the same kill -9 without damage delivers everything, status ok."""
    leave_backlog_and_kill(tmp_path, backend)
    backend.start()
    report, _log = deliver(tmp_path, backend)
    out = report["nodes"]["out"]
    assert arrived(backend) == set(range(BACKLOG))
    assert out["durable"]["lost"] is None and out["durable"]["rows_quarantined"] == 0
    assert report["status"] == "ok"
