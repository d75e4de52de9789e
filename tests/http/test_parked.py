"""Poison pills on a durable http sink, against a real server on 127.0.0.1 that refuses some
packets by their content while it accepts the others: the refused ones are parked in the
store (not discarded), counted, kept across a kill -9, and an operator lists, requeues and
drops them with `schnitzel ctl` over the real control socket, every change audited."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.control.harness import socket_dir
from tests.control.test_ctl_end_to_end import ctl, ctl_json, start_run, stop, until_answering
from tests.control.test_ctl_end_to_end import wait_for as wait_until
from tests.http_backend import LoopbackBackend, Received
from tests.runtime.harness import assert_counts_add_up, graph_from, run

POISON_EVERY = 10
"""The backend refuses every packet whose seq ends in 3 (422): a poison pill."""


def poisoned(request: Received) -> bool:
    return any(
        isinstance(p, dict) and p.get("seq", -1) % POISON_EVERY == 3 for p in request.packets
    )


def poison_keys(count: int) -> set[str]:
    return {f"src:{n}" for n in range(count) if n % POISON_EVERY == 3}


@pytest.fixture
def backend() -> Iterator[LoopbackBackend]:
    with LoopbackBackend() as server:
        server.reject_if(poisoned, 422, "field 'seq' is not acceptable")
        yield server


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with socket_dir() as directory:
        yield directory


def uplink(url: str, source: str, durable: str = "path: state/out.db") -> str:
    return f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {source}}}
  - id: out
    kind: sink
    plugin: http
    config: {{url: "{url}", retry_initial_s: 0.05, batch_max: 1}}
    inbox: {{durable: {{{durable}}}}}
edges:
  - {{from: src, to: out}}
"""


def parked_rows(store: Path) -> list[tuple[int, str, str]]:
    """(id, packet id, reason) of the parked table, read straight from the file."""
    with closing(sqlite3.connect(store)) as db:
        return db.execute("SELECT id, packet_id, reason FROM parked ORDER BY id").fetchall()


def parked_keys(store: Path) -> set[str]:
    with closing(sqlite3.connect(store)) as db:
        bodies = db.execute("SELECT body FROM parked").fetchall()
    return {"{source_id}:{seq}".format(**json.loads(body)) for (body,) in bodies}


def test_poison_pills_are_parked_by_default_and_every_packet_is_accounted_for(
    tmp_path: Path, backend: LoopbackBackend
) -> None:
    g = graph_from(tmp_path, uplink(backend.url, "{count: 100}"))
    assert g.nodes["out"].spec.on_error == "park"  # the default with a durable inbox
    report = run(g, tmp_path)
    out = report["nodes"]["out"]
    assert set(backend.keys()) == {f"src:{n}" for n in range(100)} - poison_keys(100)
    assert out["durable"]["parked"] == out["durable"]["parked_this_run"] == 10
    assert out["errors"] == 10 and out["dropped"] == 0  # refused, kept: not lost
    assert out["durable"]["backlog"] == 0
    assert parked_keys(tmp_path / "state" / "out.db") == poison_keys(100)
    reasons = [reason for _id, _pid, reason in parked_rows(tmp_path / "state" / "out.db")]
    assert all("422" in r and "seq" in r for r in reasons), reasons
    assert report["status"] == "degraded"  # the operator is told something waits for them
    assert "parked" in out["health_reason"]
    assert_counts_add_up(report, g)


def test_skip_still_discards_a_poison_pill_when_the_graph_says_so(
    tmp_path: Path, backend: LoopbackBackend
) -> None:
    body = uplink(backend.url, "{count: 20}").replace(
        "    inbox:", "    on_error: skip\n    inbox:"
    )
    g = graph_from(tmp_path, body)
    report = run(g, tmp_path)
    assert report["nodes"]["out"]["durable"]["parked"] == 0
    assert report["nodes"]["out"]["errors"] == 2
    assert parked_rows(tmp_path / "state" / "out.db") == []
    assert_counts_add_up(report, g)


def test_over_its_bound_parking_drops_the_oldest_and_counts_them(
    tmp_path: Path, backend: LoopbackBackend
) -> None:
    durable = "path: state/out.db, max_parked: 3"
    g = graph_from(tmp_path, uplink(backend.url, "{count: 100}", durable))
    report = run(g, tmp_path)
    durable_block = report["nodes"]["out"]["durable"]
    assert durable_block["parked"] == 3 and durable_block["parked_dropped"] == 7
    assert report["nodes"]["out"]["dropped_by_reason"] == {"parked_overflow": 7}
    assert parked_keys(tmp_path / "state" / "out.db") == {"src:73", "src:83", "src:93"}
    assert_counts_add_up(report, g)


def test_parked_packets_survive_a_kill_9_and_are_counted_at_open(
    tmp_path: Path, backend: LoopbackBackend, short_dir: Path
) -> None:
    graph_from(tmp_path, uplink(backend.url, "{count: null, rate_hz: 200}"))
    sock = short_dir / "run.sock"
    process = start_run(tmp_path, "--state-dir", str(tmp_path / "state"), "--control-socket",
                        str(sock))  # fmt: skip
    try:
        until_answering(sock, process)
        wait_until(lambda: ctl_json(sock, "status")["nodes"]["out"]["durable"]["parked"] >= 5)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
    store = tmp_path / "state" / "out.db"
    refused_before = {r.key for r in backend.requests if r.status == 422}
    kept = parked_rows(store)
    assert len(kept) >= 5

    # The restart meets a backend that accepts everything: a backlog of nothing but a poison
    # pill would otherwise be a backend refusing every request (kept and retried, never
    # parked: plugins/http/verdict.py), and parked packets are never retried by themselves.
    backend.reset()
    g = graph_from(tmp_path, uplink(backend.url, "{count: 0}"))
    report = run(g, tmp_path)
    durable = report["nodes"]["out"]["durable"]
    assert durable["parked_at_open"] == len(kept) == durable["parked"]
    assert durable["parked_this_run"] == 0 and parked_rows(store) == kept
    # every packet refused before the kill is parked, or was still in the backlog (refused
    # just before the kill, not yet parked) and is delivered now
    assert refused_before <= parked_keys(store) | set(backend.keys())
    assert_counts_add_up(report, g)


def test_an_operator_lists_requeues_and_drops_parked_packets_with_ctl(
    tmp_path: Path, backend: LoopbackBackend, short_dir: Path
) -> None:
    g = graph_from(tmp_path, uplink(backend.url, "{count: null, rate_hz: 200}"))
    sock = short_dir / "run.sock"
    process = start_run(tmp_path, "--state-dir", str(tmp_path / "state"), "--control-socket",
                        str(sock))  # fmt: skip
    try:
        until_answering(sock, process)
        wait_until(lambda: ctl_json(sock, "parked", "out")["parked"] >= 4)
        listed = ctl_json(sock, "parked", "out")
        first = listed["packets"][0]
        assert {"seq", "parked_at", "reason", "excerpt", "packet_id"} <= set(first)
        assert first["intact"] is True  # it still matches the checksum it was parked with
        assert "422" in first["reason"]
        text = ctl(sock, "parked", "out")
        assert text.returncode == 0 and "SEQ" in text.stdout and "422" in text.stdout

        shown = ctl_json(sock, "parked", "out", "--show", str(first["seq"]))["packet"]
        assert shown["packet"]["seq"] % POISON_EVERY == 3
        key = f"{shown['packet']['source_id']}:{shown['packet']['seq']}"
        missing = ctl(sock, "parked", "out", "--show", "999999")
        assert missing.returncode == 1 and "no parked packet 999999" in missing.stderr

        backend.reset()  # the backend is fixed: it takes what it refused
        requeued = ctl_json(sock, "requeue", "out", str(first["seq"]), "--why", "backend fixed")
        assert requeued["requeued"] == 1
        wait_until(lambda: key in set(backend.keys()))

        unexplained = ctl(sock, "drop-parked", "out", "--all")
        assert unexplained.returncode == 1 and "say why" in unexplained.stderr
        dropped = ctl_json(sock, "drop-parked", "out", "--all", "--why", "bench test data")
        assert dropped["dropped"] >= 3 and dropped["parked"]["after"] == 0
        assert ctl_json(sock, "parked", "out")["packets"] == []

        audit = ctl_json(sock, "audit")
        mine = [e for e in audit if e["action"] in ("requeue", "drop-parked")]
        assert [(e["action"], e["outcome"]) for e in mine] == [
            ("requeue", "applied"),
            ("drop-parked", "refused"),
            ("drop-parked", "applied"),
        ]
        assert mine[0]["why"] == "backend fixed" and mine[0]["who"]["via"] == "ctl"
        assert mine[0]["after"]["requeued"] == 1
        assert mine[2]["after"] == {"parked": 0, "dropped": dropped["dropped"], "seqs": "all"}
        events = ctl(sock, "events", "--limit", "500").stdout
        assert "parked packets requeued" in events and "parked packets dropped" in events
    finally:
        stop(process, 4)  # degraded: packets failed and parked ones were dropped (cli.md)
    report: dict[str, Any] = json.loads((tmp_path / "report.json").read_text())
    durable = report["nodes"]["out"]["durable"]
    assert durable["requeued"] == 1 and durable["parked"] == 0
    assert durable["parked_dropped"] == dropped["dropped"]
    assert report["nodes"]["out"]["dropped_by_reason"]["parked_dropped"] == dropped["dropped"]
    assert parked_rows(tmp_path / "state" / "out.db") == []
    assert_counts_add_up(report, g)
