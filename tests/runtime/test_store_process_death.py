"""A store process that dies under a run, at any moment: the run stops by itself with an
error, nothing waits for the dead store, the counts add up, and after a restart every packet
a source read is delivered at least once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any, cast

import pytest

from schnitzel import Runtime
from schnitzel.contract.codec import decode_packet
from schnitzel.validate import ValidatedGraph
from tests.runtime.harness import graph_from

GUARD_S = 60.0
"""Hang guard only: nothing waits for a set amount of real time."""
STUCK_DRAIN_S = 10 * GUARD_S
"""A drain timeout the hang guard ends first: a stop left waiting for a producer fails."""
LINES = 3000


def lines_written(output: Path) -> list[int]:
    if not output.exists():
        return []
    return [
        json.loads(line)["payload"]["n"]
        for line in output.read_text().splitlines()
        if line.endswith("}")
    ]


def stored_ns(db: Path) -> set[int]:
    """The `n` of every packet still queued in a store's file (its next run delivers them)."""
    if not db.exists():
        return set()
    from schnitzel.durable.rows import live_packets

    with closing(sqlite3.connect(db)) as conn:
        return {decode_packet(body).payload["n"] for _seq, _at, body in live_packets(conn)}


def chain(tmp_path: Path, mid_process: bool) -> ValidatedGraph:
    """`jsonl -> passthrough (durable) -> jsonl (durable, in a process)`."""
    with (tmp_path / "in.jsonl").open("w") as file:
        file.writelines(json.dumps({"n": n}) + "\n" for n in range(LINES))
    mid = "true" if mid_process else "false"
    return graph_from(
        tmp_path,
        f"""
nodes:
  - {{id: src, kind: source, plugin: jsonl, config: {{path: {tmp_path / "in.jsonl"}}}}}
  - id: mid
    kind: transform
    plugin: passthrough
    inbox: {{max: 16, durable: {{path: {tmp_path / "state" / "mid.db"}, process: {mid}}}}}
  - id: out
    kind: sink
    plugin: jsonl
    config: {{path: {tmp_path / "out.jsonl"}, fsync: batch}}
    inbox: {{max: 16, durable: {{path: {tmp_path / "state" / "out.db"}, process: true}}}}
edges:
  - {{from: src, to: mid}}
  - {{from: mid, to: out}}
""",
    )


@pytest.mark.slow  # real runs, a store process killed
@pytest.mark.parametrize("mid_process", [False, True], ids=["mid-on-a-thread", "mid-in-a-process"])
def test_an_upstream_durable_node_keeps_what_a_dead_downstream_store_refused(
    tmp_path: Path, mid_process: bool
) -> None:
    """`mid` (durable, its store alive) emits into `out`, whose store's process is killed.
    `out` refuses what it never committed (`shutdown`); `mid` must then keep the inputs of
    those outputs in its own store, as it does when `out`'s node failed
    (`keep_durable_batch`). Were they settled and deleted, no store holds them and the
    source checkpointed past them (they were committed in `mid`): lost for good."""
    graph = chain(tmp_path, mid_process)
    report = asyncio.run(run_killing_when(graph, tmp_path, after=200))
    assert report["status"] == "error", report["stop_reason"]
    refused = report["nodes"]["out"]["dropped_by_reason"].get("shutdown", 0)
    # Everything `src` read is delivered, or still queued in one of the stores.
    delivered = set(lines_written(tmp_path / "out.jsonl"))
    kept = stored_ns(tmp_path / "state" / "mid.db") | stored_ns(tmp_path / "state" / "out.db")
    # what the source did not checkpoint past is read again next run: run it
    report2 = asyncio.run(
        asyncio.wait_for(Runtime(graph, state_dir=tmp_path / "state").run(), GUARD_S)
    )
    delivered2 = set(lines_written(tmp_path / "out.jsonl"))
    missing = sorted(set(range(LINES)) - delivered2)
    assert not missing, (
        f"{len(missing)} lines never delivered (first {missing[:10]}); the first run "
        f"refused {refused} at out, delivered {len(delivered)}, kept {len(kept)} in the stores; "
        f"second run: {report2['status']} {report2['nodes']['out']['dropped_by_reason']}"
    )


def single(tmp_path: Path, hop: bool) -> ValidatedGraph:
    """`jsonl -> [passthrough (memory inbox) ->] jsonl (durable, in a process)`."""
    with (tmp_path / "in.jsonl").open("w") as file:
        file.writelines(json.dumps({"n": n}) + "\n" for n in range(LINES))
    middle = "  - {id: mid, kind: transform, plugin: passthrough, inbox: {max: 64}}\n"
    edges = (
        "  - {from: src, to: mid}\n  - {from: mid, to: out}\n"
        if hop
        else "  - {from: src, to: out}\n"
    )
    return graph_from(
        tmp_path,
        f"""
nodes:
  - {{id: src, kind: source, plugin: jsonl, config: {{path: {tmp_path / "in.jsonl"}}}}}
{middle if hop else ""}  - id: out
    kind: sink
    plugin: jsonl
    config: {{path: {tmp_path / "out.jsonl"}, fsync: batch}}
    inbox: {{max: 16, durable: {{path: {tmp_path / "state" / "out.db"}, process: true}}}}
edges:
{edges}""",
    )


async def run_killing_when(graph: ValidatedGraph, tmp_path: Path, after: int) -> Any:
    """Kill `out`'s store process once `after` lines are out (0: as soon as it is open)."""
    runtime = Runtime(graph, state_dir=tmp_path / "state")
    task = asyncio.ensure_future(runtime.run())
    inbox: Any = runtime.nodes["out"].inbox
    while inbox._committer is None or len(lines_written(tmp_path / "out.jsonl")) < after:
        assert not task.done(), "the run ended before the kill"
        await asyncio.sleep(0.001)
    os.kill(inbox.worker._process.pid, signal.SIGKILL)
    return await asyncio.wait_for(task, GUARD_S)


@pytest.mark.slow  # real runs, a store process killed
@pytest.mark.parametrize("hop", [False, True], ids=["direct", "memory-hop"])
@pytest.mark.parametrize("after", [0, 1, 17, 300, 1500])
def test_a_store_process_killed_at_any_moment_loses_nothing_and_counts_add_up(
    tmp_path: Path, hop: bool, after: int
) -> None:
    from tests.runtime.harness import assert_counts_add_up

    graph = single(tmp_path, hop)
    report = asyncio.run(run_killing_when(graph, tmp_path, after))
    assert report["status"] == "error", (report["status"], report["stop_reason"])
    assert_counts_add_up(report, graph)
    for _ in range(3):  # what the first run did not deliver, the next one does
        report = asyncio.run(
            asyncio.wait_for(Runtime(graph, state_dir=tmp_path / "state").run(), GUARD_S)
        )
        assert_counts_add_up(cast(dict[str, Any], report), graph)
        if set(lines_written(tmp_path / "out.jsonl")) == set(range(LINES)):
            break
    missing = sorted(set(range(LINES)) - set(lines_written(tmp_path / "out.jsonl")))
    assert not missing, (len(missing), missing[:10], report["status"])


def blocked_behind_a_full_store(
    tmp_path: Path, max_packets: int, delay_s: float = 0.0
) -> ValidatedGraph:
    """`jsonl -> passthrough (memory) -> Recorder`, whose durable inbox (in a process) holds
    at most `max_packets` and makes its producers wait (`block`)."""
    with (tmp_path / "in.jsonl").open("w") as file:
        file.writelines(json.dumps({"n": n}) + "\n" for n in range(LINES))
    return graph_from(
        tmp_path,
        f"""
nodes:
  - {{id: src, kind: source, plugin: jsonl, config: {{path: {tmp_path / "in.jsonl"}}}}}
  - {{id: mid, kind: transform, plugin: passthrough, inbox: {{max: 64}}}}
  - id: out
    kind: sink
    plugin: "tests.runtime.plugins:Recorder"
    config: {{delay_s: {delay_s}}}
    inbox:
      max: 16
      overflow: block
      durable: {{path: {tmp_path / "state" / "out.db"}, process: true, max_packets: {max_packets}}}
edges:
  - {{from: src, to: mid}}
  - {{from: mid, to: out}}
""",
    )


@pytest.mark.slow  # a real run, a store process killed
def test_a_producer_waiting_for_space_in_a_dead_store_does_not_hold_the_stop(
    tmp_path: Path,
) -> None:
    """`out`'s store is full (`max_packets`), its backlog on disk; `mid` waits for space
    (`block`) with a batch in hand, only in memory. Once the store's process is killed
    nothing can free that space but the window the sink still holds: were the waiting
    producer left waiting, the stop would wait `drain_timeout_s` for it, then abandon it
    (lost packets counted), instead of the prompt stop the change promises."""
    from tests.runtime import plugins

    graph = blocked_behind_a_full_store(tmp_path, max_packets=200, delay_s=0.002)

    async def scenario() -> Any:
        runtime = Runtime(graph, state_dir=tmp_path / "state", drain_timeout_s=STUCK_DRAIN_S)
        task = asyncio.ensure_future(runtime.run())
        inbox: Any = runtime.nodes["out"].inbox
        while not (inbox is not None and inbox._space_waiters):
            assert not task.done()
            await asyncio.sleep(0.001)
        assert inbox._spilled > 0
        os.kill(inbox.worker._process.pid, signal.SIGKILL)
        return await asyncio.wait_for(task, GUARD_S)  # left waiting: the drain's timeout

    report = asyncio.run(scenario())
    assert report["status"] == "error"
    assert len(plugins.RECORDS["out"]) > 0


@pytest.mark.slow  # a real run, a store process killed
def test_a_producer_waiting_for_space_held_by_a_backlog_on_disk_is_not_left_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`out`'s store opens full (`max_packets` packets left by an earlier run, on disk only)
    and its process is killed before the first read: nothing it holds can ever leave it in
    this run, so the room `mid` waits for (`block`) never comes. That producer must be
    told (refused, `shutdown`), not left waiting until `drain_timeout_s` gives up on it."""
    from schnitzel.contract.packet import StreamPacket
    from tests.runtime.test_parking_model import make_inbox

    async def fill() -> None:
        inbox = make_inbox(tmp_path / "state" / "out.db", process=False)
        await inbox.open()
        await inbox.put([StreamPacket.new("old", "m", n, {"n": -n}) for n in range(50)])
        await inbox.shutdown()

    (tmp_path / "state").mkdir()
    asyncio.run(fill())
    graph = blocked_behind_a_full_store(tmp_path, max_packets=50)

    from schnitzel.runtime.durable_state import DurableState

    load = DurableState._load

    async def slow_load(inbox: DurableState) -> None:  # a slow disk's first read
        await asyncio.sleep(0.5)
        await load(inbox)

    monkeypatch.setattr(DurableState, "_load", slow_load)

    async def scenario() -> Any:
        runtime = Runtime(graph, state_dir=tmp_path / "state", drain_timeout_s=STUCK_DRAIN_S)
        task = asyncio.ensure_future(runtime.run())
        inbox: Any = runtime.nodes["out"].inbox
        assert inbox is not None
        while not (inbox._space_waiters and inbox._loading):
            assert not task.done()
            await asyncio.sleep(0.001)
        assert not len(inbox)  # nothing in memory: all of it on disk
        os.kill(inbox.worker._process.pid, signal.SIGKILL)
        return await asyncio.wait_for(task, GUARD_S)  # left waiting: the drain's timeout

    report = asyncio.run(scenario())
    assert report["status"] == "error"


@pytest.mark.parametrize("in_flight", [True, False], ids=["commit-in-flight", "between"])
def test_a_kill_while_a_commit_runs_accepts_or_refuses_each_packet_once_and_counts_stay_whole(
    tmp_path: Path, in_flight: bool
) -> None:
    from schnitzel.contract.packet import StreamPacket
    from schnitzel.durable.parking import Selection
    from schnitzel.durable.store import StoreError
    from tests.runtime.test_parking_model import make_inbox

    async def scenario() -> None:
        inbox: Any = make_inbox(tmp_path / "d.db")
        await inbox.open()
        await inbox.put([StreamPacket.new("s", "m", n, {"n": n}) for n in range(8)])  # window
        commits = []
        for start in (8, 12, 16):
            commit = await inbox.admit(
                [StreamPacket.new("s", "m", n, {"n": n}) for n in range(start, start + 4)],
                force=True,
            )
            assert commit is not None
            commits.append(commit)
        if in_flight:
            while not inbox.worker._asked._since:
                await asyncio.sleep(0)
        os.kill(inbox.worker._process.pid, signal.SIGKILL)
        results = await asyncio.gather(*commits)
        taken = inbox.take(100)
        inbox._settle(taken, None, None, None)  # the window still settles
        refused = inbox.metrics.dropped.get("shutdown", 0)
        assert inbox.stats.accepted + refused == 20, (inbox.stats.accepted, refused)
        assert refused == 4 * results.count(False), (results, refused)  # each once
        assert all(results[i] or not results[i + 1] for i in range(2)), results  # in order
        assert inbox._count == len(inbox) + inbox._spilled, (inbox._count, inbox._spilled)
        assert inbox._bytes == inbox._spilled_bytes + sum(r[2] for r in inbox._rows)
        assert not inbox._pending_bodies and not inbox._waiters
        with pytest.raises(StoreError, match="killed by signal 9"):
            await inbox.change_parked("drop", Selection(everything=True))
        assert await inbox.flush(5.0) is False
        assert await inbox.shutdown(5.0) == 0

    asyncio.run(asyncio.wait_for(scenario(), GUARD_S))
