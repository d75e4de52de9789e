"""The example pair `graphs/edge-publish.yaml` and `graphs/worker.yaml` work as their comments
say, against a real nats-server: every reading published reaches the worker's file."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph
from tests.transports.nats_server import NatsServer, nats_server_binary

pytestmark = pytest.mark.skipif(nats_server_binary() is None, reason="no nats-server")

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"


def test_the_edge_publishes_and_a_worker_writes_every_reading(tmp_path: Path) -> None:
    shutil.copytree(GRAPHS / "data", tmp_path / "data")
    lines = (tmp_path / "data" / "readings.jsonl").read_text().splitlines()
    with NatsServer(tmp_path / "nats") as server:
        server.add_stream("READINGS", ["readings.>"])
        for name in ("edge-publish.yaml", "worker.yaml"):
            text = (GRAPHS / name).read_text().replace("nats://127.0.0.1:4222", server.url)
            (tmp_path / name).write_text(text)
        published = asyncio.run(
            Runtime(load_graph(tmp_path / "edge-publish.yaml"), state_dir=tmp_path / "s1").run()
        )
        assert published["totals"]["delivered"] == len(lines)
        worked = asyncio.run(
            Runtime(load_graph(tmp_path / "worker.yaml"), state_dir=tmp_path / "s2").run(
                max_packets=len(lines)
            )
        )
    assert worked["totals"]["delivered"] == len(lines)
    written = (tmp_path / "state" / "worked.jsonl").read_text().splitlines()
    assert [json.loads(line)["payload"] for line in written] == [json.loads(x) for x in lines]
