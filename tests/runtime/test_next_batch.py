"""A source whose iterator has `next_batch(limit)` is asked for a batch at a time, never for
more than the graph may take, and a `next_batch` that raises or breaks the contract ends the
source as an exception from a generator does, with a message that says what came back."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.runtime import plugins
from tests.runtime.harness import graph_from, run

RECORDED = """
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:Recorder"}
edges:
  - {from: src, to: out}
"""


def _source(plugin: str = "Batches", **config: object) -> str:
    options = ", ".join(f"{key}: {value}" for key, value in config.items())
    return (
        f'nodes:\n  - {{id: src, kind: source, plugin: "tests.runtime.plugins:{plugin}", '
        f"config: {{{options}}}}}" + RECORDED
    )


def test_a_source_with_next_batch_is_asked_for_batches_and_never_for_one_packet(
    tmp_path: Path,
) -> None:
    report = run(graph_from(tmp_path, _source(count=1000)), tmp_path)
    assert report["status"] == "ok" and report["totals"]["delivered"] == 1000
    got = plugins.RECORDS["out"]
    assert [p.seq for p in got] == list(range(1000))
    assert len({p.packet_id for p in got}) == 1000
    assert plugins.NEXT_CALLED["src"] == 0
    asked = [limit for limit, _ in plugins.ASKED["src"]]
    assert asked[:3] == [256, 256, 256] and max(asked) <= 256
    assert all(thread == threading.main_thread().name for _, thread in plugins.ASKED["src"])


def test_max_packets_asks_next_batch_for_no_more_than_is_left(tmp_path: Path) -> None:
    report = run(graph_from(tmp_path, _source(count=10_000)), tmp_path, max_packets=300)
    assert report["stop_reason"] == "max_packets"
    assert report["totals"]["emitted"] == 300 and report["totals"]["delivered"] == 300
    assert [limit for limit, _ in plugins.ASKED["src"]] == [256, 44]


def test_an_empty_batch_ends_the_source(tmp_path: Path) -> None:
    report = run(graph_from(tmp_path, _source(count=3)), tmp_path)
    assert report["stop_reason"] == "sources_exhausted" and report["status"] == "ok"
    assert report["totals"]["delivered"] == 3
    assert [limit for limit, _ in plugins.ASKED["src"]] == [256, 256]


def test_a_blocking_source_is_asked_on_its_thread(tmp_path: Path) -> None:
    report = run(graph_from(tmp_path, _source("BlockingBatches", count=600)), tmp_path)
    assert report["totals"]["delivered"] == 600
    threads = {thread for _, thread in plugins.ASKED["src"]}
    assert threading.main_thread().name not in threads


def test_next_batch_that_raises_ends_the_source_with_its_error(tmp_path: Path) -> None:
    report = run(graph_from(tmp_path, _source(count=1000, fail_at=300)), tmp_path)
    src = report["nodes"]["src"]
    assert src["out"] == 256 and src["errors"] == 1  # the failed call made nothing
    assert src["recent_errors"][0]["packet_id"] is None
    assert "sensor bus error at 300" in src["recent_errors"][0]["message"]
    assert report["status"] == "degraded" and report["totals"]["delivered"] == 256


@pytest.mark.parametrize(
    ("returns", "said"),
    [
        ("tuple", "next_batch(256) returned a tuple"),
        ("extra", "next_batch(256) returned a list of 267 items"),
        ("strings", "next_batch(256) returned a list of 11 items (StreamPacket, str)"),
    ],
)
def test_next_batch_that_breaks_the_contract_ends_the_source_saying_what_came_back(
    returns: str, said: str, tmp_path: Path
) -> None:
    report = run(graph_from(tmp_path, _source(count=10, returns=returns)), tmp_path)
    src = report["nodes"]["src"]
    assert src["out"] == 0 and src["errors"] == 1
    message = src["recent_errors"][0]["message"]
    assert said in message and "return a list of at most 256 StreamPackets" in message
    assert report["totals"]["delivered"] == 0
