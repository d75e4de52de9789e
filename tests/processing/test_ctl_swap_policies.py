"""An operator swaps policies on a running `schnitzel run` with `schnitzel ctl`: dedup ->
threshold -> rate_limit, and a rollback to threshold, each on the same node while packets
flow; the final report accounts for every packet."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.control.harness import socket_dir
from tests.control.test_ctl_end_to_end import (
    ctl,
    ctl_json,
    start_run,
    stop,
    until_answering,
    wait_for,
)
from tests.runtime.harness import graph_from

GRAPH = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 200.0, payload: {value: 90}}}
  - {id: mid, kind: policy, plugin: dedup}
  - {id: out, kind: sink, plugin: jsonl, config: {path: out.jsonl}}
edges:
  - {from: src, to: mid}
  - {from: mid, to: out}
"""


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with socket_dir() as directory:
        yield directory


@pytest.mark.slow
def test_ctl_swaps_dedup_threshold_rate_limit_and_rolls_back(
    tmp_path: Path, short_dir: Path
) -> None:
    graph_from(tmp_path, GRAPH)
    sock = short_dir / "run.sock"
    process = start_run(tmp_path, "--state-dir", str(tmp_path / "state"), "--control-socket",
                        str(sock))  # fmt: skip

    def mid() -> dict[str, Any]:
        node: dict[str, Any] = ctl_json(sock, "status")["nodes"]["mid"]
        return node

    try:
        until_answering(sock, process)
        wait_for(lambda: mid()["in"] >= 50)
        hot, rate = tmp_path / "hot.yaml", tmp_path / "rate.yaml"
        hot.write_text("above: 80.0\nhysteresis: 2.0\n")
        rate.write_text("rate_hz: 5.0\nby: null\n")
        swapped = ctl(sock, "swap", "mid", "--plugin", "threshold", "--config-file", str(hot))
        assert swapped.returncode == 0, swapped.stderr
        wait_for(lambda: (mid().get("plugin_stats") or {}).get("raised") == 1)
        swapped = ctl(sock, "swap", "mid", "--plugin", "rate_limit", "--config-file", str(rate))
        assert swapped.returncode == 0, swapped.stderr
        wait_for(lambda: (mid().get("plugin_stats") or {}).get("limited", 0) >= 20)
        rolled = ctl(sock, "rollback", "mid", "--why", "back to alerts")
        assert rolled.returncode == 0, rolled.stderr
        wait_for(lambda: mid()["plugin"] == "threshold" and mid()["generation"] == 3)
        wait_for(lambda: (mid().get("plugin_stats") or {}).get("raised") == 1)
    finally:
        stop(process)
    report = json.loads((tmp_path / "report.json").read_text())
    node = report["nodes"]["mid"]
    assert node["plugin"] == "threshold" and node["generation"] == 3
    assert node["errors"] == 0 and report["totals"]["dropped"] == 0
    assert node["in"] == node["out"] + node["filtered"]  # each a reading in, at most one out
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    kinds = [row["kind"] for row in rows]
    # dedup passed readings; each threshold raised once (the rolled-back one starts afresh:
    # rate_limit's state is not its own); rate_limit passed some readings between them
    assert kinds.count("alert") == 2
    first, second = (n for n, kind in enumerate(kinds) if kind == "alert")
    assert set(kinds[:first]) == {"sensor"} and first >= 50
    assert set(kinds[first + 1 : second]) == {"sensor"} and second > first + 1
    assert len(rows) == report["nodes"]["out"]["out"]
