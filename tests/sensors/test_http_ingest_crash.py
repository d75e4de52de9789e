"""`kill -9` of a `schnitzel run` serving `http_ingest` while clients post: every record
answered 202 is delivered after a restart (a durable inbox after the source), none lost.

The sink posts to a backend that refuses everything (503) while the runs are killed, so what
was answered 202 can only be in the durable inbox, never already delivered."""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.http_backend import LoopbackBackend
from tests.logged_run import LoggedRun, next_log
from tests.sensors.test_http_ingest import free_port

pytestmark = pytest.mark.slow  # kill -9 of real processes

GUARD_S = 60.0
CLIENTS = 4


def start_run(graph: Path) -> LoggedRun:
    """`schnitzel run`, its log in `run-<n>.log` beside the graph, never a pipe."""
    return LoggedRun(
        [sys.executable, "-m", "schnitzel.cli.main", "run", str(graph), "--state-dir", "state"],
        log=next_log(graph.parent),
        cwd=graph.parent,
    )


class Posters:
    """Threads posting numbered two-record NDJSON bodies; they keep the keys answered 202."""

    def __init__(self, url: str, round_: int) -> None:
        self.url, self.round = url, round_
        self.accepted: set[str] = set()
        self.refused = 0
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._post, args=(n,)) for n in range(CLIENTS)]

    def __enter__(self) -> Posters:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(GUARD_S)

    def _post(self, client_no: int) -> None:
        headers = {"Content-Type": "application/x-ndjson"}
        with httpx.Client(timeout=GUARD_S) as client:
            n = 0
            while not self.stop.is_set():
                key = f"r{self.round}-c{client_no}-{n}"
                n += 1
                body = f'{{"key": "{key}", "i": 0}}\n{{"key": "{key}", "i": 1}}\n'
                try:
                    answer = client.post(
                        self.url, content=body, headers={**headers, "Idempotency-Key": key}
                    )
                except httpx.TransportError:
                    with self._lock:
                        self.refused += 1
                    continue
                with self._lock:
                    if answer.status_code == 202:
                        self.accepted.update((f"{key}:0", f"{key}:1"))
                    else:
                        self.refused += 1


def until_listening(port: int, run: LoggedRun) -> None:
    started = time.monotonic()
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=GUARD_S):
                return
        except OSError:
            assert run.poll() is None, run.log_tail()
            assert time.monotonic() - started < GUARD_S, f"nothing listens on port {port}"
            time.sleep(0.01)


def test_kill_9_never_loses_a_record_answered_202(tmp_path: Path) -> None:
    with LoopbackBackend() as backend:
        backend.reject_if(lambda _request: True, 503)
        accepted = kill_9_while_posting(tmp_path, backend.url, rounds=3)
        assert len(accepted) >= 3 * 400
        assert backend.accepted() == []
        backend.clear_rules()
        run = start_run(tmp_path / "graph.yaml")  # the durable inbox's backlog is delivered
        try:
            backend.wait_for(
                lambda requests: (
                    accepted
                    <= {
                        p["meta"]["idempotency_key"]
                        for r in requests
                        if r.accepted
                        for p in r.packets
                    }
                ),
                GUARD_S,
            )
        finally:
            run.send_signal(signal.SIGTERM)
            assert run.finish(GUARD_S) == 0, run.log_tail()


def kill_9_while_posting(tmp_path: Path, backend_url: str, rounds: int) -> set[str]:
    """Keys of the records answered 202 across `rounds` runs each killed mid-stream."""
    port = free_port()
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        f"""version: 2
nodes:
  - {{id: src, kind: source, plugin: http_ingest, config: {{port: {port}, queue_max: 64}}}}
  - id: out
    kind: sink
    plugin: http
    config: {{url: "{backend_url}"}}
    inbox: {{max: 64, durable: {{path: state/out.db}}}}
edges:
  - {{from: src, to: out}}
"""
    )
    url = f"http://127.0.0.1:{port}/ingest"
    accepted: set[str] = set()
    for round_ in range(rounds):
        run = start_run(graph)
        until_listening(port, run)
        with Posters(url, round_) as posters:
            started = time.monotonic()
            while len(posters.accepted) < 400:  # mid-stream, not while the run starts
                assert run.poll() is None, run.log_tail()
                assert time.monotonic() - started < GUARD_S, "nothing was accepted"
                time.sleep(0.01)
            run.send_signal(signal.SIGKILL)
            run.wait(GUARD_S)
        accepted |= posters.accepted
    return accepted
