"""The rtsp source against a real RTSP server on loopback (GStreamer's, in a subprocess):
killed, restarted and frozen (SIGSTOP), the source reconnects, the watchdog fires, keys never
repeat, and the node's stats say what happened."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from schnitzel import Runtime, RuntimeControl
from schnitzel.validate import load_graph
from tests.vision.plugins import KEYS

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def _server_available() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0');"
         "from gi.repository import GstRtspServer, Gst; Gst.init(None);"
         "assert Gst.ElementFactory.find('x264enc')"],
        capture_output=True,
        check=False,
    )  # fmt: skip
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _server_available(),
    reason="no GStreamer RTSP server: apt-get install gir1.2-gst-rtsp-server-1.0 python3-gi "
    "gstreamer1.0-plugins-ugly (.ci/run does)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[str]:
    server = subprocess.Popen(
        [SYSTEM_PYTHON, str(SERVER), str(port)], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "ready"
    return server


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for server in started:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGCONT)
            server.kill()
            server.wait()


async def until(condition: Callable[[], bool], what: str, guard_s: float = 60.0) -> None:
    """Poll until `condition` holds; the guard only keeps a broken build from hanging."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + guard_s
    while not condition():
        if loop.time() > give_up:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


@pytest.mark.slow  # an RTSP server killed, restarted and frozen
def test_rtsp_reconnects_after_kill_restart_and_freeze_and_never_repeats_a_key(
    tmp_path: Path, servers: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    servers.append(start_server(port))
    graph = tmp_path / "g.yaml"
    graph.write_text(
        "version: 2\nruntime: {allow_modules: [tests.vision.plugins]}\nnodes:\n"
        f"  - id: cam\n    kind: source\n    plugin: rtsp\n"
        f"    config: {{url: 'rtsp://127.0.0.1:{port}/cam', open_timeout_s: 5, "
        "read_timeout_s: 2, stall_s: 4, backoff_first_s: 0.2, backoff_max_s: 1}\n"
        "  - {id: keys, kind: sink, plugin: 'tests.vision.plugins:KeySink'}\n"
        "edges: [{from: cam, to: keys}]\n"
    )
    KEYS.clear()
    seen: dict[str, Any] = {}

    async def steps(runtime: Runtime) -> None:
        stats = runtime.nodes["cam"].plugin.stats  # type: ignore[attr-defined]
        await until(lambda: stats().get("frames_out", 0) >= 10, "frames from the server")
        first = stats()["epoch"]
        servers[0].kill()  # the server dies
        servers[0].wait()
        await until(lambda: not stats()["connected"], "the loss noticed")
        seen["lost"] = stats()["last_error"]
        servers.append(start_server(port))  # and comes back
        await until(lambda: stats()["reconnects"] >= 1, "a reconnect")
        out = stats()["frames_out"]
        await until(lambda: stats()["frames_out"] >= out + 10, "frames after the reconnect")
        assert stats()["epoch"] > first
        os.kill(servers[1].pid, signal.SIGSTOP)  # frozen: connected, silent
        await until(lambda: not stats()["connected"], "the frozen stream noticed")
        seen["frozen"] = stats()["last_error"]
        os.kill(servers[1].pid, signal.SIGCONT)
        await until(lambda: stats()["reconnects"] >= 2, "a reconnect after the freeze")
        out = stats()["frames_out"]
        await until(lambda: stats()["frames_out"] >= out + 10, "frames after the freeze")

    async def scenario() -> dict[str, Any]:
        runtime = Runtime(load_graph(graph), state_dir=tmp_path / "state")
        task = asyncio.create_task(runtime.run())
        try:
            await steps(runtime)
        finally:
            RuntimeControl(runtime).stop()
        report = await asyncio.wait_for(task, 60)
        seen["events"] = list(runtime.events.recent)
        return report

    report = asyncio.run(scenario())
    keys = KEYS["keys"]
    assert len(keys) == len(set(keys)) == report["nodes"]["keys"]["delivered"]
    epochs = {key.split(":")[1] for key in keys}
    assert len(epochs) >= 3  # one per connection
    assert seen["lost"] and seen["frozen"]  # the operator is told why (the last error)
    said = [e.message for e in seen["events"] if e.node == "cam"]  # the console's event pane
    assert sum("stream lost: no frame" in m or "stalled" in m for m in said) >= 2, said
    assert (
        sum("reconnected (epoch" in m for m in said)
        == report["nodes"]["cam"]["plugin_stats"]["reconnects"]
    )
    cam = report["nodes"]["cam"]["plugin_stats"]
    assert cam["reconnects"] >= 2
    assert cam["frames_out"] == report["nodes"]["cam"]["out"] == len(keys)
    # every frame read was handed on, replaced by a newer one (skipped), or still waiting
    assert 0 <= cam["frames_in"] - cam["frames_out"] - cam["skipped"] <= 1
