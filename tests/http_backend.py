"""A real HTTP backend on 127.0.0.1 for tests: scripted failures, recorded requests.

    with LoopbackBackend() as backend:          # or the `loopback_backend` fixture
        backend.fail_next(2, status=503, retry_after=1)
        ... POST to backend.url ...
        assert backend.count_by_key() == {"cam:0": 1}

`stop()` really closes the listening socket and every open connection, so clients get
"connection refused" (the backend is down); `start()` again listens on the same port, which
stays the backend's while it is down (a bound socket that never listens holds it, so no other
process can take it, nor a client's connection use it as its own port) until `close()` (or
leaving the `with` block / the fixture) gives it up. Every
request is recorded (`requests`), with the status it was answered; `keys()`,
`count_by_key()` and `packets()` look at the accepted (2xx) ones only. Thread-safe: the server
answers on its own threads, tests read from theirs. Leaving the `with` block (or the fixture)
fails the test if a handler raised something other than a dropped connection.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import ssl
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["LoopbackBackend", "Received", "Scripted"]


@dataclass(frozen=True)
class Received:
    """One request as the backend saw it."""

    key: str | None
    """The Idempotency-Key header."""
    body: Any
    """The parsed JSON body (None when the body was not JSON)."""
    headers: dict[str, str]
    """Request headers, names in lower case."""
    at: float
    """`time.monotonic()` when the request was read."""
    status: int
    """What the backend answered."""
    path: str = "/"

    @property
    def packets(self) -> list[Any]:
        """The body as a list: the elements of an array, else the body itself."""
        return list(self.body) if isinstance(self.body, list) else [self.body]

    @property
    def accepted(self) -> bool:
        """True when the backend answered 2xx."""
        return 200 <= self.status < 300


@dataclass(frozen=True)
class Scripted:
    """An answer other than a plain 200: a status, an optional Retry-After, Location and body;
    or (`trickle_s` > 0) a 200 whose body comes one byte every `trickle_s` seconds."""

    status: int
    retry_after: str | None = None
    body: str = ""
    location: str | None = None
    trickle_s: float = 0.0


@dataclass
class _Rule:
    matches: Callable[[Received], bool]
    answer: Scripted


@dataclass
class _State:
    lock: threading.Condition = field(default_factory=threading.Condition)
    requests: list[Received] = field(default_factory=list)
    script: deque[Scripted] = field(default_factory=deque)
    rules: list[_Rule] = field(default_factory=list)
    delay_s: float = 0.0
    connections: set[socket.socket] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


class LoopbackBackend:
    """An HTTP/1.1 keep-alive server on 127.0.0.1 that answers POSTs with 200 `{"ok":true}`,
    unless told otherwise."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        """`tls`: (certificate, key) PEM files to serve https:// instead of http://."""
        self._tls = tls
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port_holder: socket.socket | None = None
        """Bound to the port from the first start until `close()`, never listening."""
        self.port = 0
        """The port; 0 until first started, then the same for every restart."""

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> LoopbackBackend:
        """Listen (an ephemeral port the first time, the same port afterwards)."""
        if self._server is not None:
            return self
        if self._port_holder is None:
            self._port_holder = _hold_port(self.port)
            self.port = self._port_holder.getsockname()[1]
        server = _Server(("127.0.0.1", self.port), self._state)
        if self._tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self._tls)
            # Handshake on the connection's own thread, not in the accept loop.
            server.socket = context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket and every open connection: the backend is down."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._state.lock:
            connections = list(self._state.connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                conn.shutdown(socket.SHUT_RDWR)
        assert self._thread is not None
        self._thread.join(5)

    def close(self) -> None:
        """Stop, and give the port up."""
        self.stop()
        holder, self._port_holder = self._port_holder, None
        if holder is not None:
            holder.close()

    @property
    def running(self) -> bool:
        """True while listening."""
        return self._server is not None

    @property
    def url(self) -> str:
        """Where to POST: `http://127.0.0.1:<port>/ingest` (https with `tls`)."""
        if not self.port:
            raise RuntimeError("start the backend before asking for its url")
        scheme = "https" if self._tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/ingest"

    def __enter__(self) -> LoopbackBackend:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
        if exc_type is None:
            assert not self.errors, f"the backend failed while answering: {self.errors}"

    # -- script -----------------------------------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: int = 500,
        retry_after: float | str | None = None,
        body: str = "",
        location: str | None = None,
    ) -> None:
        """Answer the next `n` requests with `status` (and a Retry-After or Location header,
        if given): a window of refusals counted in requests, not seconds."""
        header = None if retry_after is None else str(retry_after)
        with self._state.lock:
            self._state.script.extend(Scripted(status, header, body, location) for _ in range(n))

    def trickle_next(self, n: int, every_s: float = 0.5, body_bytes: int = 40) -> None:
        """Answer the next `n` requests 200 with a `body_bytes` body sent one byte every
        `every_s` seconds (a backend stuck mid-answer). The requests count as accepted:
        the backend has them, whether or not the client waited for the whole answer."""
        trickle = Scripted(200, body=" " * body_bytes, trickle_s=every_s)
        with self._state.lock:
            self._state.script.extend(trickle for _ in range(n))

    def reject_if(
        self,
        matches: Callable[[Received], bool],
        status: int = 422,
        body: str = "",
        location: str | None = None,
    ) -> None:
        """Answer every request `matches` accepts with `status` (checked after `fail_next`);
        `reject_if(lambda r: True, 413)` refuses everything."""
        with self._state.lock:
            self._state.rules.append(_Rule(matches, Scripted(status, None, body, location)))

    def clear_rules(self) -> None:
        """Forget the `reject_if` rules: the backend accepts again."""
        with self._state.lock:
            self._state.rules.clear()

    def set_delay(self, seconds: float) -> None:
        """Wait this long before answering each request (to make clients time out)."""
        with self._state.lock:
            self._state.delay_s = seconds

    def reset(self) -> None:
        """Forget recorded requests, scripted answers, rules and the delay."""
        with self._state.lock:
            self._state.requests.clear()
            self._state.script.clear()
            self._state.rules.clear()
            self._state.delay_s = 0.0

    # -- what it received -------------------------------------------------------------------

    @property
    def requests(self) -> list[Received]:
        """Every request so far, accepted or not, in arrival order."""
        with self._state.lock:
            return list(self._state.requests)

    def accepted(self) -> list[Received]:
        """The requests answered 2xx."""
        return [r for r in self.requests if r.accepted]

    def keys(self) -> list[str | None]:
        """Idempotency-Key headers of the accepted requests, in order (duplicates kept)."""
        return [r.key for r in self.accepted()]

    def count_by_key(self) -> Counter[str | None]:
        """How many times each Idempotency-Key was accepted: any count > 1 is a duplicate."""
        return Counter(self.keys())

    def packets(self) -> list[Any]:
        """Every accepted JSON object, batch arrays flattened, in arrival order."""
        return [packet for r in self.accepted() for packet in r.packets]

    @property
    def connections_open(self) -> int:
        """Connections a handler is serving: 0 once every client that connected was read to
        its end (a killed client's last request, still in the socket, is recorded by then)."""
        with self._state.lock:
            return len(self._state.connections)

    @property
    def errors(self) -> list[str]:
        """Unexpected exceptions in the server's handlers (a script that raised, ...)."""
        with self._state.lock:
            return list(self._state.errors)

    def wait_for(self, condition: Callable[[list[Received]], bool], timeout: float = 60.0) -> None:
        """Block until `condition(requests)` holds; AssertionError after `timeout` seconds."""
        with self._state.lock:
            if not self._state.lock.wait_for(lambda: condition(self._state.requests), timeout):
                raise AssertionError(
                    f"backend: condition not met within {timeout} s; "
                    f"{len(self._state.requests)} requests so far"
                )


def _hold_port(port: int) -> socket.socket:
    """A socket bound to 127.0.0.1:`port` (0: any free one) that never listens: while the
    server is stopped, connections to the port are refused, and the kernel gives the port to
    no one else (SO_REUSEPORT without SO_REUSEADDR: only a socket of ours that also asks for
    SO_REUSEPORT, the server's, may bind beside it)."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", port))
    except OSError:
        holder.close()
        raise
    return holder


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_port = True  # binds beside the port holder

    def __init__(self, address: tuple[str, int], state: _State) -> None:
        super().__init__(address, _handler(state))
        self.state = state

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        # A client that gave up (timeout, refused certificate) or stop() closing the
        # connection is part of the tests; anything else is a bug in the backend or a script.
        if isinstance(error, ConnectionError | TimeoutError | ssl.SSLError):
            return
        with self.state.lock:
            self.state.errors.append(repr(error))
        super().handle_error(request, client_address)


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real backend
        # Headers and body go out as two writes; with Nagle's algorithm the second waits for
        # the client's delayed ACK (40 ms a request).
        disable_nagle_algorithm = True

        def setup(self) -> None:
            if isinstance(self.request, ssl.SSLSocket):
                self.request.do_handshake()  # fails here (and quietly) for a distrustful client
            super().setup()
            with state.lock:
                state.connections.add(self.request)

        def finish(self) -> None:
            with state.lock:
                state.connections.discard(self.request)
            with contextlib.suppress(OSError):  # stop() shut the connection down under us
                super().finish()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if len(raw) < length:  # the client died mid-request (kill -9): nothing to accept
                self.close_connection = True
                return
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            headers = {name.lower(): value for name, value in self.headers.items()}
            at = time.monotonic()
            with state.lock:
                answer = state.script.popleft() if state.script else None
                delay = state.delay_s
                rules = list(state.rules)
            received = Received(headers.get("idempotency-key"), body, headers, at, 200, self.path)
            if answer is None:
                answer = next((rule.answer for rule in rules if rule.matches(received)), None)
            if answer is not None:
                received = dataclasses.replace(received, status=answer.status)
            with state.lock:
                state.requests.append(received)
                state.lock.notify_all()
            if delay:
                time.sleep(delay)  # the backend being slow is the behaviour under test
            self._answer(answer)

        def _answer(self, answer: Scripted | None) -> None:
            payload = b'{"ok":true}' if answer is None else answer.body.encode()
            self.send_response(200 if answer is None else answer.status)
            self.send_header("Content-Type", "application/json" if answer is None else "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            if answer is not None and answer.retry_after is not None:
                self.send_header("Retry-After", answer.retry_after)
            if answer is not None and answer.location is not None:
                self.send_header("Location", answer.location)
            self.end_headers()
            if answer is None or not answer.trickle_s:
                self.wfile.write(payload)
                return
            self.wfile.flush()
            for byte in payload:  # a client that gave up makes a write fail: handle_error
                time.sleep(answer.trickle_s)  # the trickle is the behaviour under test
                self.wfile.write(bytes([byte]))
                self.wfile.flush()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler
