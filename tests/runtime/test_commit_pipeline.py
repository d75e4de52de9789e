"""A producer makes its next batches while the commits of its outputs run
(runtime/commit_order.py): several batches wait for their commits at once, a source's
checkpoint never passes a packet that is not committed yet, and a stop or a forced stop
meanwhile counts every packet exactly once, on both event loops.

The commits are held back deterministically, not by timing: the durable store's commit fails
(as on a full disk, `DiskFull`) while the test says so; the inbox retries with backoff and
producers wait, as they would for a real full disk. The stores run on a thread of the test's
process (`process: false`), where the test's stand-in for the commit is."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from schnitzel import Runtime, RuntimeControl
from schnitzel.contract.packet import StreamPacket
from schnitzel.durable.parking import Selection
from schnitzel.durable.rows import live_packets
from schnitzel.durable.store import DiskFull, NewRows
from schnitzel.errors import BadRecord
from schnitzel.launch.event_loop import loop_factory
from schnitzel.runtime import durable_commits
from schnitzel.runtime.runners import UNSETTLED_MAX
from tests.runtime import plugins
from tests.runtime.harness import TEST_PLUGINS, assert_counts_add_up, graph_from
from tests.waits import until

GUARD_S = 60.0
"""Hang guard only: nothing waits for a set amount of real time."""
LINES = 4000


class HeldCommits:
    """Fails every commit of the durable stores (`DiskFull`) while `failing` is set, and
    records the packet seqs each commit that went through wrote."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.failing = threading.Event()
        self.committed: set[int] = set()
        self.failed = 0
        original = durable_commits.commit_on_store

        def commit_on_store(store: Any, rows: NewRows, *rest: Any) -> Any:
            if self.failing.is_set():
                self.failed += 1
                raise DiskFull(f"{store.path}: no space left (held by the test)")
            done = original(store, rows, *rest)
            self.committed.update(json.loads(body)["seq"] for body in rows.bodies)
            return done

        monkeypatch.setattr(durable_commits, "commit_on_store", commit_on_store)


def on_loop(
    loop: str,
    graph_body: str,
    tmp_path: Path,
    steps: Callable[[Runtime, RuntimeControl], Awaitable[None]],
) -> dict[str, Any]:
    """Run the graph on `loop` ("asyncio" or "uvloop") while `steps` steers it; the report."""
    graph = graph_from(tmp_path, graph_body)

    async def scenario() -> dict[str, Any]:
        runtime = Runtime(graph, state_dir=tmp_path / "state")
        task = asyncio.create_task(runtime.run())
        await steps(runtime, RuntimeControl(runtime))
        return dict(await asyncio.wait_for(task, GUARD_S))

    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        report = runner.run(scenario())
    assert_counts_add_up(report, graph)
    return report


JSONL_TO_DURABLE = f"""
nodes:
  - {{id: src, kind: source, plugin: jsonl, config: {{path: in.jsonl}}}}
  - {{id: mid, kind: transform, plugin: passthrough}}
  - id: out
    kind: sink
    plugin: "{TEST_PLUGINS}:Recorder"
    inbox: {{max: 2048, durable: {{path: state/out.db, process: false}}}}
edges:
  - {{from: src, to: mid}}
  - {{from: mid, to: out}}
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_batches_wait_for_their_commits_while_the_node_goes_on_and_the_checkpoint_never_passes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loop: str
) -> None:
    with (tmp_path / "in.jsonl").open("w") as file:
        file.writelines(json.dumps({"n": n}) + "\n" for n in range(LINES))
    held = HeldCommits(monkeypatch)
    saved: list[int] = []
    ahead: list[tuple[int, int]] = []
    """(checkpointed line, first line not committed) of every checkpoint ahead of a commit."""
    in_flight_seen: list[int] = []

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        source = runtime.nodes["src"].plugin
        checkpoint = source.checkpoint  # type: ignore[attr-defined]

        def checked(upto: StreamPacket | BadRecord) -> None:
            assert isinstance(upto, StreamPacket)
            missing = next((n for n in range(upto.seq + 1) if n not in held.committed), None)
            if missing is not None:
                ahead.append((upto.seq, missing))
            saved.append(upto.seq)
            checkpoint(upto)

        source.checkpoint = checked  # type: ignore[attr-defined]
        unsettled = runtime.nodes["mid"].unsettled
        await until(lambda: len(plugins.RECORDS["out"]) >= 500)
        held.failing.set()
        await until(lambda: held.failed >= 1 and len(unsettled) >= 2)
        in_flight_seen.append(len(unsettled))
        runtime.checkpoints.poll()  # follows every candidate now, while nothing commits
        await until(lambda: held.failed >= 3)  # retried: still nothing committed
        in_flight_seen.append(len(unsettled))
        runtime.checkpoints.poll()
        held.failing.clear()

    report = on_loop(loop, JSONL_TO_DURABLE, tmp_path, steps)
    assert ahead == []
    assert all(2 <= n <= UNSETTLED_MAX for n in in_flight_seen), in_flight_seen
    assert sorted(p.payload["n"] for p in plugins.RECORDS["out"]) == list(range(LINES))
    assert saved and saved[-1] == LINES - 1 and saved == sorted(saved)
    assert report["totals"]["delivered"] == report["totals"]["emitted"] == LINES


SYNTHETIC_TO_DURABLE = f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: null}}}}
  - {{id: mid, kind: transform, plugin: passthrough}}
  - id: out
    kind: sink
    plugin: "{TEST_PLUGINS}:Recorder"
    inbox: {{max: 2048, durable: {{path: state/out.db, process: false}}}}
edges:
  - {{from: src, to: mid}}
  - {{from: mid, to: out}}
"""


def hold_commits_then(
    held: HeldCommits, end: Callable[[Runtime, RuntimeControl], None]
) -> Callable[[Runtime, RuntimeControl], Awaitable[None]]:
    """Steps: once packets flow, fail the commits until several batches wait for theirs,
    then `end` the run."""

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await until(lambda: len(plugins.RECORDS["out"]) >= 1000)
        held.failing.set()
        await until(lambda: held.failed >= 1 and len(runtime.nodes["mid"].unsettled) >= 2)
        end(runtime, control)

    return steps


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_stop_while_commits_wait_drains_them_and_counts_every_packet_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loop: str
) -> None:
    held = HeldCommits(monkeypatch)

    def stop_then_let_commits_through(runtime: Runtime, control: RuntimeControl) -> None:
        control.stop()
        held.failing.clear()

    report = on_loop(
        loop, SYNTHETIC_TO_DURABLE, tmp_path, hold_commits_then(held, stop_then_let_commits_through)
    )
    totals = report["totals"]
    assert totals["delivered"] + totals["dropped"] == totals["emitted"]
    assert totals["dropped"] == 0
    seqs = [p.seq for p in plugins.RECORDS["out"]]
    assert sorted(seqs) == list(range(totals["emitted"]))  # each once, none lost


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_forced_stop_while_commits_fail_counts_what_never_got_in_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loop: str
) -> None:
    held = HeldCommits(monkeypatch)

    def force(runtime: Runtime, control: RuntimeControl) -> None:
        control.stop(force=True)

    report = on_loop(loop, SYNTHETIC_TO_DURABLE, tmp_path, hold_commits_then(held, force))
    totals = report["totals"]
    out = report["nodes"]["out"]
    # what was committed and not yet delivered stays in the store; what never was is dropped
    assert totals["delivered"] + totals["dropped"] + out["durable"]["backlog"] == totals["emitted"]
    assert out["dropped_by_reason"].get("shutdown", 0) > 0  # the batches that waited
    assert report["nodes"]["mid"]["abandoned"] == 0  # their inputs are not counted again
    with closing(sqlite3.connect(tmp_path / "state" / "out.db")) as db:
        kept = [json.loads(body)["seq"] for _seq, _at, body in live_packets(db)]
    # the backlog stays, and so do rows settled meanwhile: their deletes failed as well
    assert len(kept) >= out["durable"]["backlog"]
    # every packet committed is delivered or kept for the next run (a batch the sink held,
    # or settled without its delete committed, is delivered again: at least once)
    assert held.committed <= {p.seq for p in plugins.RECORDS["out"]} | set(kept)


DROP_OLDEST = f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: 2000}}}}
  - {{id: mid, kind: transform, plugin: passthrough}}
  - id: out
    kind: sink
    plugin: "{TEST_PLUGINS}:Recorder"
    inbox:
      max: 2048
      overflow: drop_oldest
      durable: {{path: state/out.db, max_packets: 300, process: false}}
edges:
  - {{from: src, to: mid}}
  - {{from: mid, to: out}}
"""


@pytest.mark.parametrize("producer", ["node", "source"])
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_drop_oldest_keeps_the_newest_packets_while_older_ones_wait_for_their_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loop: str, producer: str
) -> None:
    """Packets admitted but not committed yet are the oldest: a batch that does not fit
    displaces them (once stored), never its own packets while they survive."""
    body = DROP_OLDEST
    if producer == "source":
        body = body.replace("{from: mid, to: out}", "{from: src, to: out}")
        body = body.replace("  - {from: src, to: mid}\n", "").replace(
            "  - {id: mid, kind: transform, plugin: passthrough}\n", ""
        )
    held = HeldCommits(monkeypatch)
    held.failing.set()  # the first commits wait: later batches arrive while they are pending

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        control.pause("out")
        producing = runtime.nodes["src" if producer == "source" else "mid"]
        await until(lambda: held.failed >= 1 and len(producing.unsettled) >= 1)
        held.failing.clear()
        store = runtime.stores["out"]
        await until(lambda: producing.metrics.emitted >= 2000 and not store._pending_bodies)
        await until(lambda: not producing.unsettled)
        control.resume("out")

    report = on_loop(loop, body, tmp_path, steps)
    assert sorted(p.seq for p in plugins.RECORDS["out"]) == list(range(1700, 2000))
    assert report["nodes"]["out"]["dropped_by_reason"] == {"displaced": 1700}


FAN_OUT = f"""
nodes:
  - {{id: src, kind: source, plugin: jsonl, config: {{path: in.jsonl}}}}
  - {{id: mid, kind: transform, plugin: passthrough}}
  - id: out
    kind: sink
    plugin: "{TEST_PLUGINS}:Recorder"
    inbox: {{max: 2048, durable: {{path: state/out.db, process: false}}}}
  - {{id: seen, kind: sink, plugin: "{TEST_PLUGINS}:Recorder"}}
edges:
  - {{from: src, to: mid}}
  - {{from: mid, to: out}}
  - {{from: mid, to: seen}}
"""


def test_a_forced_stop_while_one_of_two_stores_fails_leaves_no_line_to_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One store commits, the other does not: the batches wait for both, the checkpoint
    stays behind the failing one, and a second run delivers every line to both."""
    with (tmp_path / "in.jsonl").open("w") as file:
        file.writelines(json.dumps({"n": n}) + "\n" for n in range(LINES))
    body = FAN_OUT.replace(
        f'  - {{id: seen, kind: sink, plugin: "{TEST_PLUGINS}:Recorder"}}',
        f"""  - id: seen
    kind: sink
    plugin: "{TEST_PLUGINS}:Recorder"
    inbox: {{max: 2048, durable: {{path: state/seen.db, process: false}}}}""",
    )
    failing = threading.Event()
    failed = [0]
    original = durable_commits.commit_on_store

    def commit_on_store(store: Any, rows: NewRows, *rest: Any) -> Any:
        if failing.is_set() and store.path.name == "seen.db":
            failed[0] += 1
            raise DiskFull(f"{store.path}: no space left (held by the test)")
        return original(store, rows, *rest)

    monkeypatch.setattr(durable_commits, "commit_on_store", commit_on_store)

    async def force_once_failing(runtime: Runtime, control: RuntimeControl) -> None:
        await until(lambda: len(plugins.RECORDS["seen"]) >= 500)
        failing.set()
        await until(lambda: failed[0] >= 3)
        control.stop(force=True)

    async def nothing(runtime: Runtime, control: RuntimeControl) -> None:
        return None

    first = on_loop("asyncio", body, tmp_path, force_once_failing)
    assert first["nodes"]["seen"]["dropped_by_reason"].get("shutdown", 0) > 0
    delivered = {sink: {p.payload["n"] for p in plugins.RECORDS[sink]} for sink in ("out", "seen")}
    plugins.RECORDS.clear()
    failing.clear()
    on_loop("asyncio", body, tmp_path, nothing)
    for sink in ("out", "seen"):
        again = {p.payload["n"] for p in plugins.RECORDS[sink]}
        assert delivered[sink] | again == set(range(LINES)), sink


PARKING = f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: null}}}}
  - id: out
    kind: sink
    plugin: "{TEST_PLUGINS}:Recorder"
    config: {{every: 10}}
    inbox: {{max: 1024, durable: {{path: state/out.db, process: false}}}}
edges:
  - {{from: src, to: out}}
"""


def test_a_requeue_of_everything_asked_while_commits_fail_takes_the_packets_parked_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Packets the node parked before the operator asked are parked by an earlier commit
    than the requeue's (durable_parking.py), also when the commits between fail and are
    retried (as on a full disk): the requeue takes them too."""
    held = HeldCommits(monkeypatch)
    asked: list[int] = []
    answers: list[dict[str, Any]] = []

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        inbox = runtime.stores["out"]
        await until(lambda: inbox.parked_count >= 1)
        held.failing.set()
        await until(lambda: held.failed >= 1 and len(inbox._parks) >= 1)
        asked.append(inbox.parked_count + len(inbox._parks))  # parked or to park, by then
        requeue = asyncio.create_task(control.requeue("out", Selection(everything=True)))
        failed = held.failed
        await until(lambda: held.failed >= failed + 3)  # the commits after it fail too
        held.failing.clear()
        answers.append(await asyncio.wait_for(requeue, GUARD_S))
        control.stop()

    on_loop("asyncio", PARKING, tmp_path, steps)
    assert answers[0]["requeued"] >= asked[0], (answers, asked)
