"""graphs/uplink.yaml's outage, as its comment tells an operator to try it: with no backend the
run is stopped and ends degraded with its backlog on disk; with graphs/uplink-backend.yaml
running, the next run delivers that backlog and ends ok, every reading once. The two graphs run
as shipped, but for their port (a free one) and a shorter readings file."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import GRAPHS, SCHNITZEL, run_cli
from tests.sensors.test_http_ingest import free_port

pytestmark = pytest.mark.slow  # three real runs, one of them waiting out a down backend

READINGS = 20


def copy_graph(name: str, directory: Path, port: int) -> Path:
    text = (GRAPHS / name).read_text(encoding="utf-8")
    assert "127.0.0.1:8080" in text or "port: 8080" in text, f"{name} no longer uses port 8080"
    path = directory / name
    path.write_text(text.replace("8080", str(port)), encoding="utf-8")
    return path


def until_listening(port: int, backend: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert backend.poll() is None, "the stand-in backend ended before it listened"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            time.sleep(0.05)


def test_a_backlog_kept_during_the_outage_is_delivered_to_the_stand_in_backend(
    tmp_path: Path,
) -> None:
    port = free_port()
    (tmp_path / "data").mkdir()
    lines = (GRAPHS / "data" / "readings.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "data" / "readings.jsonl").write_text("\n".join(lines[:READINGS]) + "\n")
    uplink = copy_graph("uplink.yaml", tmp_path, port)
    backend_graph = copy_graph("uplink-backend.yaml", tmp_path, port)
    state = ["--state-dir", str(tmp_path / "state")]

    down = run_cli("run", str(uplink), "--duration", "1", *state)
    assert down.returncode == 4, down.stderr
    assert f"{READINGS} packets kept in durable stores for next run" in down.stderr

    backend = subprocess.Popen(
        [*SCHNITZEL, "run", str(backend_graph), "--state-dir", str(tmp_path / "backend-state")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        until_listening(port, backend)
        up = run_cli("run", str(uplink), *state)
        assert up.returncode == 0, up.stderr
        assert f"replaying {READINGS} packets" in up.stderr
    finally:
        backend.send_signal(signal.SIGTERM)
        _, backend_stderr = backend.communicate(timeout=60)
    assert backend.returncode == 0, backend_stderr
    received = (tmp_path / "out" / "uplink-received.jsonl").read_text(encoding="utf-8")
    sent = [json.loads(line)["payload"]["payload"] for line in received.splitlines()]
    assert sent == [json.loads(line) for line in lines[:READINGS]]
