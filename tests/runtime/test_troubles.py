"""Trouble a plugin handles itself (`context.report_trouble`) reaches the operator: one event
per trouble however often it is reported, a new reason at most every CHANGE_EVERY_S, one
event when it is over; the health reason says why first. The watch's clock is driven by
hand, so nothing here waits; last, a blocking plugin reporting from its own thread through a
real run."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import ClassVar

from schnitzel.contract.packet import StreamPacket
from schnitzel.registry.plugin import NodeContext, Sink
from schnitzel.runtime import Runtime
from schnitzel.runtime.events import EventLog
from schnitzel.runtime.health import Health, judge_health
from schnitzel.runtime.metrics import NodeMetrics, RateSample
from schnitzel.runtime.troubles import CHANGE_EVERY_S, QUIET_S, RECENT_ERROR, TroubleWatch
from schnitzel.validate.validator import load_graph


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def watched() -> tuple[NodeContext, TroubleWatch, EventLog, NodeMetrics, Clock]:
    context = NodeContext("uplink", Path("."), Path("state"), logging.getLogger("t"))
    clock = Clock()
    return (
        context,
        TroubleWatch(context.trouble, clock),
        EventLog(logging.getLogger("t.events")),
        NodeMetrics(),
        clock,
    )


def messages(events: EventLog) -> list[tuple[str, str]]:
    return [(e.level, e.message) for e in events.recent]


def test_a_dead_backend_reported_ten_thousand_times_makes_one_event() -> None:
    context, watch, events, metrics, _ = watched()
    for _ in range(10_000):
        context.report_trouble("http://b/ingest: ConnectError: connection refused")
    for _ in range(5):
        watch.tick("uplink", events, metrics, progressed=False)
    assert messages(events) == [
        ("warning", "http://b/ingest: ConnectError: connection refused (retrying)")
    ]
    assert events.recent[0].node == "uplink"
    assert [e.error for e in metrics.recent_errors] == [RECENT_ERROR]
    assert metrics.errors == 0  # retried, not failed
    assert "connection refused since" in watch.health_reason()
    assert watch.health_reason().endswith("10000 retries")
    report = watch.report()
    assert report is not None and report["retries"] == 10_000


def test_a_new_reason_is_told_at_most_every_change_interval() -> None:
    context, watch, events, metrics, clock = watched()
    context.report_trouble("connection refused")
    watch.tick("uplink", events, metrics, progressed=False)
    context.report_trouble("connection refused; circuit open")
    watch.tick("uplink", events, metrics, progressed=False)
    assert len(events.recent) == 1  # too soon after the first
    assert "circuit open" in watch.health_reason()  # the health reason is always current
    clock.now += CHANGE_EVERY_S
    watch.tick("uplink", events, metrics, progressed=False)
    assert len(events.recent) == 2
    assert events.recent[-1].message.startswith("connection refused; circuit open (2 retries")
    clock.now += CHANGE_EVERY_S
    context.report_trouble("connection refused; circuit open")  # the same: nothing new
    watch.tick("uplink", events, metrics, progressed=False)
    assert len(events.recent) == 2


def test_recovery_ends_the_trouble_with_one_event() -> None:
    context, watch, events, metrics, _ = watched()
    for _ in range(3):
        context.report_trouble("HTTP 503 Service Unavailable")
    watch.tick("uplink", events, metrics, progressed=False)
    for _ in range(100):  # after every success, at no cost
        context.report_recovered()
    watch.tick("uplink", events, metrics, progressed=True)
    watch.tick("uplink", events, metrics, progressed=True)
    assert [level for level, _ in messages(events)] == ["warning", "info"]
    assert "recovered after 3 retries" in events.recent[-1].message
    assert "HTTP 503" in events.recent[-1].message
    assert watch.health_reason() == "" and watch.report() is None
    assert context.trouble.total == 3


def test_trouble_that_begins_and_ends_between_two_ticks_still_leaves_a_trace() -> None:
    context, watch, events, metrics, clock = watched()
    context.report_trouble("ReadTimeout: no answer within timeout_s")
    context.report_recovered()
    watch.tick("uplink", events, metrics, progressed=True)
    assert messages(events) == [
        ("info", "ReadTimeout: no answer within timeout_s: 1 retries in 0.0 s, then recovered")
    ]
    context.report_trouble("ReadTimeout: no answer within timeout_s")  # a flapping backend
    context.report_recovered()
    watch.tick("uplink", events, metrics, progressed=True)
    assert len(events.recent) == 1  # not one event per blip
    clock.now += CHANGE_EVERY_S
    context.report_trouble("ReadTimeout: no answer within timeout_s")
    context.report_recovered()
    watch.tick("uplink", events, metrics, progressed=True)
    assert len(events.recent) == 2


def test_trouble_no_longer_reported_while_packets_move_is_over() -> None:
    context, watch, events, metrics, clock = watched()
    context.report_trouble("connection reset")
    clock.now = context.trouble.last
    watch.tick("uplink", events, metrics, progressed=False)
    clock.now += QUIET_S
    watch.tick("uplink", events, metrics, progressed=False)  # no progress: still in trouble
    assert context.trouble.active
    watch.tick("uplink", events, metrics, progressed=True)
    assert not context.trouble.active
    assert "not reported for 10 s while packets move" in events.recent[-1].message


def test_reports_from_many_threads_are_all_kept_as_one_trouble() -> None:
    context, watch, events, metrics, _ = watched()
    threads = [
        threading.Thread(
            target=lambda: [context.report_trouble("connection refused") for _ in range(1000)]
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    watch.tick("uplink", events, metrics, progressed=False)
    assert len(events.recent) == 1 and context.trouble.active
    assert 0 < context.trouble.retries <= 4000


def test_the_health_reason_says_why_before_what_it_did() -> None:
    window = (10.0, RateSample(10.0, 0, 0, 0, 0, 0))
    stalled = judge_health(
        crashed=None,
        delta=window,
        depth=40,
        capacity=None,
        idle_s=30.0,
        paused=False,
        trouble="connection refused since 08:00:01, 12 retries",
    )
    assert stalled == (
        Health.FAILING,
        "connection refused since 08:00:01, 12 retries; stalled: 40 packets queued, "
        "no progress for 30 s",
    )
    moving = judge_health(
        crashed=None,
        delta=(10.0, RateSample(10.0, 50, 50, 48, 0, 0)),
        depth=2,
        capacity=1024,
        idle_s=0.0,
        paused=False,
        trouble="HTTP 503 Service Unavailable since 08:00:01, 2 retries",
    )
    assert moving == (Health.DEGRADED, "HTTP 503 Service Unavailable since 08:00:01, 2 retries")
    calm = judge_health(
        crashed=None, delta=window, depth=0, capacity=1024, idle_s=0.0, paused=False
    )
    assert calm == (Health.OK, "")


class BusyDevice(Sink):
    """A blocking sink whose device is busy for a while on packet 3: it retries in its own
    thread, reporting why, then delivers."""

    name: ClassVar[str] = "busy_device"
    blocking: ClassVar[bool] = True

    def deliver(self, packet: StreamPacket) -> None:
        if packet.seq == 3:
            for _ in range(5):
                self.context.report_trouble("/dev/ttyUSB0: device busy")
        self.context.report_recovered()


def test_a_plugin_retrying_in_its_own_thread_is_told_in_the_report_and_the_events(
    tmp_path: Path,
) -> None:
    path = tmp_path / "graph.yaml"
    path.write_text(
        f"""version: 2
runtime: {{allow_modules: [{__name__}]}}
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: 10}}}}
  - {{id: out, kind: sink, plugin: "{__name__}:BusyDevice"}}
edges:
  - {{from: src, to: out}}
"""
    )
    runtime = Runtime(load_graph(path), state_dir=tmp_path / "state")
    report = asyncio.run(asyncio.wait_for(runtime.run(), 60))
    out = report["nodes"]["out"]
    assert out["retries"] == 5 and out["trouble"] is None
    assert out["errors"] == 0 and out["delivered"] == 10
    told = [e.message for e in runtime.events.recent if e.node == "out"]
    assert any("/dev/ttyUSB0: device busy" in m for m in told), told
    assert any("recovered" in m for m in told), told
    assert [e["error"] for e in out["recent_errors"]] == [RECENT_ERROR] * len(out["recent_errors"])
    assert out["recent_errors"], "the trouble is among the recent errors"
