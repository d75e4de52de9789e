"""The run report has one typed definition (schnitzel/contract/run_report.py): what a real
runtime builds is exactly that shape, and a client that reads a report from the control socket
names a key it lacks instead of showing 0."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from schnitzel import RuntimeControl
from schnitzel.contract.exact_shape import NotExact, read_exact
from schnitzel.contract.run_report import (
    EventEntry,
    RunReport,
    node_summary,
    parse_events,
    parse_node_summaries,
    parse_run_report,
)
from schnitzel.errors import ReportShapeError
from schnitzel.runtime import Runtime
from schnitzel_tui.attached import AttachedSource
from tests.control.harness import Served, serving
from tests.control.test_ctl_end_to_end import ctl
from tests.http.test_http_trouble import closed_port
from tests.runtime.harness import graph_from, steer
from tests.waits import until


def every_optional_part(url: str) -> str:
    """A paced source, a durable inbox and a sink in trouble: every key a report may hold
    (but `plugin_stats`, which no core plugin has)."""
    return f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{rate_hz: 500.0}}}}
  - id: mid
    kind: transform
    plugin: passthrough
    inbox: {{durable: {{path: state/mid.db}}}}
  - id: out
    kind: sink
    plugin: http
    config: {{url: "{url}", retry_initial_s: 0.01, retry_max_s: 0.05}}
edges:
  - {{from: src, to: mid}}
  - {{from: mid, to: out}}
"""


def test_the_report_a_runtime_builds_has_exactly_the_typed_keys(tmp_path: Path) -> None:
    graph = graph_from(tmp_path, every_optional_part(f"http://127.0.0.1:{closed_port()}/in"))
    live: list[RunReport] = []
    events: list[EventEntry] = []

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        async with asyncio.timeout(60):
            while control.snapshot()["nodes"]["out"]["trouble"] is None or not control.events():
                await asyncio.sleep(0.01)
        live.append(control.snapshot())
        events.extend(control.events())

    # The sink never delivers: a short drain ends the stop instead of the default 30 s.
    final = steer(graph, tmp_path / "state", steps, drain_timeout_s=1.0)
    for report in (*live, final):
        # parsing keeps only the keys the type names and fails on any it lacks: equal both ways
        assert parse_run_report(report, "this test") == report
        read_as_pydantic_reads(RunReport, report)
        read_as_pydantic_reads(RunReport, with_extra_keys_and_whole_floats(report))
        nodes = report["nodes"]
        assert "rate_hz" in nodes["src"] and "durable" in nodes["mid"]
        assert "delivered" in nodes["out"]
    assert live[0]["nodes"]["out"]["trouble"] is not None
    summaries = [node_summary(node_id, n) for node_id, n in final["nodes"].items()]
    assert parse_node_summaries(summaries, "this test") == summaries
    assert parse_events(events, "this test") == events  # the sink's trouble, at least


def read_as_pydantic_reads(shape: Any, data: Any) -> None:
    """The exact-shape reader returns what pydantic returns, value for value and type for
    type (JSON tells 1 from 1.0)."""
    exact = json.dumps(read_exact(shape, data), sort_keys=True)
    assert exact == json.dumps(TypeAdapter(shape).validate_python(data), sort_keys=True)


def with_extra_keys_and_whole_floats(report: RunReport) -> Any:
    """A report as a newer runtime might send it: keys this version does not name, and
    floats that JSON carried as integers."""
    changed: Any = json.loads(json.dumps(report))
    changed["newer_key"] = {"anything": [1, 2]}
    changed["duration_s"] = 3
    for node in changed["nodes"].values():
        node["newer_node_key"] = 1
        node["latency_ms"] = {"p50": 0, "p99": 2}
    return changed


@pytest.mark.parametrize(
    ("shape", "value"),
    [
        (int, True),  # pydantic decides what a bool means as an int
        (int, 1.0),
        (float, "1.5"),
        (str, None),
        (dict[str, int], {1: 2}),
        (list[EventEntry], [{"seq": 1, "ts": 0.0, "level": "info", "node": None}]),  # no message
        (RunReport, {"status": "ok"}),
        (Any | int, 1),  # a union other than `X | None`
        # an int too large for a float (json reads any number of digits)
        pytest.param(float, 10**400, id="float-int-too-large"),
    ],
)
def test_a_value_not_plainly_of_its_shape_is_left_to_pydantic(shape: Any, value: Any) -> None:
    with pytest.raises(NotExact):
        read_exact(shape, value)


def test_an_int_too_large_for_a_float_is_named_not_an_overflow_error() -> None:
    events = [{"seq": 1, "ts": 10**400, "level": "info", "node": None, "message": "m"}]
    with pytest.raises(ReportShapeError, match=r"0\.ts"):
        parse_events(events, "the control socket /run/x.sock")


def test_a_missing_key_is_named_with_its_path_not_read_as_zero() -> None:
    old: dict[str, Any] = {"status": "running", "nodes": {"mid": {"kind": "transform"}}}
    with pytest.raises(ReportShapeError) as raised:
        parse_run_report(old, "the control socket /run/x.sock")
    message = str(raised.value)
    assert message.startswith("the run report from the control socket /run/x.sock")
    assert "totals: Field required" in message
    assert "and 35 more" in message  # 10 top-level and 30 node keys: five listed
    assert message.endswith("run the same schnitzel version on both ends")


class RenamedQueueDepth(RuntimeControl):
    """A runtime of another version: its report calls `queue_depth` `depth`."""

    def snapshot(self) -> Any:
        report: Any = super().snapshot()
        for node in report["nodes"].values():
            node["depth"] = node.pop("queue_depth")
        return report


def test_an_attached_console_names_a_renamed_key_instead_of_showing_0(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path, control_class=RenamedQueueDepth) as served:
            await until(lambda: served.runtime.nodes["out"].metrics.delivered > 0)
            source = AttachedSource(served.path)
            try:
                with pytest.raises(ReportShapeError, match=r"nodes\.src\.queue_depth: Field req"):
                    await source.snapshot()
                assert source.connected  # the runtime answered: not a lost connection
            finally:
                await source.close()

    asyncio.run(main())


def test_ctl_status_names_a_renamed_key_and_exits_1_while_json_prints_the_answer(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with serving(tmp_path, control_class=RenamedQueueDepth) as served:
            await until(lambda: served.runtime.nodes["out"].metrics.delivered > 0)
            await check(served)

    async def check(served: Served) -> None:
        text: subprocess.CompletedProcess[str] = await asyncio.to_thread(ctl, served.path, "status")
        assert text.returncode == 1 and text.stdout == ""
        assert "the runtime's `status` answer does not have the shape" in text.stderr
        assert "nodes.src.queue_depth: Field required" in text.stderr
        as_json = await asyncio.to_thread(ctl, served.path, "status", "--json")
        assert as_json.returncode == 0 and '"depth"' in as_json.stdout

    asyncio.run(main())
