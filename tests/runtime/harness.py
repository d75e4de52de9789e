"""Build graphs from YAML text, run them, and check that every packet is accounted for."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from schnitzel import Runtime, RuntimeControl
from schnitzel.validate import ValidatedGraph
from schnitzel.validate.validator import validate_text
from tests.runtime import plugins

TEST_PLUGINS = "tests.runtime.plugins"
HEADER = f"version: 2\nruntime: {{allow_modules: [{TEST_PLUGINS}]}}\n"


def graph_from(tmp_path: Path, body: str) -> ValidatedGraph:
    """A validated graph from the nodes/edges YAML `body`, living in `tmp_path`."""
    path = tmp_path / "graph.yaml"
    path.write_text(HEADER + body)
    result = validate_text(path.read_text(), source=str(path), path=path)
    assert result.graph is not None, [p.render() for p in result.report.problems]
    return result.graph


def run(
    graph: ValidatedGraph, tmp_path: Path, hang_guard_s: float = 60.0, **options: Any
) -> dict[str, Any]:
    """Run to a stop condition (with a hang guard, only against a hung run); return the
    report."""
    runtime_options = {k: options.pop(k) for k in ("drain_timeout_s",) if k in options}
    runtime = Runtime(graph, state_dir=tmp_path / "state", **runtime_options)
    return asyncio.run(asyncio.wait_for(runtime.run(**options), hang_guard_s))


def steer(
    graph: ValidatedGraph,
    state_dir: Path,
    steps: Callable[[Runtime, RuntimeControl], Awaitable[None]],
    *,
    stop: bool = True,
    guard_s: float = 60.0,
    drain_timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Run `graph` while `steps(runtime, control)` steers it; then stop it (with `stop`;
    else the run ends by itself) and check every packet is accounted for. The report.
    `drain_timeout_s`: the runtime's; shorter where a sink that cannot deliver would hold
    the stop for the default 30 s."""

    async def scenario() -> dict[str, Any]:
        runtime = Runtime(graph, state_dir=state_dir, drain_timeout_s=drain_timeout_s)
        control = RuntimeControl(runtime)
        task = asyncio.create_task(runtime.run())
        try:
            await steps(runtime, control)
        finally:
            if stop:
                control.stop()
        return await asyncio.wait_for(task, guard_s)

    report = asyncio.run(scenario())
    assert_counts_add_up(report, graph)
    return report


def run_until(
    graph: ValidatedGraph,
    tmp_path: Path,
    reached: Callable[[dict[str, Any]], bool],
    *,
    drain_timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Run `graph` (state in `tmp_path / "state"`, as `run`) until its live report satisfies
    `reached` (a hang guard only), then stop it: the final report. For a state the run
    reaches in its own time, such as a whole backlog kept while the backend is down, where a
    run of a set duration could end before it on a busy machine."""
    from tests.waits import until

    async def steps(_runtime: Runtime, control: RuntimeControl) -> None:
        await until(lambda: reached(control.snapshot()))

    return steer(graph, tmp_path / "state", steps, drain_timeout_s=drain_timeout_s)


def backlog_of(node: str, count: int, trouble: str = "") -> Callable[[dict[str, Any]], bool]:
    """For `run_until`: `node`'s durable backlog holds `count` packets, and its trouble's
    reason says `trouble`."""

    def reached(report: dict[str, Any]) -> bool:
        entry = report["nodes"][node]
        reason = (entry["trouble"] or {}).get("reason", "")
        return bool(entry["durable"]["backlog"] == count and trouble in reason)

    return reached


def assert_counts_add_up(report: dict[str, Any], graph: ValidatedGraph) -> None:
    """Every packet is accounted for, per node and along every edge.

    - a node received exactly what its upstream nodes emitted on the edges into it (plus
      dead letters sent to it);
    - what a node received (or found in its durable store, or took back from its parked
      packets or its quarantine table) was processed, dropped (by reason) or is still queued;
    - what a 1:1 node processed was passed on, filtered or failed; a sink delivered or failed.
    """
    nodes = report["nodes"]
    expected_in: Counter[str] = Counter()
    for edge in graph.edges:
        expected_in[edge.target] += nodes[edge.source]["out"]
    for node_id, resolved in graph.nodes.items():
        if resolved.spec.on_error == "dead_letter" and resolved.spec.dead_letter:
            node = nodes[node_id]  # abandoned packets never reached the plugin's error path
            expected_in[resolved.spec.dead_letter] += node["errors"] - node["abandoned"]
    for node_id, node in nodes.items():
        if node["kind"] == "source":
            continue
        assert node["received"] == expected_in[node_id], node_id
        durable = node.get("durable", {})
        replayed = durable.get("replayed", 0)  # left by an earlier run
        # a packet leaving the parked table re-enters its node: requeued, it is queued (and
        # taken) again; dropped from there, it is counted in `dropped`
        unparked = durable.get("requeued", 0) + durable.get("parked_dropped", 0)
        # and so does a quarantined packet an operator requeued (it never counted as queued)
        unquarantined = durable.get("requeued_from_quarantine", 0)
        arrived = node["received"] + replayed + unparked + unquarantined
        assert arrived == node["in"] + node["dropped"] + node["queue_depth"], node_id
        assert sum(node["dropped_by_reason"].values()) == node["dropped"], node_id
    totals = report["totals"]
    assert totals["emitted"] == sum(n["out"] for n in nodes.values() if n["kind"] == "source")
    assert totals["delivered"] == sum(n["out"] for n in nodes.values() if n["kind"] == "sink")
    assert totals["dropped"] == sum(n["dropped"] for n in nodes.values())


def assert_one_to_one(report: dict[str, Any], node_id: str) -> None:
    """For a node that emits at most one packet per input: in = out + filtered + errors."""
    node = report["nodes"][node_id]
    assert node["in"] == node["out"] + node["filtered"] + node["errors"], node


def reset_plugins() -> None:
    plugins.reset()
