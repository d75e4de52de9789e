"""The `mcap` source on an MCAP file the test writes with the `mcap` writer: log-time order
across topics, `ts` from the log, JSON decoded, other encodings passed on as base64, a
broken JSON message a bad record, the same packets and keys on every replay, topic filter."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from mcap.writer import Writer

from tests.runtime import plugins
from tests.runtime.harness import assert_counts_add_up, graph_from, run

T0 = 1_700_000_000_000_000_000  # ns


def write_log(path: Path) -> None:
    with path.open("wb") as file:
        writer = Writer(file)
        writer.start(profile="", library="schnitzel-tests")
        schema = writer.register_schema("Reading", "jsonschema", b'{"type": "object"}')
        imu = writer.register_channel("/imu", "json", schema)
        gps = writer.register_channel("/gps", "json", schema)
        image = writer.register_schema("sensor_msgs/msg/CompressedImage", "ros2msg", b"...")
        cam = writer.register_channel("/cam", "cdr", image)

        def add(channel: int, at_ms: int, data: bytes) -> None:
            at = T0 + at_ms * 1_000_000
            writer.add_message(channel, log_time=at, data=data, publish_time=at)

        # written out of log-time order across channels, as recorders flush them
        add(gps, 50, json.dumps({"lat": 48.1, "lon": 11.5}).encode())
        add(imu, 0, json.dumps({"ax": 0.0}).encode())
        add(imu, 10, json.dumps({"ax": 0.1}).encode())
        add(cam, 20, b"\x00\x01\xffcdr")
        add(imu, 30, b"{broken")
        add(imu, 40, json.dumps({"ax": 0.2}).encode())
        add(gps, 5, json.dumps({"lat": 48.0, "lon": 11.4}).encode())
        writer.finish()


def replay(tmp_path: Path, topics: str = "null") -> tuple[list[Any], dict[str, Any]]:
    plugins.reset()
    graph = graph_from(
        tmp_path,
        f"""
nodes:
  - {{id: log, kind: source, plugin: mcap, config: {{path: robot.mcap, topics: {topics}}}}}
  - {{id: out, kind: sink, plugin: "tests.runtime.plugins:Recorder"}}
edges:
  - {{from: log, to: out}}
""",
    )
    report = run(graph, tmp_path)
    assert_counts_add_up(report, graph)
    got = [
        (p.seq, p.meta["topic"], round((p.ts * 1e9 - T0) / 1e6), p.payload, p.idempotency_key)
        for p in plugins.RECORDS["out"]
    ]
    return got, report


def test_replay_is_in_log_time_order_with_the_log_s_times_and_the_same_every_run(
    tmp_path: Path,
) -> None:
    write_log(tmp_path / "robot.mcap")
    first, report = replay(tmp_path)
    cdr = {
        "encoding": "cdr",
        "schema": "sensor_msgs/msg/CompressedImage",
        "data_b64": base64.b64encode(b"\x00\x01\xffcdr").decode(),
    }
    assert [(topic, ms, payload) for _, topic, ms, payload, _ in first] == [
        ("/imu", 0, {"ax": 0.0}),
        ("/gps", 5, {"lat": 48.0, "lon": 11.4}),
        ("/imu", 10, {"ax": 0.1}),
        ("/cam", 20, cdr),
        ("/imu", 40, {"ax": 0.2}),
        ("/gps", 50, {"lat": 48.1, "lon": 11.5}),
    ]
    assert [seq for seq, *_ in first] == [0, 1, 2, 3, 5, 6]  # seq 4: the broken message
    assert [key for *_, key in first] == [f"log:robot.mcap:{n}" for n in (0, 1, 2, 3, 5, 6)]
    source = report["nodes"]["log"]
    assert source["errors"] == 1
    assert "not JSON" in source["recent_errors"][0]["message"]
    again, _ = replay(tmp_path)
    assert again == first


def test_a_json_message_nested_too_deep_is_a_bad_record_and_the_replay_goes_on(
    tmp_path: Path,
) -> None:
    """It raised RecursionError out of the source: the replay ended at it, every run."""
    with (tmp_path / "robot.mcap").open("wb") as file:
        writer = Writer(file)
        writer.start(profile="", library="schnitzel-tests")
        schema = writer.register_schema("Reading", "jsonschema", b'{"type": "object"}')
        imu = writer.register_channel("/imu", "json", schema)
        deep = b'{"ax": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        for at_ms, data in enumerate((b'{"ax": 0.0}', deep, b'{"ax": 0.2}')):
            at = T0 + at_ms * 1_000_000
            writer.add_message(imu, log_time=at, data=data, publish_time=at)
        writer.finish()
    got, report = replay(tmp_path)
    assert [payload for *_, payload, _key in got] == [{"ax": 0.0}, {"ax": 0.2}]
    source = report["nodes"]["log"]
    assert source["errors"] == 1 and report["stop_reason"] == "sources_exhausted"
    assert "nested too deep" in source["recent_errors"][0]["message"]


def test_topics_select_what_is_replayed(tmp_path: Path) -> None:
    write_log(tmp_path / "robot.mcap")
    got, _ = replay(tmp_path, "[/gps]")
    assert [(topic, ms) for _, topic, ms, _, _ in got] == [("/gps", 5), ("/gps", 50)]


def test_a_file_that_is_not_mcap_is_a_validation_problem(tmp_path: Path) -> None:
    from schnitzel.validate.validator import validate_text

    (tmp_path / "robot.mcap").write_bytes(b"not an mcap file")
    path = tmp_path / "graph.yaml"
    path.write_text(
        """version: 2
nodes:
  - {id: log, kind: source, plugin: mcap, config: {path: robot.mcap}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: log, to: out}
"""
    )
    result = validate_text(path.read_text(), source=str(path), path=path)
    assert "is not an MCAP file" in " ".join(p.render() for p in result.report.problems)


def test_a_topic_the_file_does_not_have_is_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`topics` with a name the file lacks (a typo, a log recorded with other names): that
    topic's messages were silently not replayed, the rest as if nothing were missing."""
    write_log(tmp_path / "robot.mcap")
    with caplog.at_level(logging.WARNING):
        got, _ = replay(tmp_path, "[/imu, /gsp]")
    assert {topic for _, topic, _, _, _ in got} == {"/imu"}
    warnings = [r.getMessage() for r in caplog.records if "/gsp" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "/cam, /gps, /imu" in warnings[0], warnings


def test_validation_warns_of_a_topic_the_file_does_not_have_and_lets_the_graph_run(
    tmp_path: Path,
) -> None:
    from schnitzel.validate.validator import validate_text

    write_log(tmp_path / "robot.mcap")
    path = tmp_path / "graph.yaml"
    path.write_text(
        """version: 2
nodes:
  - {id: log, kind: source, plugin: mcap, config: {path: robot.mcap, topics: [/imu, /gsp]}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: log, to: out}
"""
    )
    result = validate_text(path.read_text(), source=str(path), path=path)
    assert result.graph is not None  # a warning: one graph may replay logs lacking a topic
    said = [p.render() for p in result.report.problems]
    assert len(said) == 1 and "no topic /gsp of `topics`" in said[0], said
