"""The test backend itself (tests/http_backend.py): while it is down, its port stays its own.

Tests that stop the backend and start it again on the same port (a backlog built while it is
down, delivered once it is back) failed once when the port was taken in between: by another
test's server, or by a client connection that got it as its own port (a client connecting to
the port from the port talks to itself). Held by a bound socket that never listens, the kernel
gives it to neither."""

from __future__ import annotations

import errno
import socket

import pytest

from tests.http_backend import LoopbackBackend


def connect(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        pass


def test_a_stopped_backend_refuses_connections_and_keeps_its_port() -> None:
    backend = LoopbackBackend().start()
    port = backend.port
    try:
        connect(port)
        backend.stop()
        with pytest.raises(ConnectionRefusedError):
            connect(port)  # down: refused, as a real backend that is down
        for reuse in ((), (socket.SO_REUSEADDR,)):  # as servers and clients bind
            other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            for option in reuse:
                other.setsockopt(socket.SOL_SOCKET, option, 1)
            with other, pytest.raises(OSError) as taken:
                other.bind(("127.0.0.1", port))  # another server cannot take it meanwhile
            assert taken.value.errno == errno.EADDRINUSE, reuse
        backend.start()
        assert backend.port == port
        connect(port)  # back, on the same port
    finally:
        backend.close()
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with probe:
        probe.bind(("127.0.0.1", port))  # closed: the port is free again
