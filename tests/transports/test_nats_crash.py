"""`kill -9` of the publishing `schnitzel run` and of the nats-server at random moments: every
line of the input reaches the stream, the copies counted by Nats-Msg-Id (at least once; the
stream's duplicate window drops most of them)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.logged_run import LoggedRun, next_log
from tests.runtime.harness import HEADER
from tests.transports.nats_server import HANG_GUARD_S, NatsServer, nats_server_binary

pytestmark = [
    pytest.mark.slow,  # kill -9 of real processes, again and again
    pytest.mark.skipif(nats_server_binary() is None, reason="no nats-server"),
]

LINES = 5000


def start_publisher(graph: Path, state: Path) -> LoggedRun:
    """`schnitzel run`, its log in `run-<n>.log` beside the graph, never a pipe."""
    return LoggedRun(
        [sys.executable, "-m", "schnitzel.cli.main", "run", str(graph), "--state-dir", str(state)],
        log=next_log(graph.parent),
        cwd=graph.parent,
    )


def stored(server: NatsServer) -> int:
    """Messages in the server's streams (its monitoring endpoint)."""
    answer = httpx.get(f"http://127.0.0.1:{server.monitor_port}/jsz", timeout=5.0)
    return int(answer.json()["messages"])


def until_grown(server: NatsServer, before: int, process: subprocess.Popen[bytes]) -> None:
    """Wait until the stream grew past `before` (mid-stream, not while the run starts up)."""
    started = time.monotonic()
    while process.poll() is None and stored(server) <= before:
        assert time.monotonic() - started < HANG_GUARD_S, "the publisher never published"
        time.sleep(0.01)


def test_kill_9_of_publisher_and_server_loses_no_line(tmp_path: Path) -> None:
    with (tmp_path / "in.jsonl").open("w") as file:
        for n in range(LINES):
            file.write(json.dumps({"n": n, "pad": "x" * 64}) + "\n")
    chance = random.Random(19)
    moments: list[str] = []
    with NatsServer(tmp_path / "nats") as server:
        server.add_stream("LINES", ["lines.>"])
        graph = tmp_path / "graph.yaml"
        graph.write_text(
            HEADER
            + f"""
nodes:
  - {{id: src, kind: source, plugin: jsonl, config: {{path: in.jsonl}}}}
  - {{id: mid, kind: transform, plugin: passthrough, inbox: {{max: 64}}}}
  - id: out
    kind: sink
    plugin: nats
    config: {{url: "{server.url}", subject: lines.in, ack_timeout_s: 2.0}}
    inbox: {{max: 256, durable: {{path: state/out.db}}}}
edges:
  - {{from: src, to: mid}}
  - {{from: mid, to: out}}
"""
        )
        state = tmp_path / "state"
        for round_ in range(6):
            process = start_publisher(graph, state)
            until_grown(server, stored(server), process)
            time.sleep(chance.uniform(0.0, 0.3))
            if round_ % 2 == 1:  # the server dies under the publisher, then comes back
                server.kill()
                time.sleep(chance.uniform(0.0, 0.5))
                server.start()
                moments.append("server")
                time.sleep(chance.uniform(0.0, 0.5))
            process.send_signal(signal.SIGKILL)
            process.wait(HANG_GUARD_S)
            moments.append("publisher")
        final = start_publisher(graph, state)
        assert final.finish(4 * HANG_GUARD_S) == 0, final.log_tail()
        messages = server.messages("LINES")
    written = Counter(json.loads(data)["payload"]["n"] for _, _, data in messages)
    keys = Counter(key for _, key, _ in messages)
    missing = sorted(set(range(LINES)) - set(written))
    duplicates = sum(count - 1 for count in written.values())
    print(f"killed {moments}: {duplicates} duplicates of {LINES} lines in the stream")
    assert missing == [], f"lost {len(missing)} lines, first {missing[:10]}"
    assert all(key is not None and key.startswith("src:") for key in keys)
    assert len(keys) == LINES  # one key per line, the same across restarts
    assert duplicates < LINES  # at least once, not everything again each time
