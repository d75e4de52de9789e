"""A backend that refuses: the http sink behind a durable inbox keeps what a backend refuses as
a whole (a credential being rotated, a moved URL, a size limit, a schema it no longer takes)
and hands only the packets it refuses while taking others (poison pills) to `on_error`.

Each run ends by itself once everything is delivered; the refusal ends when the test saw
the sink name it, never after a number of seconds. Counts: arrived + dead letters + still
stored == emitted, duplicates counted apart.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from schnitzel import Runtime, RuntimeControl
from schnitzel_plugins.http.sink import HttpSink
from tests.http_backend import LoopbackBackend, Received
from tests.runtime.harness import graph_from, steer

FAST = "retry_initial_s: 0.01, retry_max_s: 0.05, breaker_cooldown_s: 0.02, "
FAST += "breaker_max_cooldown_s: 0.05"
GUARD_S = 180.0  # against a hang only (a loaded machine can take a minute for one run)


def graph(url: str, source: str, options: str = "", durable: bool = True) -> str:
    inbox = "{durable: {path: state/out.db}}" if durable else "{max: 64}"
    return f"""
nodes:
  - {{id: src, kind: source, plugin: {source}}}
  - id: out
    kind: sink
    plugin: http
    config: {{url: "{url}", {FAST}{options}}}
    inbox: {inbox}
    on_error: dead_letter
    dead_letter: dead
  - {{id: dead, kind: sink, plugin: jsonl, config: {{path: dead.jsonl}}}}
edges:
  - {{from: src, to: out}}
"""


def sink_of(runtime: Runtime) -> HttpSink:
    sink = runtime.nodes["out"].plugin
    assert isinstance(sink, HttpSink)
    return sink


async def until(condition: Any) -> None:
    """Poll something the runtime exposes (no event to wait on); the guard is against a hang."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GUARD_S
    while not condition():
        assert loop.time() < deadline, "condition not met: the test hangs"
        await asyncio.sleep(0.01)


def arrived(backend: LoopbackBackend) -> Counter[str]:
    """Each packet key the backend accepted, batch arrays flattened, with its count."""
    return Counter(f"{p['source_id']}:{p['seq']}" for p in backend.packets())


def dead_letters(tmp_path: Path) -> Counter[str]:
    path = tmp_path / "dead.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(f"{p['source_id']}:{p['seq']}" for p in map(json.loads, lines))


def assert_nothing_lost(
    report: dict[str, Any], backend: LoopbackBackend, tmp_path: Path, dead: set[str] = frozenset()
) -> None:
    emitted = report["totals"]["emitted"]
    got, parked = arrived(backend), dead_letters(tmp_path)
    stored = report["nodes"]["out"]["durable"]["backlog"]
    assert stored == 0
    assert set(got) | set(parked) == {f"src:{n}" for n in range(emitted)}
    assert set(parked) == dead and all(n == 1 for n in parked.values())
    assert not set(got) & set(parked)
    assert len(got) + len(parked) + stored == emitted  # duplicates are counted apart
    assert report["nodes"]["out"]["errors"] == len(dead)


@pytest.mark.parametrize(
    ("status", "location", "named"),
    [
        (401, None, "HTTP 401 Unauthorized"),
        (403, None, "HTTP 403 Forbidden"),
        (404, None, "HTTP 404 Not Found"),
        (301, "http://elsewhere.example/ingest?k=1", "HTTP 301 Moved Permanently (to http://elsewhere.example/ingest?…)"),
        (413, None, "HTTP 413 Request Entity Too Large"),
        (426, None, "HTTP 426 Upgrade Required"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("batch_max", [1, 16])
def test_a_backend_that_starts_refusing_everything_midway_loses_nothing(
    tmp_path: Path,
    loopback_backend: LoopbackBackend,
    status: int,
    location: str | None,
    named: str,
    batch_max: int,
) -> None:
    count = 300
    options = f", batch_max: {batch_max}"
    g = graph_from(
        tmp_path,
        graph(
            loopback_backend.url, f"synthetic, config: {{count: {count}, rate_hz: 2000}}", options
        ),
    )

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        sink = sink_of(runtime)
        await until(lambda: len(arrived(loopback_backend)) >= 100)
        loopback_backend.reject_if(lambda r: True, status, body="rotating", location=location)
        await until(lambda: named in (sink.trouble or ""))
        trouble = sink.trouble or ""
        assert "every request refused" in trouble and "packets kept" in trouble
        assert loopback_backend.url.removesuffix("/ingest") in trouble
        await until(lambda: sum(r.status == status for r in loopback_backend.requests) >= 10)
        loopback_backend.clear_rules()
        await until(lambda: sink.trouble is None)

    report = steer(g, tmp_path / "state", steps, stop=False, guard_s=GUARD_S)
    assert_nothing_lost(report, loopback_backend, tmp_path)
    assert report["totals"]["delivered"] == count


@pytest.mark.parametrize("status", [400, 422])
def test_a_backend_that_refuses_every_packet_from_the_start_is_unavailable(
    tmp_path: Path, loopback_backend: LoopbackBackend, status: int
) -> None:
    loopback_backend.reject_if(lambda r: True, status, body="schema v1 is gone")
    g = graph_from(tmp_path, graph(loopback_backend.url, "synthetic, config: {count: 300}"))

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        sink = sink_of(runtime)
        await until(lambda: sum(r.status == status for r in loopback_backend.requests) >= 20)
        assert f"HTTP {status}" in (sink.trouble or "")
        loopback_backend.clear_rules()

    report = steer(g, tmp_path / "state", steps, stop=False, guard_s=GUARD_S)
    assert_nothing_lost(report, loopback_backend, tmp_path)


def poisoned(request: Received) -> bool:
    return any(isinstance(p, dict) and p.get("payload", {}).get("poison") for p in request.packets)


@pytest.mark.parametrize("batch_max", [1, 8])
def test_only_the_packets_a_working_backend_refuses_are_poison(
    tmp_path: Path, loopback_backend: LoopbackBackend, batch_max: int
) -> None:
    count = 400
    bad = {37, 38, 39, 200, count - 1}  # three in a row, one alone, the very last
    lines = [json.dumps({"n": n, "poison": n in bad}) for n in range(count)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    loopback_backend.reject_if(poisoned, 422, body="poison is not a reading")
    source = "jsonl, config: {path: in.jsonl, resume: false}"
    g = graph_from(tmp_path, graph(loopback_backend.url, source, f", batch_max: {batch_max}"))
    report = asyncio.run(asyncio.wait_for(Runtime(g, state_dir=tmp_path / "state").run(), GUARD_S))

    dead = {f"src:{n}" for n in bad}
    assert_nothing_lost(report, loopback_backend, tmp_path, dead)
    messages = [e["message"] for e in report["nodes"]["out"]["recent_errors"]]
    assert all("HTTP 422" in m and "poison pill" in m for m in messages)


def test_a_trickling_answer_is_cut_at_the_deadline_and_sent_again(
    tmp_path: Path, loopback_backend: LoopbackBackend
) -> None:
    # 400 bytes at 0.5 s each: 200 s, past the guard, so a sink that waits for it hangs the
    # test instead of passing it. 5 s: room for the requests that are answered at once.
    loopback_backend.trickle_next(1, every_s=0.5, body_bytes=400)
    options = ", timeout_s: 5.0"
    g = graph_from(tmp_path, graph(loopback_backend.url, "synthetic, config: {count: 50}", options))
    report = asyncio.run(asyncio.wait_for(Runtime(g, state_dir=tmp_path / "state").run(), GUARD_S))

    first = loopback_backend.requests[0].key
    assert Counter(r.key for r in loopback_backend.requests)[first] == 2  # cut, sent again
    assert_nothing_lost(report, loopback_backend, tmp_path)
    assert report["totals"]["delivered"] == 50


def test_without_a_durable_inbox_a_refusing_backend_ends_in_on_error_after_max_retries(
    tmp_path: Path, loopback_backend: LoopbackBackend
) -> None:
    loopback_backend.reject_if(lambda r: True, 401, body="token expired")
    options = ", max_retries: 2"
    source = "synthetic, config: {count: 5}"
    g = graph_from(tmp_path, graph(loopback_backend.url, source, options, durable=False))
    report = asyncio.run(asyncio.wait_for(Runtime(g, state_dir=tmp_path / "state").run(), GUARD_S))

    assert loopback_backend.accepted() == [] and report["nodes"]["out"]["errors"] == 5
    assert dead_letters(tmp_path) == Counter({f"src:{n}": 1 for n in range(5)})
    assert Counter(r.key for r in loopback_backend.requests) == {f"src:{n}": 3 for n in range(5)}
    # On a busy machine the breaker's "circuit open ... (retrying)" may come first in the list.
    messages = [e["message"] for e in report["nodes"]["out"]["recent_errors"]]
    assert any(
        "after 3 attempts (max_retries 2)" in m and "HTTP 401 Unauthorized" in m for m in messages
    ), messages
