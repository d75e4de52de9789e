"""The bytewax anchors of bench/bench_pipeline.py, run by bytewax's own interpreter.

Runs in `bench/.venv-bytewax` (bytewax 0.21, created by bench_pipeline.py), never in the
project's environment, and imports nothing from schnitzel. Records are dicts with the fields
of a StreamPacket, made as `synthetic` makes packets (an id string, `time.time()`, a copy of
the payload template); a source partition hands them on in batches of 64, one worker.

    python bench/_bytewax_flows.py passthrough|real COUNT

prints `{"seconds": ..., "cpu": ..., "arrived": ..., "total": ...}`: the wall and CPU time of
`run_main`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main

BATCH = 64
PAYLOAD: dict[str, Any] = {"raw": 20.5, "unit": "C", "sensor": "t-17"}
PASSTHROUGH_PAYLOAD: dict[str, Any] = {"v": 1}
RESULT = {"arrived": 0, "total": 0.0}


class _Records(StatelessSourcePartition[dict[str, Any]]):
    def __init__(self, count: int, template: dict[str, Any]) -> None:
        self.count, self.template, self.next_seq = count, template, 0
        self.prefix = os.urandom(6).hex()

    def next_batch(self) -> list[dict[str, Any]]:
        start = self.next_seq
        if start >= self.count:
            raise StopIteration
        stop = min(start + BATCH, self.count)
        self.next_seq = stop
        prefix, template, now = self.prefix, self.template, time.time
        return [
            {
                "packet_id": f"{prefix}-{seq}",
                "ts": now(),
                "kind": "sensor",
                "source_id": "src",
                "seq": seq,
                "payload": dict(template),
                "meta": {},
            }
            for seq in range(start, stop)
        ]


class Records(DynamicSource[dict[str, Any]]):
    def __init__(self, count: int, template: dict[str, Any]) -> None:
        self.count, self.template = count, template

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Records:
        return _Records(self.count, self.template)


class _Counter(StatelessSinkPartition[dict[str, Any]]):
    def write_batch(self, items: list[dict[str, Any]]) -> None:
        RESULT["arrived"] += len(items)
        RESULT["total"] += sum(item["payload"].get("value", 0.0) for item in items)


class Counter(DynamicSink[dict[str, Any]]):
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Counter:
        return _Counter()


def passthrough_flow(count: int) -> Dataflow:
    flow = Dataflow("passthrough")
    stream = op.input("src", flow, Records(count, PASSTHROUGH_PAYLOAD))
    for stage in ("p1", "p2", "p3"):
        stream = op.map(stage, stream, lambda record: record)
    op.output("out", stream, Counter())
    return flow


def real_flow(count: int) -> Dataflow:
    def scale(record: dict[str, Any]) -> dict[str, Any]:
        payload = record["payload"]
        value = payload["raw"] * 0.5 + (record["seq"] % 100) * 0.25
        return {**record, "payload": {**payload, "value": value}}

    def keep(record: dict[str, Any]) -> bool:
        return record["payload"]["value"] >= 12.75

    def label(record: dict[str, Any]) -> dict[str, Any]:
        payload = record["payload"]
        level = "high" if payload["value"] > 25.0 else "low"
        return {**record, "payload": {**payload, "level": level}}

    flow = Dataflow("real")
    stream = op.input("src", flow, Records(count, PAYLOAD))
    stream = op.map("scale", stream, scale)
    stream = op.filter("keep", stream, keep)
    stream = op.map("label", stream, label)
    op.output("out", stream, Counter())
    return flow


def main() -> None:
    which, count = sys.argv[1], int(sys.argv[2])
    flow = passthrough_flow(count) if which == "passthrough" else real_flow(count)
    start, cpu_start = time.perf_counter(), time.process_time()
    run_main(flow)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(json.dumps({"seconds": seconds, "cpu": cpu, **RESULT}))


if __name__ == "__main__":
    main()
