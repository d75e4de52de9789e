"""The `mavlink` source listening on UDP, fed HEARTBEAT and ATTITUDE by pymavlink itself."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from schnitzel import Runtime, RuntimeControl
from schnitzel.validate.validator import validate_text
from tests.runtime import plugins
from tests.runtime.harness import HEADER, assert_counts_add_up, graph_from
from tests.sensors.test_http_ingest import GUARD_S

mavutil = pytest.importorskip("pymavlink.mavutil")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_heartbeat_and_attitude_over_udp_become_telemetry_packets(tmp_path: Path) -> None:
    port = free_udp_port()
    graph = graph_from(
        tmp_path,
        f"""
nodes:
  - id: drone
    kind: source
    plugin: mavlink
    config: {{url: "udpin:127.0.0.1:{port}", types: [HEARTBEAT, ATTITUDE]}}
  - {{id: out, kind: sink, plugin: "tests.runtime.plugins:Recorder"}}
edges:
  - {{from: drone, to: out}}
""",
    )
    received = plugins.RECORDS["out"]

    def types() -> set[str]:
        return {p.meta["mav_type"] for p in received}

    async def scenario() -> dict[str, Any]:
        runtime = Runtime(graph, state_dir=tmp_path / "state")
        control = RuntimeControl(runtime)
        task = asyncio.create_task(runtime.run())
        autopilot = mavutil.mavlink_connection(
            f"udpout:127.0.0.1:{port}", source_system=7, source_component=1
        )
        try:
            mav = autopilot.mav
            deadline = time.monotonic() + GUARD_S
            # UDP sent before the source listens is lost: send until both types arrived
            while types() != {"HEARTBEAT", "ATTITUDE"}:
                assert not task.done(), task.result()
                assert time.monotonic() < deadline, "no MAVLink message arrived"
                mav.heartbeat_send(
                    mavutil.mavlink.MAV_TYPE_QUADROTOR, mavutil.mavlink.MAV_AUTOPILOT_PX4, 0, 0, 4
                )
                mav.attitude_send(1234, 0.1, -0.2, 1.5, 0.01, 0.02, 0.03)
                mav.sys_status_send(0, 0, 0, 500, 12000, -1, 80, 0, 0, 0, 0, 0, 0)  # filtered
                await asyncio.sleep(0.05)  # pace the resends; the loop polls for the arrival
        finally:
            autopilot.close()
            control.stop()
        return await asyncio.wait_for(task, GUARD_S)

    report = asyncio.run(scenario())
    assert_counts_add_up(report, graph)
    heartbeat = next(p for p in received if p.meta["mav_type"] == "HEARTBEAT")
    attitude = next(p for p in received if p.meta["mav_type"] == "ATTITUDE")
    assert heartbeat.kind == "telemetry"
    assert (heartbeat.meta["system"], heartbeat.meta["component"]) == (7, 1)
    assert heartbeat.payload["type"] == mavutil.mavlink.MAV_TYPE_QUADROTOR
    assert heartbeat.payload["autopilot"] == mavutil.mavlink.MAV_AUTOPILOT_PX4
    assert attitude.payload["mavpackettype"] == "ATTITUDE"
    assert attitude.payload["time_boot_ms"] == 1234
    assert (attitude.payload["roll"], attitude.payload["pitch"], attitude.payload["yaw"]) == (
        pytest.approx(0.1),
        pytest.approx(-0.2),
        pytest.approx(1.5),
    )
    by_type = report["nodes"]["drone"]["plugin_stats"]["by_type"]
    assert set(by_type) == {"HEARTBEAT", "ATTITUDE"}  # SYS_STATUS is not in `types`


@pytest.mark.parametrize(
    ("types", "dialect", "wrong"),
    [
        ("[HEARTBEAT, GLOBAL_POSITION]", "common", "GLOBAL_POSITION"),  # _INT forgotten
        ("[HEARTBEAT, AHRS2]", "common", "AHRS2"),  # ArduPilot's, not in common
    ],
)
def test_a_type_the_dialect_does_not_have_is_refused_by_validation_naming_it(
    tmp_path: Path, types: str, dialect: str, wrong: str
) -> None:
    """A name in `types` no message of the dialect has: no message ever matched it, and the
    source kept (silently) nothing of what the graph asked for. Refused before anything runs
    (`schnitzel validate` too)."""
    path = tmp_path / "graph.yaml"
    path.write_text(
        HEADER
        + f"""
nodes:
  - id: drone
    kind: source
    plugin: mavlink
    config: {{url: "udpin:127.0.0.1:{free_udp_port()}", types: {types}, dialect: {dialect}}}
  - {{id: out, kind: sink, plugin: "null"}}
edges:
  - {{from: drone, to: out}}
"""
    )
    result = validate_text(path.read_text(), source=str(path), path=path)
    assert result.graph is None
    said = [p.render() for p in result.report.problems]
    assert len(said) == 1 and wrong in said[0] and repr(dialect) in said[0], said
    assert "types" in said[0], said
