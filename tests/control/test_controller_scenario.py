"""The controller in a real run: a source faster than a slow HTTP backend on loopback.

- suggest: a suggestion to raise the sink's concurrency appears, an operator approves it,
  drops per second fall, and the audit log has the change with the suggestion's id;
- auto: a backend that slows down when asked two things at once makes the change worse,
  and the controller rolls it back by itself.

Rates are compared between phases of the same run, never against the clock. The backend,
never the CPU, is the limit: each request carries 10 packets (`batch_max`) and takes a tenth
of a second or more, so the sink makes 10-20 requests a second for 150 packets (at 20 ms an
answer and one packet a request, 50-100 requests a second were enough CPU to make a loaded
machine, not the backend, decide the outcome), and a process that waits tens of
milliseconds for a core still sees the same outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from schnitzel import Runtime, RuntimeControl
from schnitzel.control.actor import Actor
from schnitzel.errors import ControlError
from schnitzel.validate import ValidatedGraph
from schnitzel.validate.validator import validate_text
from tests.http_backend import LoopbackBackend

pytestmark = pytest.mark.slow  # phases of seconds against slow backends

GUARD_S = 60.0
"""Hang guard of every wait (a broken controller fails the test instead of hanging it)."""
PHASE_S = 2.0
"""How long each phase's drops are counted."""


def _graph(
    tmp_path: Path, url: str, rate_hz: float, controller: str, batch_max: int = 1
) -> ValidatedGraph:
    """`batch_max` packets per request; with more than 1 the inbox holds 4 requests' worth,
    so a batch is 4 requests one at a time, 2 each two at once."""
    inbox_max = 4 * batch_max if batch_max > 1 else 50
    text = f"""
version: 2
nodes:
  - {{id: cam, kind: source, plugin: synthetic, config: {{rate_hz: {rate_hz}}}}}
  - id: up
    kind: sink
    plugin: http
    config: {{url: "{url}", max_retries: 0, batch_max: {batch_max}}}
    inbox: {{max: {inbox_max}, overflow: drop_oldest}}
    limits: {{concurrency: [1, 8]}}
edges:
  - {{from: cam, to: up}}
runtime: {{controller: {controller}}}
"""
    path = tmp_path / "graph.yaml"
    path.write_text(text)
    result = validate_text(text, source=str(path), path=path)
    assert result.graph is not None, [p.render() for p in result.report.problems]
    return result.graph


async def _until(predicate: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(GUARD_S):
            while not predicate():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {GUARD_S:g} s: {what}") from None


async def _drops_per_s(control: RuntimeControl, node: str) -> float:
    """Drops per second at `node`, counted over one phase."""
    first = control.snapshot()["nodes"][node]["dropped"]
    started = time.monotonic()
    await asyncio.sleep(PHASE_S)
    last = control.snapshot()["nodes"][node]["dropped"]
    return (last - first) / (time.monotonic() - started)


async def _approve_the_first_open_suggestion(
    control: RuntimeControl, operator: Actor
) -> dict[str, Any]:
    """Approve a suggestion while it is open. With `window_s: 1` a batch taken at the wrong
    moment can make one look calm for a second and expire: then the next one is approved."""
    while True:
        await _until(
            lambda: any(s["status"] == "open" for s in control.suggestions()), "a suggestion"
        )
        offer = next(s for s in control.suggestions() if s["status"] == "open")
        try:
            await control.approve(offer["id"], actor=operator, why="the backend can take it")
        except ControlError:
            continue  # it expired in between
        return offer


def _suggestion(control: RuntimeControl, suggestion_id: str) -> dict[str, Any]:
    return next(s for s in control.suggestions() if s["id"] == suggestion_id)


def _audit(state: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (state / "audit.jsonl").read_text().splitlines()]


def test_an_approved_suggestion_for_more_concurrency_makes_drops_fall(
    tmp_path: Path, loopback_backend: LoopbackBackend
) -> None:
    # 10 answers of 10 packets a second one at a time (drops 50/s), 20 with two at once (no
    # drops). Waiting for a core adds to each answer's time alike, so the ratio holds.
    loopback_backend.set_delay(0.1)
    settings = "{mode: suggest, window_s: 1, cooldown_s: 2, verify_s: 2}"
    graph = _graph(tmp_path, loopback_backend.url, 150.0, settings, batch_max=10)
    state = tmp_path / "state"

    async def scenario() -> tuple[float, float, dict[str, Any]]:
        runtime = Runtime(graph, state_dir=state)
        control = RuntimeControl(runtime)
        run = asyncio.create_task(runtime.run())
        try:
            await _until(lambda: bool(control.suggestions()), "a first suggestion")
            before = await _drops_per_s(control, "up")  # drowning, steadily
            operator = Actor.local("ctl")
            offer = await _approve_the_first_open_suggestion(control, operator)
            await _until(
                lambda: _suggestion(control, offer["id"])["status"] != "approved",
                "the verdict on the change",
            )
            after = await _drops_per_s(control, "up")
            return before, after, _suggestion(control, offer["id"])
        finally:
            control.stop()
            await asyncio.wait_for(run, GUARD_S)

    before, after, done = asyncio.run(scenario())
    assert done["node"] == "up"
    assert done["action"] == {"command": "throttle", "node": "up", "args": {"concurrency": 2}}
    assert done["before"] == {"concurrency": 1}
    assert "inbox of 'up'" in done["rationale"] and "drops/s" in done["rationale"]
    assert done["status"] == "applied", done["verdict"]
    assert done["verdict"].startswith("drops on 'up'")
    assert done["decided_by"]["via"] == "ctl"
    assert before > 20, before  # the backend really was too slow
    assert after < before * 0.8, (before, after)
    entries = _audit(state)
    [change] = [e for e in entries if e["action"] == "throttle"]
    assert change["suggestion"] == done["id"] and change["node"] == "up"
    assert change["before"] == {"concurrency": 1} and change["after"] == {"concurrency": 2}
    assert change["who"]["via"] == "controller" and change["outcome"] == "applied"
    [approval] = [e for e in entries if e["action"] == "approve"]
    assert approval["suggestion"] == done["id"] and approval["who"]["via"] == "ctl"
    assert approval["why"] == "the backend can take it"


class ThrashingBackend:
    """An HTTP backend on loopback that gets slower the more requests it serves at once:
    each answer takes `base_s * at_once ** 3`, so two calls at once deliver a quarter of
    what one does."""

    def __init__(self, base_s: float) -> None:
        self.base_s = base_s
        self._lock = threading.Lock()
        self._at_once = 0
        self.most_at_once = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/ingest"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with backend._lock:
                    backend._at_once += 1
                    at_once = backend._at_once
                    backend.most_at_once = max(backend.most_at_once, at_once)
                try:
                    time.sleep(backend.base_s * at_once**3)
                finally:
                    with backend._lock:
                        backend._at_once -= 1
                body = b'{"ok":true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> ThrashingBackend:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def thrashing_backend() -> Iterator[ThrashingBackend]:
    with ThrashingBackend(0.1) as backend:  # one at a time 10 answers/s, two at once 2.5/s
        yield backend


def test_auto_mode_rolls_back_a_change_that_made_drops_worse(
    tmp_path: Path, thrashing_backend: ThrashingBackend
) -> None:
    settings = "{mode: auto, window_s: 1, cooldown_s: 2, verify_s: 3}"
    # 150 packets/s in requests of 10: drops 50/s one at a time, 125/s two at once; a core
    # that keeps every answer waiting 50 ms more still makes them 84/s against 126/s
    graph = _graph(tmp_path, thrashing_backend.url, 150.0, settings, batch_max=10)
    state = tmp_path / "state"

    async def scenario() -> tuple[dict[str, Any], int]:
        runtime = Runtime(graph, state_dir=state)
        control = RuntimeControl(runtime)
        run = asyncio.create_task(runtime.run())
        try:
            await _until(
                lambda: any(s["status"] == "rolled_back" for s in control.suggestions()),
                "the change rolled back",
            )
            done = next(s for s in control.suggestions() if s["status"] == "rolled_back")
            return done, control.snapshot()["nodes"]["up"]["throttle"]["concurrency"]
        finally:
            with contextlib.suppress(Exception):
                control.stop()
            await asyncio.wait_for(run, GUARD_S)

    done, concurrency = asyncio.run(scenario())
    assert done["action"]["args"] == {"concurrency": 2}
    assert done["decided_by"]["via"] == "controller"
    assert "worse; rolled back 'up' (concurrency 2 -> 1)" in done["verdict"]
    assert done["metric"]["after"] > done["metric"]["baseline"]
    assert concurrency == 1
    assert thrashing_backend.most_at_once >= 2  # the change really took effect
    changes = [e for e in _audit(state) if e["action"] in ("throttle", "auto_rollback")]
    assert [e["action"] for e in changes[:2]] == ["throttle", "auto_rollback"]
    assert [e["after"] for e in changes[:2]] == [{"concurrency": 2}, {"concurrency": 1}]
    assert all(e["suggestion"] == done["id"] for e in changes[:2])
    assert changes[1]["why"].startswith("auto-rollback: drops on 'up'")


def test_a_sink_whose_backend_is_down_gets_no_capacity_suggestion(tmp_path: Path) -> None:
    """Nothing listens on port 9: more concurrency would not deliver anything. The
    controller says so instead of proposing a change."""
    settings = "{mode: suggest, window_s: 1, cooldown_s: 1, verify_s: 1}"
    graph = _graph(tmp_path, "http://127.0.0.1:9/ingest", 200.0, settings)

    async def scenario() -> tuple[list[dict[str, Any]], list[str]]:
        runtime = Runtime(graph, state_dir=tmp_path / "state", drain_timeout_s=1.0)
        control = RuntimeControl(runtime)
        run = asyncio.create_task(runtime.run())
        try:
            await _until(
                lambda: any("not a capacity problem" in e["message"] for e in control.events()),
                "the controller to say the backend is the problem",
            )
            return control.suggestions(), [e["message"] for e in control.events()]
        finally:
            control.stop()
            await asyncio.wait_for(run, GUARD_S)

    suggestions, messages = asyncio.run(scenario())
    assert suggestions == []
    assert any("delivered nothing in that time" in m for m in messages), messages
