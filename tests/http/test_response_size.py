"""The http sink against a backend whose response body is huge: it must not hold it all.

Only the status and an excerpt of the body matter to the sink; a misconfigured `url` (a
download, a proxy's error page) or a hostile backend answering with hundreds of megabytes
was read into memory whole, within `timeout_s`, on a box that may have 512 MB."""

from __future__ import annotations

import asyncio
import socket
import threading
import tracemalloc
from collections.abc import Iterator

import pytest

from schnitzel_plugins.http.client import HttpClient
from schnitzel_plugins.http.config import HttpSinkConfig

BODY_BYTES = 32 * 1024 * 1024
CHUNK = b"x" * (1024 * 1024)


def _serve_huge_answers(listener: socket.socket, status: bytes) -> None:
    """Answer each connection's request with `status` and a BODY_BYTES body, then close."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return  # the listener was closed: the test is over
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                request += chunk
            head, _, body = request.partition(b"\r\n\r\n")
            length = next(
                (int(line.split(b":")[1]) for line in head.split(b"\r\n")
                 if line.lower().startswith(b"content-length:")),
                0,
            )  # fmt: skip
            while len(body) < length:
                body += conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\n"
                b"Content-Length: " + str(BODY_BYTES).encode() + b"\r\n\r\n"
            )
            try:
                for _ in range(BODY_BYTES // len(CHUNK)):
                    conn.sendall(CHUNK)
            except OSError:
                pass  # the client stopped reading and closed: what it should do


@pytest.fixture(params=[b"200 OK", b"503 Service Unavailable"])
def huge_backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server = threading.Thread(
        target=_serve_huge_answers, args=(listener, request.param), daemon=True
    )
    server.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/ingest", int(request.param[:3])
    listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone would not)
    listener.close()
    server.join(60)


def post_once_measuring_memory(url: str) -> tuple[int | None, str, int]:
    """One post by the http sink's client to `url`: the answer's status and detail, and the
    peak of memory Python allocated meanwhile (tracemalloc)."""
    config = HttpSinkConfig.model_validate({"url": url, "timeout_s": 60.0})

    async def post() -> tuple[int | None, str]:
        client = HttpClient(config, None, None)
        try:
            reply = await client.post(b'{"a": 1}', "k:0")
        finally:
            await client.aclose()
        return reply.status, reply.detail

    tracemalloc.start()
    try:
        got, detail = asyncio.run(post())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return got, detail, peak


def test_a_huge_response_body_is_not_held_in_memory(huge_backend: tuple[str, int]) -> None:
    url, status = huge_backend
    got, detail, peak = post_once_measuring_memory(url)
    assert got == status, detail
    assert peak < BODY_BYTES // 4, f"{peak / 1e6:.0f} MB held for a {BODY_BYTES / 1e6:.0f} MB body"
    if status != 200:
        assert "xxxx" in detail  # the excerpt is still quoted


def _serve_a_gzip_bomb(listener: socket.socket) -> None:
    """Answer one request 500 with a gzip body of ~32 KB that unpacks to BODY_BYTES."""
    import gzip

    packed = gzip.compress(b"x" * BODY_BYTES, compresslevel=9)
    conn, _ = listener.accept()
    with conn:
        request = b""
        while b"\r\n\r\n" not in request or not request.endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            request += chunk
        conn.sendall(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
            b"Content-Encoding: gzip\r\nContent-Length: " + str(len(packed)).encode() + b"\r\n\r\n"
            + packed
        )  # fmt: skip


def test_a_compressed_response_body_is_not_unpacked_whole() -> None:
    """httpx unpacks a gzip body a network read at a time, each read whole: a 32 KB answer
    (one read) became 32 MB in memory at once, the bound on reading notwithstanding."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server = threading.Thread(target=_serve_a_gzip_bomb, args=(listener,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/ingest"
    try:
        got, detail, peak = post_once_measuring_memory(url)
    finally:
        listener.close()
        server.join(60)
    assert got == 500, detail
    assert peak < BODY_BYTES // 4, f"{peak / 1e6:.0f} MB held for a {BODY_BYTES / 1e6:.0f} MB body"
