"""The http sink behind a durable inbox, against a real server on 127.0.0.1 that goes down,
comes back, and answers 500 and 429: nothing is lost, replay keeps order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schnitzel.runtime import Runtime
from tests.http_backend import LoopbackBackend
from tests.runtime.harness import assert_counts_add_up, backlog_of, graph_from, run, run_until

pytestmark = pytest.mark.slow  # real outages and retries against a real server

OUTAGE_S = 30.0


@pytest.fixture
def backend() -> Iterator[LoopbackBackend]:
    with LoopbackBackend() as server:
        yield server


def uplink(url: str, source: str, sink_options: str = "") -> str:
    return f"""
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {source}}}
  - id: out
    kind: sink
    plugin: http
    config: {{url: "{url}", retry_initial_s: 0.05{sink_options}}}
    inbox: {{durable: {{path: state/out.db}}}}
edges:
  - {{from: src, to: out}}
"""


def delivered_keys(backend: LoopbackBackend) -> set[str | None]:
    return set(backend.keys())


def test_500_and_429_with_retry_after_are_retried_until_delivered(
    tmp_path: Path, backend: LoopbackBackend
) -> None:
    backend.fail_next(6, 500)
    backend.fail_next(3, 429, retry_after=1)
    g = graph_from(tmp_path, uplink(backend.url, "{count: 200}"))
    report = run(g, tmp_path)
    assert report["totals"]["delivered"] == 200 and report["totals"]["errors"] == 0
    assert delivered_keys(backend) == {f"src:{n}" for n in range(200)}
    refused = [r for r in backend.requests if r.status == 429]
    after = [r for r in backend.requests if r.at > refused[-1].at]
    assert after[0].at - refused[-1].at >= 1.0  # Retry-After: 1 was honoured
    assert_counts_add_up(report, g)


def test_a_backlog_from_a_dead_backend_replays_in_order_after_a_restart(
    tmp_path: Path, backend: LoopbackBackend
) -> None:
    backend.stop()
    g = graph_from(tmp_path, uplink(backend.url, "{count: 300}"))
    first = run_until(g, tmp_path, backlog_of("out", 300), drain_timeout_s=10)
    assert first["totals"]["delivered"] == 0
    assert first["nodes"]["out"]["durable"]["backlog"] == 300
    assert first["nodes"]["out"]["errors"] == 0  # retried, never failed

    backend.start()
    second = run(graph_from(tmp_path, uplink(backend.url, "{count: 0}")), tmp_path)
    assert backend.keys() == [f"src:{n}" for n in range(300)]  # in order, once each
    assert second["nodes"]["out"]["durable"]["replayed"] == 300


# How long after the backend is back the first packet may arrive. The sink's breaker probes at
# least every `breaker_max_cooldown_s` (1.5 s by default), so on an idle machine delivery resumes
# within 2 s; the margin is for a machine busy with other work, where the test must not fail
# for being slow. The test prints the figure (`pytest -s`): 0.3-0.7 s here on an idle machine.
RESUME_MARGIN_S = 20.0
HANG_GUARD_S = 60.0


async def until(condition: Any, what: str) -> None:
    """Poll until `condition()` holds; the guard only stops a hung test."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < HANG_GUARD_S, f"never happened: {what}"
        await asyncio.sleep(0.01)


def test_a_30_s_outage_loses_nothing_and_delivery_resumes(
    tmp_path: Path, backend: LoopbackBackend
) -> None:
    # 50/s: the outage still leaves a backlog of about 1,500 for the next run to replay,
    # one request at a time (at 200/s it was 6,000: 20-40 s of the suite's time).
    g = graph_from(tmp_path, uplink(backend.url, "{count: null, rate_hz: 50}"))
    # A short drain: the stop comes mid-backlog, and what is not delivered stays in the store.
    runtime = Runtime(g, state_dir=tmp_path / "state", drain_timeout_s=1.0)
    timeline: dict[str, Any] = {}

    async def scenario() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(runtime.run())
        await until(lambda: len(backend.accepted()) >= 100, "100 packets delivered")
        await loop.run_in_executor(None, backend.stop)
        inbox, source = runtime.nodes["out"].inbox, runtime.nodes["src"].metrics
        assert inbox is not None
        timeline["backlog_at_stop"], made_before = inbox.depth, source.emitted
        await asyncio.sleep(OUTAGE_S)  # the outage itself, not a synchronisation
        timeline["backlog_in_outage"] = inbox.depth
        timeline["made_in_outage"] = source.emitted - made_before
        await loop.run_in_executor(None, backend.start)
        up_at = timeline["up_at"] = time.monotonic()
        await until(lambda: any(r.at > up_at for r in backend.accepted()), "delivery resumed")
        runtime.request_stop("signal")
        return await asyncio.wait_for(task, 2 * HANG_GUARD_S)

    report = asyncio.run(scenario())
    assert_counts_add_up(report, g)
    emitted = report["totals"]["emitted"]
    stored = report["nodes"]["out"]["durable"]["backlog"]
    assert report["totals"]["delivered"] + stored == emitted  # acknowledged + kept: all of it
    assert report["totals"]["errors"] == 0 and report["totals"]["dropped"] == 0
    # The source went on producing into the store through the outage. How much it made in
    # 30 s depends on the machine (a third of its rate under a load of 13 on 2 cores): no rate.
    assert timeline["made_in_outage"] > 0
    assert timeline["backlog_in_outage"] > timeline["backlog_at_stop"]

    # What the first run kept, the next run delivers first: then every packet has arrived.
    # About 1,500 packets, one request at a time.
    second = run(
        graph_from(tmp_path, uplink(backend.url, "{count: 0}")), tmp_path, 10 * HANG_GUARD_S
    )
    assert second["nodes"]["out"]["durable"]["replayed"] == stored
    assert second["totals"]["delivered"] == stored
    assert second["nodes"]["out"]["durable"]["backlog"] == 0
    counts = backend.count_by_key()
    assert set(counts) == {f"src:{n}" for n in range(emitted)}  # nothing lost
    # At least once: a request the backend took just as the outage began or the run stopped
    # may be sent again, under the same key: counted, and reported.
    duplicates = sum(n - 1 for n in counts.values())
    up_at = timeline["up_at"]
    resumed = min(r.at for r in backend.accepted() if r.at > up_at) - up_at
    print(
        f"outage {OUTAGE_S:g} s: backlog {timeline['backlog_in_outage']}, resumed after "
        f"{resumed:.2f} s, {emitted} emitted, {stored} kept for the next run, "
        f"{duplicates} duplicates"
    )
    assert resumed < RESUME_MARGIN_S
