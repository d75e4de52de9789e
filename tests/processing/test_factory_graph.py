"""graphs/factory-sensor.yaml as an operator runs it: the machine that heats up raises one
alert (hysteresis, no flapping), the others none, and every second of every machine is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import GRAPHS, run_cli


@pytest.mark.slow
def test_factory_graph_alerts_once_on_the_machine_that_heats_up(tmp_path: Path) -> None:
    graph = tmp_path / "factory-sensor.yaml"
    shutil.copy(GRAPHS / "factory-sensor.yaml", graph)
    done = run_cli("run", str(graph), "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 0, done.stderr
    alerts = [json.loads(line) for line in (tmp_path / "out/factory-alerts.jsonl").open()]
    assert [(a["payload"]["key"], a["payload"]["state"]) for a in alerts] == [("m2", "raised")]
    assert alerts[0]["payload"]["value"] > 90.0
    seconds = [
        json.loads(line)["payload"] for line in (tmp_path / "out/factory-seconds.jsonl").open()
    ]
    assert {s["key"] for s in seconds} == {"m0", "m1", "m2"}
    for s in seconds:
        assert s["count"] >= 1 and s["max"] >= s["mean"]
        if s["key"] != "m2":
            assert 65.0 <= s["mean"] < 66.0
