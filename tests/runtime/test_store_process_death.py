"""Adversarial checks of a store process that dies under a run (commit 5f99084): the run
stops with an error, and after a restart every packet a source read is delivered at least
once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from schnitzel import Runtime
from schnitzel.contract.codec import decode_packet
from schnitzel.validate import ValidatedGraph
from tests.runtime.harness import graph_from

GUARD_S = 60.0
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


async def run_killing_store(graph: ValidatedGraph, tmp_path: Path, node: str, after: int) -> Any:
    runtime = Runtime(graph, state_dir=tmp_path / "state")
    task = asyncio.ensure_future(runtime.run())
    output = tmp_path / "out.jsonl"
    while len(lines_written(output)) < after:
        assert not task.done(), "the run ended before the kill"
        await asyncio.sleep(0.005)
    worker = runtime.nodes[node].inbox.worker  # type: ignore[union-attr]
    os.kill(worker._process.pid, signal.SIGKILL)
    return await asyncio.wait_for(task, GUARD_S)


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
    report = asyncio.run(run_killing_store(graph, tmp_path, "out", after=200))
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
