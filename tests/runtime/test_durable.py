"""Durable inboxes against real SQLite files: delivery, replay, limits, damage, full store."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import zlib
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from schnitzel.durable.rows import live_packets
from schnitzel.durable.store import DurableStore
from schnitzel.errors import RuntimeStartError
from schnitzel.runtime import Runtime
from schnitzel.runtime.durable_inbox import DurableInbox
from schnitzel.runtime.inbox import InFlight
from schnitzel.runtime.metrics import NodeMetrics
from schnitzel.validate import validate_text
from tests.runtime import plugins
from tests.runtime.harness import HEADER, assert_counts_add_up, graph_from, run


def graph(
    source: str = "{count: 300}",
    sink: str = "tests.runtime.plugins:Recorder",
    inbox: str = "{durable: {path: state/out.db}}",
    extra: str = "",
) -> str:
    return f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {source}}}
  - {{id: out, kind: sink, plugin: "{sink}", inbox: {inbox}{extra}}}
edges:
  - {{from: src, to: out}}
"""


def rows(path: Path) -> list[int]:
    """Seqs of the source packets left in a store file."""
    with closing(sqlite3.connect(path)) as db:
        bodies = [body for _seq, _at, body in live_packets(db)]
    return [json.loads(body)["seq"] for body in bodies]


def quarantined_rows(path: Path) -> list[int]:
    """Store seqs of the rows kept aside in a store's quarantine table."""
    with closing(sqlite3.connect(path)) as db:
        return [seq for (seq,) in db.execute("SELECT seq FROM quarantine ORDER BY seq")]


def seqs(node_id: str = "out") -> list[tuple[str, int]]:
    return [(p.source_id, p.seq) for p in plugins.RECORDS[node_id]]


def test_every_packet_is_delivered_in_order_and_the_store_ends_empty(tmp_path: Path) -> None:
    g = graph_from(tmp_path, graph())
    report = run(g, tmp_path)
    durable = report["nodes"]["out"]["durable"]
    assert report["totals"]["delivered"] == 300
    assert seqs() == [("src", n) for n in range(300)]
    assert (durable["accepted"], durable["settled"], durable["backlog"]) == (300, 300, 0)
    assert durable["replayed"] == 0 and durable["eta_s"] == 0.0
    assert rows(tmp_path / "state" / "out.db") == []
    assert_counts_add_up(report, g)


def test_a_backlog_stays_on_disk_across_a_stop_and_replays_first_in_order(
    tmp_path: Path,
) -> None:
    plugins.DOWN.add("out")
    g = graph_from(tmp_path, graph(sink="tests.runtime.plugins:Backend"))
    # Stopped once all 300 are made (a duration might end it first on a busy machine).
    first = run(g, tmp_path, max_packets=300, drain_timeout_s=10)
    out = first["nodes"]["out"]
    assert out["out"] == 0 and out["errors"] == 0 and out["dropped"] == 0
    assert out["durable"]["backlog"] == 300 and out["queue_depth"] == 300
    assert len(rows(tmp_path / "state" / "out.db")) == 300
    assert_counts_add_up(first, g)

    plugins.DOWN.clear()
    g = graph_from(
        tmp_path, graph("{count: 50, source_id: later}", "tests.runtime.plugins:Backend")
    )
    second = run(g, tmp_path)
    assert seqs() == [("src", n) for n in range(300)] + [("later", n) for n in range(50)]
    assert second["nodes"]["out"]["durable"]["replayed"] == 300
    assert second["totals"]["delivered"] == 350
    assert rows(tmp_path / "state" / "out.db") == []
    assert_counts_add_up(second, g)


def test_a_small_memory_window_reads_the_backlog_back_in_order(tmp_path: Path) -> None:
    g = graph_from(
        tmp_path,
        graph("{count: 2000}", inbox="{max: 4, durable: {path: state/out.db}}"),
    )
    report = run(g, tmp_path)
    assert seqs() == [("src", n) for n in range(2000)]
    assert report["nodes"]["out"]["durable"]["settled"] == 2000
    assert_counts_add_up(report, g)


def test_block_holds_producers_at_the_packet_limit(tmp_path: Path) -> None:
    inbox = "{max: 8, durable: {path: state/out.db, max_packets: 50}}"
    g = graph_from(tmp_path, graph("{count: 400}", inbox=inbox))
    report = run(g, tmp_path)
    out = report["nodes"]["out"]
    assert report["totals"]["delivered"] == 400 and out["dropped"] == 0
    assert out["queue_depth_max"] <= 50
    assert seqs() == [("src", n) for n in range(400)]
    assert_counts_add_up(report, g)


@pytest.mark.parametrize("overflow", ["drop_new", "drop_oldest"])
def test_drop_policies_count_every_packet_they_drop_at_the_limit(
    tmp_path: Path, overflow: str
) -> None:
    plugins.DOWN.add("out")
    inbox = f"{{max: 8, overflow: {overflow}, durable: {{path: state/out.db, max_packets: 20}}}}"
    g = graph_from(tmp_path, graph("{count: 100}", "tests.runtime.plugins:Backend", inbox))
    first = run(g, tmp_path, max_packets=100, drain_timeout_s=10)  # all made, then stop
    out = first["nodes"]["out"]
    reason = "inbox_full" if overflow == "drop_new" else "displaced"
    assert out["dropped_by_reason"] == {reason: 80}
    left = rows(tmp_path / "state" / "out.db")
    assert len(left) == 20 and out["durable"]["backlog"] == 20
    assert_counts_add_up(first, g)

    plugins.DOWN.clear()
    g = graph_from(tmp_path, graph("{count: 0}", "tests.runtime.plugins:Backend", inbox))
    run(g, tmp_path)
    kept = [seq for _source, seq in seqs()]
    assert kept == sorted(kept) and len(kept) == 20
    if overflow == "drop_new":
        assert kept == list(range(20))  # the oldest stay
    else:
        assert kept == list(range(80, 100))  # the newest stay


def test_a_packet_failing_under_on_error_stop_stays_for_the_next_run(tmp_path: Path) -> None:
    g = graph_from(
        tmp_path,
        graph(
            "{count: 20}",
            "tests.runtime.plugins:Recorder",
            "{durable: {path: state/out.db}}",
            ", config: {every: 5}, on_error: stop",
        ),
    )
    first = run(g, tmp_path)
    assert first["stop_reason"] == "error"
    assert 0 in rows(tmp_path / "state" / "out.db")  # seq 0 failed: kept, not deleted

    plugins.reset()
    g = graph_from(tmp_path, graph("{count: 0}"))
    run(g, tmp_path)
    assert ("src", 0) in seqs()


def _corrupt_store(tmp_path: Path, how: str) -> bytes:
    store = tmp_path / "state" / "out.db"
    store.parent.mkdir(parents=True)
    if how == "garbage":
        store.write_bytes(b"this is not a database, it is a shopping list\n" * 200)
    else:
        with closing(sqlite3.connect(store)) as db:
            db.execute("CREATE TABLE invoices (n INTEGER)")
            if how == "another versioned application":
                db.execute("PRAGMA user_version=3")
    return store.read_bytes()


@pytest.mark.parametrize("how", ["garbage", "another application", "another versioned application"])
def test_an_unreadable_store_is_quarantined_beside_itself_never_emptied(
    tmp_path: Path, how: str
) -> None:
    original = _corrupt_store(tmp_path, how)
    g = graph_from(tmp_path, graph("{count: 30}"))
    report = run(g, tmp_path)
    durable = report["nodes"]["out"]["durable"]
    moved = Path(durable["quarantined"])
    assert moved.parent == tmp_path / "state" and moved.name.startswith("out.db.corrupt-")
    assert moved.read_bytes() == original
    assert report["totals"]["delivered"] == 30  # a fresh store took its place
    assert "moved to" in durable["last_error"]


def test_a_store_that_cannot_be_created_refuses_to_start_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a directory should be")
    g = graph_from(tmp_path, graph(inbox="{durable: {path: blocker/out.db}}"))
    with pytest.raises(RuntimeStartError, match=r"durable store '.*blocker/out\.db'"):
        run(g, tmp_path)


def test_a_full_store_holds_producers_back_and_loses_nothing(tmp_path: Path) -> None:
    """SQLite's own page limit (`max_page_count`) fails commits with SQLITE_FULL, as a full
    file system does. The inbox must hold producers back, count the errors, and resume once
    there is space again."""
    plugins.DOWN.add("out")
    blob = "x" * 2000
    g = graph_from(
        tmp_path,
        graph(f"{{count: null, payload: {{blob: {blob}}}}}", "tests.runtime.plugins:Backend"),
    )
    runtime = Runtime(g, state_dir=tmp_path / "state")

    async def scenario() -> dict[str, Any]:
        task = asyncio.create_task(runtime.run(max_packets=3000))
        inbox = runtime.nodes["out"].inbox
        assert isinstance(inbox, DurableInbox)
        while not inbox.stats.accepted:
            await asyncio.sleep(0.005)
        await inbox.worker.call(DurableStore.query, partial(limit_pages, extra=20))
        while inbox.stats.disk_errors < 3:
            await asyncio.sleep(0.01)
        emitted = runtime.nodes["src"].metrics.emitted
        await asyncio.sleep(0.3)
        assert runtime.nodes["src"].metrics.emitted - emitted <= 2 * 256  # held back
        assert inbox.backlog < 3000
        await inbox.worker.call(DurableStore.query, partial(limit_pages, extra=None))
        plugins.DOWN.clear()
        return await asyncio.wait_for(task, 60)

    report = asyncio.run(asyncio.wait_for(scenario(), 90))
    out = report["nodes"]["out"]
    assert report["totals"]["emitted"] == report["totals"]["delivered"] == 3000
    assert out["durable"]["disk_errors"] >= 3 and out["dropped"] == 0
    assert "full" in out["durable"]["last_error"]
    assert seqs() == [("src", n) for n in range(3000)]
    assert_counts_add_up(report, g)


def limit_pages(db: sqlite3.Connection, extra: int | None) -> None:
    """Let the store's file grow by `extra` pages at most (None: no limit), where it lives."""
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    top = 1073741823 if extra is None else pages + extra
    db.execute(f"PRAGMA max_page_count={top}")


def test_drop_oldest_displaces_queued_packets_in_memory_and_on_disk(tmp_path: Path) -> None:
    """Packets arrive a few at a time, so the oldest to go are already queued: in the memory
    window and beyond it on disk. The batch the stalled sink holds is not displaced."""
    plugins.DOWN.add("out")
    inbox = "{max: 4, overflow: drop_oldest, durable: {path: state/out.db, max_packets: 20}}"
    source = "{count: 100, rate_hz: 2000}"
    g = graph_from(tmp_path, graph(source, "tests.runtime.plugins:Backend", inbox))
    first = run(g, tmp_path, max_packets=100, drain_timeout_s=10)  # all made, then stop
    out = first["nodes"]["out"]
    assert out["dropped_by_reason"] == {"displaced": 80}
    assert len(rows(tmp_path / "state" / "out.db")) == 20
    assert_counts_add_up(first, g)

    plugins.DOWN.clear()
    g = graph_from(tmp_path, graph("{count: 0}", "tests.runtime.plugins:Backend", inbox))
    second = run(g, tmp_path)
    kept = [seq for _source, seq in seqs()]
    assert len(kept) == 20 and kept[-1] == 99 and kept[1:] == sorted(kept[1:])
    assert second["nodes"]["out"]["durable"]["backlog"] == 0


def test_a_node_failing_downstream_leaves_the_durable_backlog_upstream_intact(
    tmp_path: Path,
) -> None:
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 500}}
  - {id: mid, kind: transform, plugin: passthrough, inbox: {durable: {path: state/mid.db}}}
  - {id: bad, kind: transform, plugin: "tests.runtime.plugins:Escapes"}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:Recorder"}
edges:
  - {from: src, to: mid}
  - {from: mid, to: bad}
  - {from: bad, to: out}
"""
    first = run(graph_from(tmp_path, body), tmp_path)
    assert first["stop_reason"] == "error"
    accepted = first["nodes"]["mid"]["durable"]["accepted"]
    assert accepted >= 256  # at least the batch the failed node took
    assert rows(tmp_path / "state" / "mid.db") == list(range(accepted))  # none deleted

    fixed = body.replace('"tests.runtime.plugins:Escapes"', "passthrough")
    second = run(graph_from(tmp_path, fixed.replace("count: 500", "count: 0")), tmp_path)
    assert sorted(seq for _source, seq in seqs()) == list(range(accepted))
    assert second["nodes"]["mid"]["durable"]["replayed"] == accepted


def test_a_durable_transform_keeps_rows_until_its_output_is_delivered(tmp_path: Path) -> None:
    """Its output goes to an in-memory inbox whose sink is down: when the stop gives up on
    that inbox, the rows are still in the transform's store, so nothing is lost."""
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 200, rate_hz: 2000}}
  - {id: mid, kind: transform, plugin: passthrough, inbox: {durable: {path: state/mid.db}}}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:Backend", inbox: {max: 16}}
edges:
  - {from: src, to: mid}
  - {from: mid, to: out}
"""
    plugins.DOWN.add("out")
    first = run(graph_from(tmp_path, body), tmp_path, max_packets=200, drain_timeout_s=0.5)
    assert first["totals"]["delivered"] == 0
    assert len(rows(tmp_path / "state" / "mid.db")) == 200
    assert first["nodes"]["mid"]["durable"]["unconfirmed"] > 0

    plugins.DOWN.clear()
    run(graph_from(tmp_path, body.replace("count: 200,", "count: 0,")), tmp_path)
    assert sorted({seq for _source, seq in seqs()}) == list(range(200))
    assert rows(tmp_path / "state" / "mid.db") == []


def test_rows_that_no_longer_decode_are_quarantined_and_free_their_space(tmp_path: Path) -> None:
    inbox = "{durable: {path: state/out.db, max_packets: 10}}"
    run(graph_from(tmp_path, graph("{count: 0}", inbox=inbox)), tmp_path)
    body = b"{damaged"  # checksum right, contents not a packet: written so by someone else
    with closing(sqlite3.connect(tmp_path / "state" / "out.db")) as db:
        db.executemany(
            "INSERT INTO packets (seq, enqueued, body, checksum) VALUES (?, ?, ?, ?)",
            [(n, 0.0, body, zlib.adler32(body)) for n in range(1, 11)],
        )
        db.commit()
    g = graph_from(tmp_path, graph("{count: 5}", inbox=inbox))
    report = run(g, tmp_path)  # producers waited for the space the bad rows held
    out = report["nodes"]["out"]
    assert report["totals"]["delivered"] == 5 and out["dropped_by_reason"] == {"corrupt": 10}
    assert "row 1 of" in out["recent_errors"][0]["message"]
    assert out["durable"]["rows_quarantined"] == 10 and report["status"] == "degraded"
    assert quarantined_rows(tmp_path / "state" / "out.db") == list(range(1, 11))
    assert_counts_add_up(report, g)


@pytest.mark.parametrize("second", ["same path", "symlinked file"])
def test_two_runs_cannot_share_one_store(tmp_path: Path, second: str) -> None:
    plugins.DOWN.add("out")
    g = graph_from(tmp_path, graph("{count: null}", "tests.runtime.plugins:Backend"))
    holder = Runtime(g, state_dir=tmp_path / "state")
    other = tmp_path
    if second == "symlinked file":  # stfile/out.db -> ../state/out.db (issue 13 §2)
        other = tmp_path / "other"
        (other / "stfile").mkdir(parents=True)
        (other / "stfile" / "out.db").symlink_to(tmp_path / "state" / "out.db")
    inbox = (
        "{durable: {path: state/out.db}}"
        if other == tmp_path
        else "{durable: {path: stfile/out.db}}"
    )
    g2 = graph_from(other, graph("{count: null}", "tests.runtime.plugins:Backend", inbox))

    async def both() -> None:
        task = asyncio.create_task(holder.run())
        while not holder.nodes["src"].metrics.emitted:
            await asyncio.sleep(0.01)
        # The holder runs in this process: the refusal says so (another process's pid
        # would be named as "another running schnitzel")
        this = rf"already in use by this run \(this process, pid {os.getpid()}, holds"
        with pytest.raises(RuntimeStartError, match=this):
            await Runtime(g2, state_dir=other / "state2").run()
        holder.force_stop()
        await task

    asyncio.run(asyncio.wait_for(both(), 60))


TWO_ON_ONE = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 30}}
  - {id: up, kind: sink, plugin: "null", inbox: {durable: {path: st/out.db}}}
  - {id: up2, kind: sink, plugin: "null", inbox: {durable: {path: stlink/out.db}}}
edges:
  - {from: src, to: up}
  - {from: src, to: up2}
"""


def test_two_inboxes_on_one_store_through_a_symlinked_directory_are_refused(
    tmp_path: Path,
) -> None:
    (tmp_path / "st").mkdir()
    (tmp_path / "stlink").symlink_to(tmp_path / "st", target_is_directory=True)
    path = tmp_path / "graph.yaml"
    path.write_text(HEADER + TWO_ON_ONE)
    report = validate_text(path.read_text(), source=str(path), path=path).report
    assert [(p.code, p.where.node) for p in report.problems] == [("shared-durable-path", "up2")]


def test_a_store_reached_twice_by_one_run_is_refused_as_this_runs_own(tmp_path: Path) -> None:
    # The link made after validation (validation would refuse it, as above): the run is
    # told the store is its own, not "another running schnitzel" with its own pid
    g = graph_from(tmp_path, TWO_ON_ONE)
    (tmp_path / "st").mkdir()
    (tmp_path / "stlink").symlink_to(tmp_path / "st", target_is_directory=True)
    this = rf"stlink/out.db' is already in use by this run \(this process, pid {os.getpid()},"
    with pytest.raises(RuntimeStartError, match=this):
        run(g, tmp_path)


def test_a_quarantined_store_makes_the_run_degraded(tmp_path: Path) -> None:
    _corrupt_store(tmp_path, "garbage")
    report = run(graph_from(tmp_path, graph("{count: 3}")), tmp_path)
    assert report["status"] == "degraded"
    out = next(n for n in report["nodes"].values() if "durable" in n)
    assert out["health"] == "degraded"
    assert out["health_reason"].startswith("durable store was unreadable: moved to ")


def test_the_health_stops_naming_quarantined_packets_once_an_operator_requeued_them(
    tmp_path: Path,
) -> None:
    """Packets this run quarantined keep the node degraded until they are requeued (`schnitzel
    ctl quarantine requeue`); the health said so for ever, whatever the operator did."""
    inbox = DurableInbox(
        16, "block", NodeMetrics(), InFlight(), tmp_path / "s.db", 1 << 30, None, "FULL", print
    )
    inbox.stats.rows_quarantined = 7
    assert inbox.problem().startswith("durable store: 7 packets of damaged rows quarantined")
    assert "schnitzel ctl quarantine list NODE" in inbox.problem()
    inbox.stats.requeued_from_quarantine = 5
    assert inbox.problem().startswith("durable store: 2 packets")
    inbox.stats.requeued_from_quarantine = 9  # older entries went back too
    assert inbox.problem() == ""
