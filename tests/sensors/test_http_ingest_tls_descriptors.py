"""`http_ingest` under TLS, where the cap begins each handshake itself on a duplicate of the
accepted socket: no way a TLS connection ends may leave a file descriptor behind, and a
stop while handshakes are going on ends them. Real TLS clients against a real run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import struct
import time
from pathlib import Path

import pytest

from schnitzel import Runtime
from schnitzel_plugins.sensors.http_ingest import HttpIngest
from tests.runtime import plugins
from tests.sensors.test_http_ingest import GUARD_S, free_port, ingest_graph, steer, until
from tests.sensors.test_http_ingest_slow_clients import _event_loops, _served_in_tls

ROUNDS = 25
"""Connections of each way of ending: a descriptor leaked per connection shows as hundreds."""


def _open_descriptors() -> int:
    """The process's open sockets (uvloop opens a pipe of its own once per process)."""
    found = 0
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, gone
            found += os.readlink(f"/proc/self/fd/{name}").startswith("socket:")
    return found


def _end_one(port: int, way: str, trusted: ssl.SSLContext) -> None:
    """One TLS connection, ended by the client in `way`."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=GUARD_S)
    try:
        if way == "rst":
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif way == "half-hello":
            raw.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        elif way == "not-tls":
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            with contextlib.suppress(OSError):
                while raw.recv(65536):
                    pass
        elif way == "distrusted":  # the client refuses the server's certificate
            with contextlib.suppress(OSError):
                ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
        elif way in ("handshake-rst", "handshake-fin", "request-rst"):
            tls = trusted.wrap_socket(raw, server_hostname="127.0.0.1")
            if way == "request-rst":
                tls.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
            if way != "handshake-fin":
                tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raw = tls
    finally:
        raw.close()


def _end_every_way(port: int, trusted: ssl.SSLContext) -> None:
    for _ in range(ROUNDS):
        for way in (
            "fin",
            "rst",
            "half-hello",
            "not-tls",
            "distrusted",
            "handshake-rst",
            "handshake-fin",
            "request-rst",
        ):
            _end_one(port, way, trusted)


@pytest.mark.slow  # a TLS handshake for most of 200 connections: ~10 s
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tls_connections_ended_every_way_leave_no_descriptor_behind(
    tmp_path: Path, loop: str
) -> None:
    port = free_port()
    tls_extra, trusted = _served_in_tls(tmp_path)
    extra = ", max_connections: 4, request_timeout_s: 0.5" + tls_extra
    graph = ingest_graph(tmp_path, port, "Recorder", source_extra=extra)
    counted: dict[str, int] = {}

    async def steps(runtime: Runtime, plugin: HttpIngest) -> None:
        before = _open_descriptors()
        await asyncio.to_thread(_end_every_way, port, trusted)
        await until(lambda: plugin.stats()["connections"] == 0, "every place freed")
        deadline = time.monotonic() + GUARD_S
        while _open_descriptors() > before and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        counted.update(before=before, after=_open_descriptors())

    with _event_loops(loop):
        steer(graph, tmp_path, steps)
    assert counted["after"] <= counted["before"], counted
    assert plugins.RECORDS["out"] == []


def _silent(port: int, count: int) -> list[socket.socket]:
    """`count` connections that never send their ClientHello (held in their handshake)."""
    return [socket.create_connection(("127.0.0.1", port), timeout=GUARD_S) for _ in range(count)]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_stop_during_tls_handshakes_ends_them_in_time_and_leaves_no_descriptor(
    tmp_path: Path, loop: str
) -> None:
    """The run stops while connections sit in their TLS handshake (the handshake timeout far
    off): the node's close() ends them within the runtime's bound on it (no error, the run
    ok), their places and descriptors freed, the clients seeing their connections closed."""
    port = free_port()
    tls_extra, _trusted = _served_in_tls(tmp_path)
    extra = ", max_connections: 8, request_timeout_s: 30" + tls_extra
    graph = ingest_graph(tmp_path, port, "Recorder", source_extra=extra)
    held: list[socket.socket] = []
    counted: dict[str, int] = {"before": _open_descriptors()}

    async def steps(runtime: Runtime, plugin: HttpIngest) -> None:
        held.extend(_silent(port, 6))
        await until(lambda: plugin.stats()["connections"] == 6, "six handshakes counted")

    with _event_loops(loop):
        report = steer(graph, tmp_path, steps)
    source = report["nodes"]["src"]
    assert source["errors"] == 0, source["recent_errors"]
    assert report["status"] == "ok", report["status"]
    assert source["plugin_stats"]["connections"] == 0, source["plugin_stats"]
    for client in held:  # closed by the server: the end of the stream, or a reset
        with client, contextlib.suppress(OSError):
            assert client.recv(1) == b""
    counted["after"] = _open_descriptors()
    assert counted["after"] <= counted["before"], counted
