"""The nats sink against a real nats-server with JetStream on 127.0.0.1: every packet lands in
the stream once, under its idempotency key; a server that is down or refuses keeps the
packets in the durable inbox (the operator is told why); a packet too large is a poison pill."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from schnitzel.contract.packet import StreamPacket
from schnitzel.registry.plugin import NodeContext
from schnitzel_plugins.transports.config import NatsSinkConfig
from schnitzel_plugins.transports.errors import NatsRejected
from schnitzel_plugins.transports.nats_sink import NatsSink
from tests.runtime.harness import assert_counts_add_up, backlog_of, graph_from, run, run_until
from tests.transports.nats_server import NatsServer, nats_server_binary

pytestmark = pytest.mark.skipif(
    nats_server_binary() is None, reason="no nats-server: install schnitzel[transports-test]"
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as running:
        running.add_stream("EVENTS", ["events.>"])
        yield running


def publisher(url: str, source: str, sink_options: str = "", durable: bool = True) -> str:
    inbox = "inbox: {durable: {path: state/out.db}}" if durable else ""
    return f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {source}}}
  - id: out
    kind: sink
    plugin: nats
    config: {{url: "{url}", subject: events.src, retry_initial_s: 0.05{sink_options}}}
    {inbox}
edges:
  - {{from: src, to: out}}
"""


def test_every_packet_lands_in_the_stream_once_under_its_key(
    tmp_path: Path, server: NatsServer
) -> None:
    g = graph_from(tmp_path, publisher(server.url, "{count: 500}", ", stream: EVENTS"))
    report = run(g, tmp_path)
    assert report["totals"]["delivered"] == 500 and report["totals"]["errors"] == 0
    assert_counts_add_up(report, g)
    messages = server.messages("EVENTS")
    assert [key for _, key, _ in messages] == [f"src:{n}" for n in range(500)]
    subject, _key, data = messages[7]
    assert subject == "events.src"
    assert json.loads(data)["seq"] == 7  # the packet's portable encoding


def test_a_replayed_packet_is_acked_as_a_duplicate_and_stored_once(
    tmp_path: Path, server: NatsServer
) -> None:
    duplicates = []
    for _ in range(2):  # the same keys twice, as a replay after a crash would send them
        report = run(graph_from(tmp_path, publisher(server.url, "{count: 50}")), tmp_path)
        assert report["totals"]["delivered"] == 50
        duplicates.append(report["nodes"]["out"]["plugin_stats"]["duplicate_acks"])
    assert duplicates == [0, 50]  # counted in the report
    assert server.keys("EVENTS") == {f"src:{n}": 1 for n in range(50)}


def test_a_server_down_keeps_the_packets_and_says_why_then_delivers_them(
    tmp_path: Path, server: NatsServer
) -> None:
    server.stop()
    g = graph_from(tmp_path, publisher(server.url, "{count: 100}"))
    first = run_until(g, tmp_path, backlog_of("out", 100, "cannot connect"), drain_timeout_s=3)
    assert first["totals"]["delivered"] == 0 and first["nodes"]["out"]["errors"] == 0
    assert first["nodes"]["out"]["durable"]["backlog"] == 100
    reason = (first["nodes"]["out"]["trouble"] or {}).get("reason", "")
    assert "cannot connect" in reason and server.url in reason, first["nodes"]["out"]

    server.start()
    second = run(graph_from(tmp_path, publisher(server.url, "{count: 0}")), tmp_path)
    assert second["totals"]["delivered"] == 100
    assert server.keys("EVENTS") == {f"src:{n}": 1 for n in range(100)}


def test_a_subject_no_stream_captures_is_retried_and_named(
    tmp_path: Path, server: NatsServer
) -> None:
    body = publisher(server.url, "{count: 20}").replace("events.src", "elsewhere.src")
    said = "no JetStream stream captures subject 'elsewhere.src'"
    report = run_until(
        graph_from(tmp_path, body), tmp_path, backlog_of("out", 20, said), drain_timeout_s=3
    )
    out = report["nodes"]["out"]
    assert report["totals"]["delivered"] == 0 and out["errors"] == 0
    assert out["durable"]["backlog"] == 20  # kept, not refused one by one
    assert said in (out.get("health_reason") or "")


def test_a_packet_too_large_for_the_stream_is_a_poison_pill(tmp_path: Path) -> None:
    lines = [json.dumps({"n": n, "pad": "x" * (5000 if n == 3 else 10)}) for n in range(8)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    with NatsServer(tmp_path / "nats") as server:
        server.add_stream("EVENTS", ["events.>"], max_msg_size=2000)
        g = graph_from(
            tmp_path,
            f"""
nodes:
  - {{id: src, kind: source, plugin: jsonl, config: {{path: in.jsonl}}}}
  - id: out
    kind: sink
    plugin: nats
    config: {{url: "{server.url}", subject: events.lines}}
    inbox: {{durable: {{path: state/out.db}}}}
edges:
  - {{from: src, to: out}}
""",
        )
        report = run(g, tmp_path)
        stored = [json.loads(data)["payload"]["n"] for _, _, data in server.messages("EVENTS")]
    assert stored == [0, 1, 2, 4, 5, 6, 7]
    assert report["nodes"]["out"]["errors"] == 1 and report["totals"]["delivered"] == 7


def test_subject_field_picks_each_packets_subject_and_refuses_a_packet_without_one() -> None:
    config = NatsSinkConfig(url="nats://127.0.0.1:4222", subject_field="meta.route")
    sink = NatsSink(config, NodeContext("out", Path("."), Path("state"), logging.getLogger("t")))
    routed = StreamPacket.new(kind="event", source_id="a", seq=0, meta={"route": "events.a"})
    assert sink._subject_of(routed) == "events.a"
    for bad in ({}, {"route": "events.*"}, {"route": 5}):
        packet = StreamPacket.new(kind="event", source_id="a", seq=1, meta=bad)
        with pytest.raises(NatsRejected, match=r"meta\.route"):
            sink._subject_of(packet)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({}, "exactly one of subject"),
        ({"subject": "a", "subject_field": "kind"}, "exactly one of subject"),
        ({"subject": "events.>"}, "cannot be published on"),
        ({"subject": "a", "stream": "A.B"}, "not a JetStream stream name"),
        ({"subject": "a", "url": "http://127.0.0.1:4222"}, "not a NATS server URL"),
    ],
)
def test_config_refuses_what_cannot_work_and_says_why(options: dict[str, str], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        NatsSinkConfig(**{"url": "nats://127.0.0.1:4222", **options})
