"""`/metrics` (`--metrics-addr`), parsed with prometheus-client's own parser: every counter equals
the run report's figure, and `schnitzel run` serves it while it runs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from schnitzel import __version__
from schnitzel.observe.prometheus import MetricsServer
from schnitzel.runtime import Runtime
from tests.runtime.harness import HEADER, graph_from

REPO = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 60.0

GRAPH = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 500}}
  - {id: half, kind: transform, plugin: sample, config: {every: 2}}
  - id: full
    kind: transform
    plugin: passthrough
    inbox: {max: 4, overflow: drop_new}
  - id: out
    kind: sink
    plugin: "null"
    inbox: {durable: {path: state/out.db}}
edges:
  - {from: src, to: half}
  - {from: src, to: full}
  - {from: half, to: out}
  - {from: full, to: out}
"""


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by (name, labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def labels(node_id: str, node: dict[str, Any], **more: str) -> frozenset[tuple[str, str]]:
    return frozenset(
        {
            "component_id": node_id,
            "component_kind": node["kind"],
            "component_type": node["plugin"],
            **more,
        }.items()
    )


def test_every_counter_equals_the_run_reports_figure(tmp_path: Path) -> None:
    graph = graph_from(tmp_path, GRAPH)

    async def scenario() -> tuple[dict[str, Any], str]:
        runtime = Runtime(graph, state_dir=tmp_path / "state")
        metrics = MetricsServer("127.0.0.1:0", runtime.snapshot, __version__)
        metrics.start()
        try:
            report = await asyncio.wait_for(runtime.run(), HANG_GUARD_S)
            url = f"http://127.0.0.1:{metrics.port}/metrics"
            async with httpx.AsyncClient() as client:
                answer = await client.get(url, timeout=HANG_GUARD_S)
            return report, answer.text
        finally:
            metrics.close()

    report, text = asyncio.run(scenario())
    found = samples(text)
    for node_id, node in report["nodes"].items():
        at = labels(node_id, node)
        assert found[("schnitzel_component_received_packets_total", at)] == node["received"]
        assert found[("schnitzel_component_sent_packets_total", at)] == node["out"]
        assert found[("schnitzel_component_errors_total", at)] == node["errors"]
        assert found[("schnitzel_buffer_packets", at)] == node["queue_depth"]
        for reason, count in node["dropped_by_reason"].items():
            key = (
                "schnitzel_component_discarded_packets_total",
                labels(node_id, node, reason=reason),
            )
            assert found[key] == count
        for state in ("ok", "degraded", "failing"):
            key = ("schnitzel_component_health", labels(node_id, node, state=state))
            assert found[key] == (1.0 if node["health"] == state else 0.0)
    out = report["nodes"]["out"]
    assert found[("schnitzel_durable_backlog_packets", labels("out", out))] == 0
    totals = report["totals"]
    for name in ("emitted", "delivered", "dropped", "errors"):
        metric = "schnitzel_errors_total" if name == "errors" else f"schnitzel_packets_{name}_total"
        assert found[(metric, frozenset())] == totals[name]
    assert found[("schnitzel_build_info", frozenset({("version", __version__)}))] == 1.0
    # The graph made each kind of figure non-zero, so the comparisons above can fail.
    assert totals["emitted"] == 500 and totals["dropped"] > 0
    assert report["nodes"]["half"]["filtered"] == 250

    # The Grafana dashboard in docs/ops queries only metrics and labels served here.
    dashboard = json.loads((REPO / "docs" / "ops" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    served = {name for name, _labels in found}
    served_labels = {label for _name, pairs in found for label, _value in pairs}
    for expr in exprs:
        queried = set(re.findall(r"\bschnitzel_[a-z_]+", expr))
        assert queried and queried <= served, expr
        grouped = re.findall(r"by \(([^)]*)\)", expr)
        for label in (x.strip() for group in grouped for x in group.split(",")):
            assert label in served_labels | {"instance"}, (label, expr)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def schnitzel(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "schnitzel.cli.main", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
    )


def test_schnitzel_run_serves_metrics_while_it_runs(tmp_path: Path) -> None:
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        HEADER
        + """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 200}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: out}
"""
    )
    port = _free_port()
    process = schnitzel(
        "run", str(graph), "--metrics-addr", f"127.0.0.1:{port}", "--no-control-socket",
        "--state-dir", str(tmp_path / "state"), cwd=tmp_path,
    )  # fmt: skip
    started, text = time.monotonic(), ""
    try:
        while "schnitzel_component_sent_packets_total" not in text:
            assert process.poll() is None, process.communicate()[1].decode()[-2000:]
            assert time.monotonic() - started < HANG_GUARD_S, "metrics never served"
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.HTTPError:
                time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=HANG_GUARD_S)
    assert process.returncode == 0
    key = ("schnitzel_component_sent_packets_total", frozenset(
        {"component_id": "src", "component_kind": "source", "component_type": "synthetic"}.items()
    ))  # fmt: skip
    assert key in samples(text)


def test_a_taken_or_malformed_metrics_address_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        HEADER
        + """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 5}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: out}
"""
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for addr, words in ((f"127.0.0.1:{port}", "cannot serve metrics"), ("9464", "HOST:PORT")):
            process = schnitzel(
                "run", str(graph), "--metrics-addr", addr, "--no-control-socket",
                "--state-dir", str(tmp_path / "state"), cwd=tmp_path,
            )  # fmt: skip
            _out, err = process.communicate(timeout=HANG_GUARD_S)
            assert process.returncode == 2, err.decode()
            assert words in err.decode() and "nothing was run" in err.decode()
            if words == "HOST:PORT":  # a malformed one is refused before the run says anything
                assert err.decode().count("\n") == 1, err.decode()


def test_an_attached_console_refuses_metrics_addr_and_says_where_it_belongs(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "schnitzel_tui", "--attach", str(tmp_path / "x.sock"),
         "--metrics-addr", "127.0.0.1:9464"],
        capture_output=True, text=True, env=env, timeout=HANG_GUARD_S, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "give --metrics-addr to the run you attach to" in done.stderr
