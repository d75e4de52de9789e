"""The processing pack in real runs: routes partition what comes in, filter and map in a
graph, expression failures go to the node's on_error, a live swap dedup -> threshold ->
rate_limit on one node, and `schnitzel validate` / `schnitzel run` as an operator uses them."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

from schnitzel import RuntimeControl
from schnitzel.contract.codec import encode_packet
from schnitzel.contract.packet import StreamPacket
from schnitzel.control.actor import Actor
from schnitzel.runtime import Runtime
from tests.conftest import run_cli
from tests.runtime.harness import assert_counts_add_up, assert_one_to_one, graph_from, run, steer

OPERATOR = Actor("ops", 1000, 42, None, "ctl")


def assert_ports_add_up(report: dict[str, Any], node: str, sinks: list[str]) -> None:
    """A routing node's output went to exactly one of its ports' sinks, each packet once
    (the harness's own check assumes every edge carries all of a node's output)."""
    nodes = report["nodes"]
    assert_one_to_one(report, node)
    assert sum(nodes[sink]["received"] for sink in sinks) == nodes[node]["out"]
    for sink in sinks:
        assert nodes[sink]["received"] == nodes[sink]["out"], sink
    assert report["totals"]["dropped"] == 0


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_readings(path: Path, values: list[float], sources: tuple[str, ...] = ("s",)) -> None:
    """Encoded packets (kept as they are by the jsonl source): one reading a second."""
    lines = []
    for n, value in enumerate(values):
        source = sources[n % len(sources)]
        packet = StreamPacket.new("sensor", source, n, {"value": value}, ts=1_700_000_000.0 + n)
        lines.append(encode_packet(packet))
    path.write_text("\n".join(lines) + "\n")


ROUTES = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 3000, payload: {value: 1}}}
  - id: r
    kind: transform
    plugin: route
    config:
      routes:
        fizzbuzz: 'seq % 15 == 0'
        fizz: 'seq % 3 == 0'
        buzz: 'seq % 5 == 0'
  - {id: fb, kind: sink, plugin: jsonl, config: {path: fb.jsonl}}
  - {id: f, kind: sink, plugin: jsonl, config: {path: f.jsonl}}
  - {id: b, kind: sink, plugin: jsonl, config: {path: b.jsonl}}
  - {id: rest, kind: sink, plugin: jsonl, config: {path: rest.jsonl}}
edges:
  - {from: src, to: r}
  - {from: r.fizzbuzz, to: fb}
  - {from: r.fizz, to: f}
  - {from: r.buzz, to: b}
  - {from: r, to: rest}
"""


def test_routes_partition_what_comes_in_and_counts_add_up_per_port(tmp_path: Path) -> None:
    report = run(graph_from(tmp_path, ROUTES), tmp_path)
    assert_ports_add_up(report, "r", ["fb", "f", "b", "rest"])
    seqs = {name: [p["seq"] for p in read_jsonl(tmp_path / f"{name}.jsonl")]
            for name in ("fb", "f", "b", "rest")}  # fmt: skip
    assert seqs["fb"] == [n for n in range(3000) if n % 15 == 0]
    assert seqs["f"] == [n for n in range(3000) if n % 3 == 0 and n % 15]
    assert seqs["b"] == [n for n in range(3000) if n % 5 == 0 and n % 15]
    everything = sorted(seq for sink in seqs.values() for seq in sink)
    assert everything == list(range(3000))  # each packet exactly once
    ports = {"fizzbuzz": "fb", "fizz": "f", "buzz": "b", "default": "rest"}
    routed = report["nodes"]["r"]["plugin_stats"]["routed"]
    assert routed == {port: len(seqs[sink]) for port, sink in ports.items()}
    assert report["nodes"]["r"]["out"] == 3000


def test_filter_and_map_in_a_graph(tmp_path: Path) -> None:
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic,
     config: {count: 200, payload: {value: 21.5, unit: c}}}
  - {id: even, kind: transform, plugin: filter, config: {condition: 'seq % 2 == 0'}}
  - id: f
    kind: transform
    plugin: map
    config:
      set: {fahrenheit: 'payload.value * 1.8 + 32', name: 'f"{source_id}/{seq}"'}
      rename: {value: celsius}
      drop: [unit]
      kind: reading
  - {id: out, kind: sink, plugin: jsonl, config: {path: out.jsonl}}
edges:
  - {from: src, to: even}
  - {from: even, to: f}
  - {from: f, to: out}
"""
    graph = graph_from(tmp_path, body)
    report = run(graph, tmp_path)
    assert_one_to_one(report, "even")
    assert report["nodes"]["even"]["filtered"] == 100
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [row["seq"] for row in rows] == list(range(0, 200, 2))
    assert rows[1]["kind"] == "reading"
    assert rows[1]["payload"] == {"celsius": 21.5, "fahrenheit": 70.7, "name": "src/2"}


def test_an_expression_failing_on_a_packet_goes_to_the_error_policy(tmp_path: Path) -> None:
    readings = tmp_path / "in.jsonl"
    readings.write_text('{"value": 5}\n{"other": 1}\n{"value": "x"}\n{"value": 50}\n')
    body = """
nodes:
  - {id: src, kind: source, plugin: jsonl, config: {path: in.jsonl, resume: false}}
  - {id: big, kind: transform, plugin: filter, config: {condition: 'payload.value > 10'},
     on_error: dead_letter, dead_letter: dlq}
  - {id: out, kind: sink, plugin: jsonl, config: {path: out.jsonl}}
  - {id: dlq, kind: sink, plugin: jsonl, config: {path: dlq.jsonl}}
edges:
  - {from: src, to: big}
  - {from: big, to: out}
"""
    graph = graph_from(tmp_path, body)
    report = run(graph, tmp_path)
    assert report["nodes"]["big"]["errors"] == 2 and report["nodes"]["big"]["filtered"] == 1
    assert [row["payload"] for row in read_jsonl(tmp_path / "out.jsonl")] == [{"value": 50}]
    errors = [row["meta"]["error"]["message"] for row in read_jsonl(tmp_path / "dlq.jsonl")]
    assert errors == [
        "'payload.value > 10': payload has no field 'value'",
        "'payload.value > 10': TypeError: '>' not supported between instances of 'str' and 'int'",
    ]


def test_a_packet_over_the_work_budget_goes_to_the_error_policy_and_the_rest_pass(
    tmp_path: Path,
) -> None:
    readings = tmp_path / "in.jsonl"
    sizes = [3, 500, 10, 2000, 1]
    readings.write_text("".join(json.dumps({"samples": [1] * n}) + "\n" for n in sizes))
    body = """
nodes:
  - {id: src, kind: source, plugin: jsonl, config: {path: in.jsonl, resume: false}}
  - id: some
    kind: transform
    plugin: filter
    config: {condition: 'max(payload.samples) > 0', max_work: 200}
    on_error: dead_letter
    dead_letter: dlq
  - {id: out, kind: sink, plugin: jsonl, config: {path: out.jsonl}}
  - {id: dlq, kind: sink, plugin: jsonl, config: {path: dlq.jsonl}}
edges:
  - {from: src, to: some}
  - {from: some, to: out}
"""
    report = run(graph_from(tmp_path, body), tmp_path)
    assert report["nodes"]["some"]["errors"] == 2
    passed = [len(row["payload"]["samples"]) for row in read_jsonl(tmp_path / "out.jsonl")]
    assert passed == [3, 10, 1]
    failed = read_jsonl(tmp_path / "dlq.jsonl")
    assert [len(row["payload"]["samples"]) for row in failed] == [500, 2000]
    assert {row["meta"]["error"]["message"] for row in failed} == {
        "'max(payload.samples) > 0': over its work budget, max_work 200 (a unit per node, per "
        "item or character built or walked); simplify the expression or raise the node's "
        "max_work"
    }


def test_threshold_in_a_graph_alerts_once_per_crossing_on_a_noisy_signal(tmp_path: Path) -> None:
    rng = random.Random(17)
    level = [70 + min(n, 20) - max(n - 40, 0) for n in range(60)]
    write_readings(tmp_path / "in.jsonl", [v + rng.uniform(-1.5, 1.5) for v in level])
    body = """
nodes:
  - {id: src, kind: source, plugin: jsonl, config: {path: in.jsonl, resume: false}}
  - {id: hot, kind: policy, plugin: threshold,
     config: {above: 80.0, hysteresis: 4.0, min_duration_s: 2.0}}
  - {id: alerts, kind: sink, plugin: jsonl, config: {path: alerts.jsonl}}
edges:
  - {from: src, to: hot}
  - {from: hot, to: alerts}
"""
    graph = graph_from(tmp_path, body)
    report = run(graph, tmp_path)
    assert_counts_add_up(report, graph)
    alerts = read_jsonl(tmp_path / "alerts.jsonl")
    assert [(a["kind"], a["payload"]["state"]) for a in alerts] == [
        ("alert", "raised"),
        ("alert", "cleared"),
    ]
    assert report["nodes"]["hot"]["plugin_stats"]["raised"] == 1


def test_rate_limit_excess_routed_to_its_port_is_never_lost(tmp_path: Path) -> None:
    write_readings(tmp_path / "in.jsonl", [1.0] * 300, sources=("a", "b", "c"))
    body = """
nodes:
  - {id: src, kind: source, plugin: jsonl, config: {path: in.jsonl, resume: false}}
  - {id: rl, kind: policy, plugin: rate_limit,
     config: {rate_hz: 0.2, burst: 3, clock: event, excess: port}}
  - {id: out, kind: sink, plugin: jsonl, config: {path: out.jsonl}}
  - {id: over, kind: sink, plugin: jsonl, config: {path: over.jsonl}}
edges:
  - {from: src, to: rl}
  - {from: rl, to: out}
  - {from: rl.excess, to: over}
"""
    report = run(graph_from(tmp_path, body), tmp_path)
    assert_ports_add_up(report, "rl", ["out", "over"])
    passed, over = read_jsonl(tmp_path / "out.jsonl"), read_jsonl(tmp_path / "over.jsonl")
    # each source: a reading every 3 s for 297 s; the burst of 3, then 0.2/s: 3 + 59.4
    per_source = {s: sum(p["source_id"] == s for p in passed) for s in "abc"}
    assert per_source == {"a": 62, "b": 62, "c": 62}
    assert len(passed) + len(over) == 300
    assert report["nodes"]["rl"]["plugin_stats"] == {
        "passed": 186,
        "limited": 114,
        "keys": 3,
        "clock_resets": 0,
    }


def test_a_live_swap_dedup_then_threshold_then_rate_limit(tmp_path: Path) -> None:
    body = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 2000.0, payload: {value: 90}}}
  - {id: mid, kind: policy, plugin: dedup}
  - {id: out, kind: sink, plugin: jsonl, config: {path: out.jsonl}}
edges:
  - {from: src, to: mid}
  - {from: mid, to: out}
"""
    swaps: list[dict[str, Any]] = []

    async def until(predicate: Any) -> None:
        async with asyncio.timeout(60):
            while not predicate():
                await asyncio.sleep(0.01)

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        node: Any = runtime.nodes["mid"]
        await until(lambda: node.metrics.processed >= 200)
        swaps.append(await control.swap("mid", "threshold", {"above": 80.0}, actor=OPERATOR))
        await until(lambda: node.plugin.stats()["raised"] == 1)
        swaps.append(
            await control.swap("mid", "rate_limit", {"rate_hz": 10.0, "by": None}, actor=OPERATOR)
        )
        await until(lambda: node.plugin.stats()["limited"] >= 200)

    report = steer(graph_from(tmp_path, body), tmp_path / "state", steps)
    assert [s["after"]["plugin"] for s in swaps] == ["threshold", "rate_limit"]
    assert report["nodes"]["mid"]["plugin"] == "rate_limit"
    assert report["nodes"]["mid"]["generation"] == 2
    kinds = [row["kind"] for row in read_jsonl(tmp_path / "out.jsonl")]
    first_alert = kinds.index("alert")
    assert kinds.count("alert") == 1  # the threshold raised once, for a reading that stays
    assert set(kinds[:first_alert]) == {"sensor"} and first_alert >= 200  # dedup passed all
    assert set(kinds[first_alert + 1 :]) == {"sensor"}  # rate_limit passed some


def test_validate_points_at_the_option_line_and_the_column_in_the_expression(
    tmp_path: Path,
) -> None:
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        "version: 2\n"
        "nodes:\n"
        "  - {id: src, kind: source, plugin: synthetic, config: {count: 5}}\n"
        "  - id: r\n"
        "    kind: transform\n"
        "    plugin: route\n"
        "    config:\n"
        "      routes:\n"
        "        hot: 'payload.value > 80'\n"
        "        odd: 'seq % 2 == 1 and wat(seq)'\n"
        "  - {id: f, kind: transform, plugin: filter, config: {condition: 'payload.value >'}}\n"
        "  - {id: out, kind: sink, plugin: 'null'}\n"
        "edges: [{from: src, to: r}, {from: r, to: f}, {from: r.hot, to: out},"
        " {from: r.odd, to: out}, {from: f, to: out}]\n"
    )
    done = run_cli("validate", str(graph), "--json")
    assert done.returncode == 1, done.stderr
    problems = json.loads(done.stdout)["problems"]
    found = {(p["line"], p["code"]): p["message"] for p in problems}
    assert (
        "line 1, column 18 of the expression: unknown function 'wat'" in found[(10, "bad-config")]
    )
    assert "line 1, column 16 of the expression: syntax error" in found[(11, "bad-config")]
    assert len(problems) == 2, problems


def test_validate_refuses_an_expression_too_long_or_too_deep_at_its_line_and_one_over_its_budget(
    tmp_path: Path,
) -> None:
    """A deep expression used to crash the parser (RecursionError: `plugin-failed`, "a bug in
    the plugin"); too long or too deep is a `bad-config` problem at the option's line."""
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        "version: 2\n"
        "nodes:\n"
        "  - {id: src, kind: source, plugin: synthetic, config: {count: 5}}\n"
        "  - id: deep\n"
        "    kind: transform\n"
        "    plugin: filter\n"
        "    config:\n"
        f"      condition: '{'-' * 4000}1 > 0'\n"
        "  - id: long\n"
        "    kind: transform\n"
        "    plugin: map\n"
        "    config:\n"
        f"      set: {{x: '{' + '.join(['seq'] * 1100)}'}}\n"
        "  - id: small\n"
        "    kind: transform\n"
        "    plugin: route\n"
        "    config:\n"
        "      routes: {hot: 'seq + 1 > 2'}\n"
        "      max_work: 4\n"
        "  - {id: out, kind: sink, plugin: 'null'}\n"
        "edges: [{from: src, to: deep}, {from: deep, to: long}, {from: long, to: small},"
        " {from: small, to: out}, {from: small.hot, to: out}]\n"
    )
    done = run_cli("validate", str(graph), "--json")
    assert done.returncode == 1, done.stderr
    problems = json.loads(done.stdout)["problems"]
    found = {(p["line"], p["code"]): p["message"] for p in problems}
    assert "of the expression: nested deeper than 64 levels" in found[(8, "bad-config")]
    assert "of the expression: longer than 4096 characters (6597)" in found[(13, "bad-config")]
    assert (
        "routes.hot: line 1, column 1 of the expression: 5 nodes, each a unit of work, "
        "over max_work 4" in found[(17, "bad-config")]
    )
    assert len(problems) == 3, problems


@pytest.mark.slow
def test_schnitzel_run_of_a_processing_graph(tmp_path: Path) -> None:
    write_readings(tmp_path / "in.jsonl", [20.0, 20.2, 21.0, 30.0, 30.1, 95.0, 95.0, 95.0, 40.0])
    (tmp_path / "graph.yaml").write_text(
        """version: 2
nodes:
  - {id: src, kind: source, plugin: jsonl, config: {path: in.jsonl}}
  - {id: band, kind: policy, plugin: deadband, config: {delta: 0.5}}
  - {id: hot, kind: policy, plugin: threshold, config: {above: 90.0}}
  - {id: alerts, kind: sink, plugin: jsonl, config: {path: alerts.jsonl}}
edges:
  - {from: src, to: band}
  - {from: band, to: hot}
  - {from: hot, to: alerts}
"""
    )
    report_path = tmp_path / "report.json"
    done = run_cli(
        "run", str(tmp_path / "graph.yaml"), "--report-json", str(report_path),
        "--state-dir", str(tmp_path / "state"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    assert report["nodes"]["band"]["out"] == 5  # 20.0, 21.0, 30.0, 95.0, 40.0
    states = [a["payload"]["state"] for a in read_jsonl(tmp_path / "alerts.jsonl")]
    assert states == ["raised", "cleared"]


def test_route_ports_come_from_its_config_and_an_unconnected_one_is_a_warning(
    tmp_path: Path,
) -> None:
    def problems(edges: str) -> list[tuple[str, str, str]]:
        graph = tmp_path / "graph.yaml"
        graph.write_text(
            "version: 2\nnodes:\n"
            "  - {id: src, kind: source, plugin: synthetic, config: {count: 5}}\n"
            "  - {id: r, kind: transform, plugin: route, config: {routes: {hot: 'seq > 2'}}}\n"
            "  - {id: out, kind: sink, plugin: 'null'}\n"
            f"edges: [{{from: src, to: r}}, {edges}]\n"
        )
        done = run_cli("validate", str(graph), "--json")
        found = json.loads(done.stdout)["problems"]
        return [(p["severity"], p["code"], p["message"]) for p in found]

    assert problems("{from: r.hot, to: out}, {from: r, to: out}") == []
    assert sorted(problems("{from: r.cold, to: out}, {from: r, to: out}")) == [
        ("error", "bad-port", "node 'r' (route) has no output port 'cold'"),
        ("warning", "dangling-port", "output port 'hot' leads nowhere: what the node sends "
         "there is lost"),
    ]  # fmt: skip
