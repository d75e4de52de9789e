"""An operator recovers quarantined packets while the graph runs: `ctl quarantine list` shows a
durable node's entries as `schnitzel quarantine list` does, and `ctl quarantine requeue` has
the node's inbox put an entry's packets back through its own commit, so they reach the node
once more (new seqs, counted), while a damaged entry, an unknown one or a node without a
durable store is refused with the offline command's words, every attempt audited; a requeue
asked of a store that closes first is refused, and one cut off by a kill -9 is done by the
next start or not at all, never twice.

The store each test starts from (`quarantined_store`): entry 1 took store seqs 4-10 of a row
changed by hand (set aside at open: 7 packets, intact, payload n = 4..10), entry 2 is a row
whose body was changed (5 packets, damaged: never requeued).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from collections.abc import Coroutine
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from schnitzel import RuntimeControl
from schnitzel.control.actor import Actor
from schnitzel.durable.rows import live_packets
from schnitzel.durable.store import DurableStore
from schnitzel.errors import ControlError
from tests.control.harness import GUARD_S, serving, socket_dir
from tests.control.test_ctl_end_to_end import (
    ctl,
    ctl_json,
    start_run,
    until_answering,
    wait_for,
)
from tests.runtime import plugins
from tests.runtime.harness import assert_counts_add_up, graph_from, run
from tests.runtime.test_store_damaged_rows import change_one_byte, edited_by_hand
from tests.waits import until

LIVE = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {source_id: live, rate_hz: 50.0}}
  - id: out
    kind: sink
    plugin: tests.runtime.plugins:Recorder
    inbox: {durable: {path: state/out.db}}
edges:
  - {from: src, to: out}
"""
"""A live source (its packets' source_id `live`) into a durable sink: the requeued packets
are those of source `src`."""
LIVE_JSONL = LIVE.replace("tests.runtime.plugins:Recorder", "jsonl").replace(
    "inbox:", "config: {path: out/got.jsonl}\n    inbox:"
)
"""The same, its sink writing what it gets to out/got.jsonl (for a `schnitzel run`)."""
INTACT, DAMAGED = 1, 2
REQUEUED_NUMBERS = list(range(4, 11))
ME = Actor.local("test")


@pytest.fixture(autouse=True)
def _no_records_of_other_tests() -> None:
    plugins.reset()


def quarantined_store(path: Path) -> None:
    """Entry 1: 7 intact packets of a row set aside at open; entry 2: a damaged row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    edited_by_hand(
        path, [(1, 10), (11, 5)], "UPDATE packets SET last = 1000 WHERE seq = 1", settled=(1, 3)
    )
    store = DurableStore(path)
    store.open()  # sets rows 1-10 aside: entry 1
    store.close()
    change_one_byte(path, 11)
    store = DurableStore(path)
    store.open()
    store.read(100)  # finds row 11-15 damaged: entry 2
    store.close()


def entry_ids(path: Path) -> list[int]:
    with closing(sqlite3.connect(path)) as db:
        return [i for (i,) in db.execute("SELECT id FROM quarantine ORDER BY id")]


def requeued_seqs(path: Path) -> list[int]:
    """Store seqs of the backlog's packets of source `src` (the requeued ones), read from
    the file beside the running store (WAL: a reader never waits for it)."""
    with closing(sqlite3.connect(path)) as db:
        return [seq for seq, _at, body in live_packets(db) if b'"source_id":"src"' in body]


def delivered_numbers() -> list[int]:
    """Payload numbers of the packets of source `src` (the requeued ones) the sink got."""
    return sorted(p.payload["n"] for p in plugins.RECORDS["out"] if p.source_id == "src")


def test_list_then_requeue_delivers_the_entry_s_packets_once_more(tmp_path: Path) -> None:
    guarded(_list_then_requeue_delivers_the_entry_s_packets_once_more(tmp_path))


async def _list_then_requeue_delivers_the_entry_s_packets_once_more(tmp_path: Path) -> None:
    store = tmp_path / "state" / "out.db"
    quarantined_store(store)
    async with serving(tmp_path, LIVE) as served:
        control = served.control
        await _until_open(served.runtime)
        listed = await _ask(control, "quarantine", {})
        [(node, shown)] = listed["nodes"].items()
        assert (node, shown["store"]) == ("out", str(store))
        assert [(e["id"], e["seqs"], e["packets"], e["intact"]) for e in shown["entries"]] == [
            (INTACT, "4-10", 7, True),
            (DAMAGED, "11-15", 5, False),
        ]
        assert set(shown["entries"][0]) == {"id", "seqs", "packets", "intact", "at", "reason"}

        control.pause("out")  # so the requeued rows can be seen in the store
        done = await _ask(control, "requeue-quarantined", {"node": "out", "entries": [INTACT]})
        assert (done["requeued"], done["entries"], done["skipped"]) == (7, [INTACT], [])
        requeued = requeued_seqs(store)
        assert len(requeued) == 7 and requeued == list(range(requeued[0], requeued[0] + 7))
        assert requeued[0] > 15  # new seqs: above every one the store had given at open
        control.resume("out")
        await until(lambda: len(delivered_numbers()) >= len(REQUEUED_NUMBERS))
        assert delivered_numbers() == REQUEUED_NUMBERS
        left = await _ask(control, "quarantine", {"node": "out"})
        assert [e["id"] for e in left["nodes"]["out"]["entries"]] == [DAMAGED]
        snapshot = control.snapshot()["nodes"]["out"]["durable"]
        assert snapshot["requeued_from_quarantine"] == 7 and snapshot["requeued"] == 0
        [audited] = [e for e in control.audit() if e["action"] == "requeue-quarantined"]
        assert audited["outcome"] == "applied" and audited["why"] == "restored"
        assert audited["after"] == {"requeued": 7, "entries": [INTACT]}
    assert entry_ids(store) == [DAMAGED]


def test_a_damaged_or_unknown_entry_or_a_node_without_a_store_is_refused(tmp_path: Path) -> None:
    guarded(_a_damaged_or_unknown_entry_or_a_node_without_a_store_is_refused(tmp_path))


async def _a_damaged_or_unknown_entry_or_a_node_without_a_store_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "state" / "out.db"
    quarantined_store(store)
    async with serving(tmp_path, LIVE) as served:
        control = served.control
        await _until_open(served.runtime)
        refusals: dict[str, dict[str, Any]] = {
            "cannot be vouched for": {"node": "out", "entries": [DAMAGED]},
            "has no quarantine entry 99": {"node": "out", "entries": [INTACT, 99]},
            "'src' has no durable inbox": {"node": "src", "all": True},
            "no node 'nope'": {"node": "nope", "entries": [INTACT]},
        }
        for words, args in refusals.items():
            with pytest.raises(ControlError, match=words):
                await _ask(control, "requeue-quarantined", args)
        assert entry_ids(store) == [INTACT, DAMAGED]  # nothing requeued, nothing removed

        done = await _ask(control, "requeue-quarantined", {"node": "out", "all": True})
        assert (done["requeued"], done["entries"]) == (7, [INTACT])
        assert [s["id"] for s in done["skipped"]] == [DAMAGED]
        assert "cannot be vouched for" in done["skipped"][0]["why"]
        await until(lambda: len(delivered_numbers()) >= len(REQUEUED_NUMBERS))
        outcomes = [e["outcome"] for e in control.audit() if e["action"] == "requeue-quarantined"]
        assert outcomes == ["refused"] * len(refusals) + ["applied"]
        with pytest.raises(ControlError, match="no quarantine entry that can be requeued"):
            await _ask(control, "requeue-quarantined", {"node": "out", "all": True})
    assert delivered_numbers() == REQUEUED_NUMBERS  # once: the second --all found nothing
    assert entry_ids(store) == [DAMAGED]


def test_a_requeue_waits_out_a_failing_store_and_a_closed_one_is_refused(tmp_path: Path) -> None:
    """The node's store refuses every write (its connection made read-only: each commit fails
    and is retried, as on a full disk): the requeue waits, queued to the commit loop, and is
    done by the first commit that goes through, its packets delivered once. Asked of a store
    that has closed (the run over), it is refused: the run is ending."""
    guarded(_a_requeue_waits_out_a_failing_store_and_a_closed_one_is_refused(tmp_path))


def writes(db: sqlite3.Connection, allowed: bool) -> None:
    """Let the store write, or not, where it lives."""
    db.execute(f"PRAGMA query_only={'OFF' if allowed else 'ON'}")


async def _a_requeue_waits_out_a_failing_store_and_a_closed_one_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "state" / "out.db"
    quarantined_store(store)
    async with serving(tmp_path, LIVE) as served:
        inbox: Any = served.runtime.nodes["out"].inbox
        await until(lambda: inbox.stats.accepted > 0)
        await inbox.worker.call(DurableStore.query, partial(writes, allowed=False))
        errors = inbox.stats.disk_errors
        asked = asyncio.create_task(
            _ask(served.control, "requeue-quarantined", {"node": "out", "entries": [INTACT]})
        )
        await until(lambda: inbox.stats.disk_errors >= errors + 2)  # its commits fail too
        assert not asked.done() and entry_ids(store) == [INTACT, DAMAGED]
        await inbox.worker.call(DurableStore.query, partial(writes, allowed=True))
        done = await asyncio.wait_for(asked, 60)
        assert done["requeued"] == 7
        await until(lambda: len(delivered_numbers()) >= len(REQUEUED_NUMBERS))
    assert delivered_numbers() == REQUEUED_NUMBERS
    assert entry_ids(store) == [DAMAGED]
    with pytest.raises(ControlError, match=r"closed \(the run is ending\)"):
        await _ask(served.control, "requeue-quarantined", {"node": "out", "all": True})
    with pytest.raises(ControlError, match=r"closed \(the run is ending\)"):
        await _ask(served.control, "quarantine", {})


def guarded(scenario: Coroutine[Any, Any, None]) -> None:
    """Run `scenario` on a fresh loop, failing it after GUARD_S (against a hang only)."""
    asyncio.run(asyncio.wait_for(scenario, GUARD_S))


async def _until_open(runtime: Any) -> None:
    """Until the sink's durable inbox has committed packets: its store is open."""
    inbox = runtime.nodes["out"].inbox
    await until(lambda: inbox.stats.accepted > 0)


async def _ask(control: RuntimeControl, cmd: str, args: dict[str, Any]) -> Any:
    from schnitzel.control.commands import dispatch

    return await dispatch(control, cmd, args, ME, "restored")


def test_ctl_quarantine_on_a_running_schnitzel_run_and_a_kill_9(tmp_path: Path) -> None:
    """A real `schnitzel run` and `schnitzel ctl`: list (table and JSON), a refused damaged
    entry, a requeue, and a kill -9 as soon as it is answered: the restart delivers whatever
    of the requeued packets the first run had not (each at least once), and the entry is
    gone (requeued once, not again)."""
    store = tmp_path / "state" / "out.db"
    quarantined_store(store)
    graph_from(tmp_path, LIVE_JSONL)
    with socket_dir() as directory:
        sock = directory / "run.sock"
        process = start_run(tmp_path, "--state-dir", str(tmp_path / "state"),
                            "--control-socket", str(sock))  # fmt: skip
        try:
            until_answering(sock, process)
            # the socket answers before the store's process has opened it (refused: "not
            # open yet ... try again in a moment"), the longer the busier the machine
            wait_for(lambda: "not open yet" not in ctl(sock, "quarantine", "list").stderr)
            table = ctl(sock, "quarantine", "list")
            assert table.returncode == 0, table.stderr
            assert f"node out ({store}):" in table.stdout and "4-10" in table.stdout
            assert "12 packets in 2 entries" in table.stdout  # the offline list's words
            listed = ctl_json(sock, "quarantine", "list", "--node", "out")
            assert len(listed["nodes"]["out"]["entries"]) == 2
            refused = ctl(sock, "quarantine", "requeue", "--node", "out", "--entry", "2")
            assert refused.returncode == 1 and "cannot be vouched for" in refused.stderr
            done = ctl(sock, "quarantine", "requeue", "--node", "out", "--entry", "1",
                       "--why", "row checked")  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert "requeued 7 packets of 1 entry at" in done.stdout
        finally:  # at once: the packets are committed, some may not be delivered yet
            os.kill(process.pid, signal.SIGKILL)
            process.communicate(timeout=60)
    assert entry_ids(store) == [DAMAGED]  # the requeue's commit removed it, for good
    g = graph_from(tmp_path, LIVE_JSONL.replace("rate_hz: 50.0", "count: 0"))
    report = run(g, tmp_path)
    assert report["nodes"]["out"]["durable"]["requeued_from_quarantine"] == 0
    assert_counts_add_up(report, g)
    got = _got(tmp_path)
    assert set(got) == set(REQUEUED_NUMBERS)  # at least once each
    assert entry_ids(store) == [DAMAGED]


def _got(tmp_path: Path) -> list[int]:
    """Payload numbers of the requeued packets (source `src`) the jsonl sink wrote; a last
    line the kill -9 cut short is no packet."""
    path = tmp_path / "out" / "got.jsonl"
    found = []
    for line in path.read_text().splitlines() if path.exists() else ():
        try:
            packet = json.loads(line)
        except json.JSONDecodeError:
            continue
        if packet["source_id"] == "src":
            found.append(packet["payload"]["n"])
    return found


def test_the_offline_requeue_of_a_store_a_run_holds_points_to_ctl(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    store = tmp_path / "state" / "out.db"
    quarantined_store(store)
    running = DurableStore(store)
    running.open()
    try:
        refused = run_cli("quarantine", "requeue", str(store), "1")
    finally:
        running.close()
    assert refused.returncode == 1 and "in use by another running schnitzel" in refused.stderr
    assert "schnitzel ctl quarantine requeue --node NODE --entry 1" in refused.stderr
    assert json.loads(run_cli("quarantine", "list", str(store), "--json").stdout)["entries"]
