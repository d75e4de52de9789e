"""A store that does not answer its open (its process stopped, a file system that hangs): the
run waits for it, as it must, but the node's health says so while it waits (what `ctl
status` and the console show, before any tick runs), an event names the store, and once the
store answers the run starts and delivers everything."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from schnitzel import Runtime
from schnitzel.runtime import durable_inbox
from tests.runtime.harness import graph_from
from tests.waits import GUARD_S, until

GRAPH = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 50}}
  - id: out
    kind: sink
    plugin: "null"
    inbox: {durable: {path: state/out.db}}
edges:
  - {from: src, to: out}
"""


def test_a_store_that_does_not_answer_its_open_is_named_in_its_nodes_health(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    original = durable_inbox.open_on_store

    def open_on_store(store: Any) -> Any:  # on the store's thread, as a hung file system
        release.wait(GUARD_S)
        return original(store)

    monkeypatch.setattr(durable_inbox, "open_on_store", open_on_store)
    runtime = Runtime(graph_from(tmp_path, GRAPH), state_dir=tmp_path / "state")

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        task = asyncio.create_task(runtime.run())
        out = runtime.nodes["out"]
        await until(lambda: out.health == "degraded")
        waiting = dict(runtime.snapshot()["nodes"]["out"])
        assert not task.done()
        release.set()
        report = dict(await asyncio.wait_for(task, GUARD_S))
        said = [f"{e.level}: {e.message}" for e in runtime.events.recent if e.node == "out"]
        return waiting, report, said

    waiting, report, said = asyncio.run(scenario())
    assert waiting["health"] == "degraded", waiting
    assert "has not answered its open for 5 s" in waiting["health_reason"], waiting
    assert "out.db" in waiting["health_reason"], waiting
    assert any(line.startswith("warning: health ok -> degraded") for line in said), said
    assert any("answered its open after" in line for line in said), said
    assert report["status"] == "ok", report["status"]
    assert report["totals"]["delivered"] == 50, report["totals"]
    assert report["nodes"]["out"]["health"] == "ok", report["nodes"]["out"]
