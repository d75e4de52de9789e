"""Clients of the control socket: `ControlClient` (blocking, for `schnitzel ctl` and
scripts) and `AsyncControlClient` (asyncio, for an attached console; in `async_client.py`,
importable from here).

    with ControlClient(path) as client:
        client.request("throttle", {"node": "src", "rate_hz": 40.0}, why="sink is drowning")

Errors:

Before a client sends anything it checks what it talks to, as the runtime checks where it
serves (`schnitzel.control.trust`): the socket's directory and the socket file belong to this
user (or root) and are private, and the process that accepted runs as this user (SO_PEERCRED).

    ControlConnectionError (a ConnectionError) .. the runtime cannot be talked to
     ├── ControlUnreachable ...................... no socket, nothing listening, no permission
     ├── ControlUntrusted ........................ the socket is not safe: nothing was sent
     ├── ControlDisconnected ..................... the runtime closed the connection
     └── ControlTimeout .......................... no reply in time (the connection is closed)
    RequestFailed (a ControlError) ............... the runtime answered with an error; `code`
"""

from __future__ import annotations

import itertools
import os
import socket
import stat
from pathlib import Path
from types import TracebackType
from typing import Any

from schnitzel.control.protocol import ProtocolError, decode_reply, encode_request
from schnitzel.control.trust import (
    directory_problem,
    peer_credentials,
    peer_problem,
    socket_owner,
    socket_problem,
)
from schnitzel.errors import ControlError

__all__ = [
    "ControlClient",
    "ControlConnectionError",
    "ControlDisconnected",
    "ControlTimeout",
    "ControlUnreachable",
    "ControlUntrusted",
    "RequestFailed",
]

MAX_REPLY_BYTES = 64 << 20
"""The longest reply a client reads (a describe of a very large graph is far below this)."""
CONNECT_TIMEOUT_S = 5.0
REPLY_TIMEOUT_S = 75.0
"""Above the server's 60 s for a swap: the server answers first, even when it gives up."""


class ControlConnectionError(ControlError, ConnectionError):
    """The runtime's control socket cannot be talked to."""

    hint = ""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"cannot reach the runtime at {path}: {why}{self.hint}")
        self.path = path
        self.why = why


class ControlUnreachable(ControlConnectionError):
    """No runtime could be connected to: no socket there, nothing listening, no permission."""

    hint = "; is it running? (start it with `schnitzel run GRAPH`)"


class ControlUntrusted(ControlConnectionError):
    """The socket, its directory or the process serving it is not this user's: nothing was
    sent to it."""

    hint = (
        "; nothing was sent. Another user may have planted it: remove it if you can, or "
        "choose a socket of your own with --socket (and --control-socket for the run)"
    )

    def __init__(self, path: Path, why: str) -> None:
        ConnectionError.__init__(self, f"refusing to talk to {path}: {why}{self.hint}")
        self.path = path
        self.why = why


class ControlDisconnected(ControlConnectionError):
    """The runtime closed the connection (it stopped, or it refused the request)."""


class ControlTimeout(ControlConnectionError):
    """The runtime sent no reply in time; the connection is closed."""


class RequestFailed(ControlError):
    """The runtime answered with an error: `code` is the protocol's error code (refused,
    bad-request, unknown-command, too-large, busy, internal), the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _ssh_connection() -> str | None:
    return os.environ.get("SSH_CONNECTION") or None


def _connect_error(exc: OSError, path: Path | None = None) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no socket there"
    if isinstance(exc, ConnectionRefusedError):
        what = _not_a_socket(path) if path is not None else None
        if what is not None:
            return (
                f"{path} is {what}, not a socket: give --socket the control socket the run "
                "logged as it started, or --graph GRAPH to find it"
            )
        return "nothing listens there (a socket left by a runtime that is gone)"
    if isinstance(exc, PermissionError):
        return "permission denied (the socket belongs to another user)"
    if isinstance(exc, TimeoutError):
        return "the connection timed out"
    return exc.strerror or str(exc)


def _not_a_socket(path: Path) -> str | None:
    """What `path` is, when it is there and is not a socket (a unix connect to a regular file
    or a directory is refused as if the socket's runtime were gone)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISSOCK(mode):
        return None
    return (
        "a directory"
        if stat.S_ISDIR(mode)
        else "a regular file"
        if stat.S_ISREG(mode)
        else "not a socket"
    )


def _check_before_connect(path: Path) -> None:
    """Refuse a socket in a directory that is not this user's, or that anyone may write to."""
    problem = directory_problem(path.parent)
    if problem is not None:
        raise ControlUntrusted(path, problem)


def _check_peer(path: Path, sock: Any) -> None:
    """Once connected, before anything is sent: refuse a socket file that is not this
    user's and private, and a connection accepted by a process of another user (the
    kernel's word, which no file trick can fake)."""
    problem = socket_problem(path)
    if problem is None and sock is not None:
        peer_uid, _ = peer_credentials(sock)
        problem = peer_problem(peer_uid, socket_owner(path))
    if problem is not None:
        raise ControlUntrusted(path, problem)


def _result(reply: dict[str, Any]) -> Any:
    if reply["ok"]:
        return reply.get("result")
    error = reply["error"]
    raise RequestFailed(error["code"], error["message"])


class _Client:
    """Where a client connects, how it introduces itself (`via`), how long it waits."""

    default_via = "api"

    def __init__(
        self,
        path: Path,
        *,
        via: str | None = None,
        timeout_s: float = REPLY_TIMEOUT_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.path = Path(path)
        self.via = via or self.default_via
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._ids = itertools.count(1)


class ControlClient(_Client):
    """A blocking client: one request at a time, each waiting for its reply."""

    default_via = "ctl"

    def __init__(self, path: Path, **options: Any) -> None:
        super().__init__(path, **options)
        self._sock: socket.socket | None = None
        self._buffer = bytearray()

    def __enter__(self) -> ControlClient:
        self.connect()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Connect to the runtime; ControlUnreachable when it cannot be."""
        if self._sock is not None:
            return
        _check_before_connect(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.connect_timeout_s)
        try:
            sock.connect(os.fsencode(str(self.path)))
            _check_peer(self.path, sock)
        except ControlUntrusted:  # a ConnectionError, so an OSError: first
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            raise ControlUnreachable(self.path, _connect_error(exc, self.path)) from None
        self._sock = sock

    def close(self) -> None:
        """Close the connection (the runtime goes on)."""
        sock, self._sock = self._sock, None
        self._buffer.clear()
        if sock is not None:
            sock.close()

    def request(
        self,
        cmd: str,
        args: dict[str, Any] | None = None,
        *,
        why: str = "",
        timeout_s: float | None = None,
    ) -> Any:
        """Send one command and return its result; RequestFailed when the runtime answers
        with an error, a ControlConnectionError when it cannot be talked to."""
        self.connect()
        sock = self._sock
        assert sock is not None
        request_id = next(self._ids)
        line = encode_request(
            cmd, args, request_id=request_id, why=why, via=self.via, ssh=_ssh_connection()
        )
        sock.settimeout(timeout_s or self.timeout_s)
        try:
            sock.sendall(line)
            reply = decode_reply(self._read_line(sock))
        except TimeoutError:
            self.close()
            raise ControlTimeout(
                self.path, f"no reply to {cmd} within {timeout_s or self.timeout_s:g} s"
            ) from None
        except ProtocolError as exc:
            self.close()
            raise ControlDisconnected(self.path, exc.message) from None
        except OSError as exc:
            self.close()
            why = f"the connection broke: {_connect_error(exc)}"
            raise ControlDisconnected(self.path, why) from None
        return _result(reply)

    def _read_line(self, sock: socket.socket) -> bytes:
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                return line
            if len(self._buffer) > MAX_REPLY_BYTES:
                raise ProtocolError("too-large", f"the reply is over {MAX_REPLY_BYTES} bytes")
            chunk = sock.recv(256 * 1024)
            if not chunk:
                raise ProtocolError(
                    "bad-request", "the runtime closed the connection without a reply"
                )
            self._buffer += chunk


def __getattr__(name: str) -> Any:
    """`AsyncControlClient` lives in `async_client.py`, so that `schnitzel ctl` (blocking)
    never imports asyncio; it is still importable from here."""
    if name == "AsyncControlClient":
        from schnitzel.control.async_client import AsyncControlClient

        return AsyncControlClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
