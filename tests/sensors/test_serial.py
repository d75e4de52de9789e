"""The `serial` source through a pseudo-terminal pair (`os.openpty`) standing in for the
device: lines split across reads, a bad line, and the device unplugged and plugged back."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from schnitzel import Runtime, RuntimeControl
from schnitzel_plugins.sensors.line_reader import Line, LineSplitter
from schnitzel_plugins.sensors.serial_source import SerialSource
from tests.runtime import plugins
from tests.runtime.harness import assert_counts_add_up, graph_from
from tests.sensors.test_http_ingest import GUARD_S, until


class Device:
    """A pty pair behind a stable name (a symlink, like /dev/serial/by-id/...): `unplug`
    closes it, `plug` makes a new pair behind the same name."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = self.slave = -1
        self.plug()

    def plug(self) -> None:
        self.master, self.slave = os.openpty()
        staging = self.link.with_suffix(".new")
        os.symlink(os.ttyname(self.slave), staging)
        os.replace(staging, self.link)

    def unplug(self) -> None:
        os.close(self.master)
        os.close(self.slave)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)


def test_lines_become_packets_and_the_device_is_reopened_when_back(tmp_path: Path) -> None:
    device = Device(tmp_path / "ttySENSOR")
    graph = graph_from(
        tmp_path,
        f"""
nodes:
  - id: src
    kind: source
    plugin: serial
    config: {{port: "{device.link}", format: json, reconnect_initial_s: 0.05}}
  - {{id: out, kind: sink, plugin: "tests.runtime.plugins:Recorder"}}
edges:
  - {{from: src, to: out}}
""",
    )
    received = plugins.RECORDS["out"]

    async def scenario() -> dict[str, Any]:
        runtime = Runtime(graph, state_dir=tmp_path / "state")
        control = RuntimeControl(runtime)
        task = asyncio.create_task(runtime.run())
        try:
            await until(lambda: "src" in runtime.nodes, "the runtime built its nodes")
            source = runtime.nodes["src"].plugin
            assert isinstance(source, SerialSource)
            await until(lambda: source.stats()["open"], "the device was opened")
            device.send(b'{"n": 0}\n{"n"')
            device.send(b": 1}\r\nnot json\n")
            device.send(b'{"n": ' + b"[" * 2000 + b"]" * 2000 + b"}\n")  # RecursionError
            await until(lambda: len(received) == 2, "two lines arrived")
            device.unplug()
            await until(lambda: not source.stats()["open"], "the device was seen gone")
            device.plug()
            await until(lambda: source.reconnects == 1, "the device was opened again")
            device.send(b'{"n": 2}\n')
            await until(lambda: len(received) == 3, "the line after the reconnect arrived")
        finally:
            control.stop()
        return await asyncio.wait_for(task, GUARD_S)

    try:
        report = asyncio.run(scenario())
    finally:
        device.unplug()
    assert_counts_add_up(report, graph)
    assert [p.payload for p in received] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [p.seq for p in received] == [0, 1, 4]  # seq 2 and 3 were the bad lines
    source = report["nodes"]["src"]
    assert source["errors"] == 2
    assert "not JSON" in source["recent_errors"][0]["message"]
    assert "nested too deep" in source["recent_errors"][1]["message"]
    assert source["plugin_stats"]["reconnects"] == 1


def test_the_splitter_keeps_unfinished_lines_and_cuts_endless_ones() -> None:
    lines = LineSplitter(max_bytes=8)
    assert lines.feed(b"ab") == []
    assert lines.feed(b"c\r\nde\n\nf") == [Line(b"abc"), Line(b"de"), Line(b"")]
    assert lines.feed(b"0123456789") == [Line(b"f0123456", cut=True)]
    assert lines.feed(b"still the same line\nok\n") == [Line(b"ok")]
    lines.feed(b"half")
    lines.reset()
    assert lines.feed(b"new\n") == [Line(b"new")]
