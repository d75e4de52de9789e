"""Run inside a private small tmpfs (see test_store_small_disk.py): a run stopped while its
durable store's file system is full. Prints one JSON object: the report's figures for the
node and the events the operator is shown.

Usage: python -m tests.runtime.stop_small_disk DIR   (DIR: the mount point of an empty tmpfs)
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from schnitzel import Runtime, RuntimeControl
from tests.runtime import plugins
from tests.runtime.harness import graph_from

BODY = """nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: null, payload: {pad: PAD}}}
  - id: out
    kind: sink
    plugin: tests.runtime.plugins:Gated
    inbox: {durable: {path: STORE}}
edges: [{from: src, to: out}]
"""


async def stopped_on_a_full_disk(store: Path, work: Path) -> dict[str, Any]:
    body = BODY.replace("PAD", "x" * 200).replace("STORE", str(store))
    runtime = Runtime(graph_from(work, body), state_dir=work / "state", drain_timeout_s=1)
    task = asyncio.create_task(runtime.run())
    deadline = time.monotonic() + 60  # only against a hang
    while not (runtime.stores and runtime.stores["out"].stats.disk_errors):
        assert time.monotonic() < deadline, "the store never met the full disk"
        await asyncio.sleep(0.05)
    RuntimeControl(runtime).stop()
    report = await asyncio.wait_for(task, 120)
    plugins.GATES["out"].set()  # its thread, left waiting, lets the process exit
    return {
        "dropped_by_reason": report["nodes"]["out"]["dropped_by_reason"],
        "events": [event.message for event in runtime.events.recent if event.node == "out"],
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        result = asyncio.run(stopped_on_a_full_disk(Path(sys.argv[1]) / "out.db", Path(work)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
