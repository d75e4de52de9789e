"""The control socket: serves the control commands (`schnitzel.control.commands`) to
`schnitzel ctl` and attached consoles over a unix stream socket (protocol: `protocol.py`).

    server = ControlServer(RuntimeControl(runtime), path, logger)
    await server.start()          # ControlSocketError: the path cannot be served
    ...
    await server.close()          # removes the socket file (if it is still ours)

Who may connect: the socket file is mode 0600, so only the runtime's user (and root); the
server also refuses any other uid the kernel reports. Who asked is recorded from the
kernel's word (SO_PEERCRED: uid, pid) plus what the client declares (`via`, `ssh`).

A hostile or broken client cannot harm the runtime: every request is validated before it
reaches the control API, answered in order, one at a time per connection; a line over 1 MiB
ends its connection; a request must arrive whole within `request_timeout_s` of its first
byte; idle connections are closed; at most `max_connections` are served at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schnitzel.control.actor import Actor, user_name
from schnitzel.control.commands import SLOW_COMMANDS, UnknownCommand, dispatch
from schnitzel.control.paths import MAX_SOCKET_PATH, fits_socket_limit
from schnitzel.control.protocol import (
    MAX_REQUEST_BYTES,
    ProtocolError,
    decode_reply,
    decode_request,
    encode_error,
    encode_reply,
    encode_request,
)
from schnitzel.control.trust import directory_problem, peer_credentials
from schnitzel.errors import ControlError, SchnitzelError

if TYPE_CHECKING:  # the request models need pydantic: built at the first request, not here
    from schnitzel.control.request import RequestId

__all__ = ["ControlServer", "ControlSocketError", "SocketInUse"]

MAX_CONNECTIONS = 32
REQUEST_TIMEOUT_S = 10.0
"""A request must arrive whole within this long of its first byte (slow senders are cut)."""
IDLE_TIMEOUT_S = 600.0
SLOW_COMMAND_TIMEOUT_S = 60.0
"""How long a swap, rollback or approve may take before its client is told to look later."""
WRITE_TIMEOUT_S = 10.0
"""How long a client may take to read a reply before its connection is closed."""
PROBE_TIMEOUT_S = 2.0
CLOSE_GRACE_S = 2.0
"""How long `close()` waits for connections to see their end before cancelling them."""
READ_CHUNK = 64 * 1024
KNOWN_VIAS = frozenset({"ctl", "attach"})


class ControlSocketError(SchnitzelError):
    """The control socket cannot be served at its path (too long, not a socket, no access)."""


class SocketInUse(ControlSocketError):
    """Another process (most likely another runtime) already serves the socket's path."""


class ControlServer:
    """Serves one RuntimeControl on a unix socket, on the runtime's event loop."""

    def __init__(
        self,
        control: Any,
        path: Path,
        logger: logging.Logger | None = None,
        *,
        max_connections: int = MAX_CONNECTIONS,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        slow_command_timeout_s: float = SLOW_COMMAND_TIMEOUT_S,
    ) -> None:
        self.control = control
        self.path = path
        self.logger = logger or logging.getLogger("schnitzel.control")
        self.max_connections = max_connections
        self.request_timeout_s = request_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.slow_command_timeout_s = slow_command_timeout_s
        self._server: asyncio.Server | None = None
        self._identity: tuple[int, int] | None = None
        """(st_dev, st_ino) of the socket file we bound: only that file is removed."""
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._still_running: set[asyncio.Future[Any]] = set()
        """Slow commands whose client stopped waiting: they finish on their own."""

    @property
    def connections(self) -> int:
        """Connections being served now."""
        return len(self._connections)

    async def start(self) -> None:
        """Bind the socket (mode 0600) and serve. Raises SocketInUse when another process
        answers there, ControlSocketError when the path cannot be used."""
        if self._server is not None:
            raise RuntimeError("the control server is already started")
        if not fits_socket_limit(self.path):
            size = len(os.fsencode(str(self.path)))
            raise ControlSocketError(
                f"the control socket path {self.path} is {size} bytes; a unix socket path is "
                f"at most {MAX_SOCKET_PATH}: choose a shorter one"
            )
        _prepare_parent(self.path.parent)
        await self._clear_stale()
        sock = self._bind()
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, sock=sock, limit=MAX_REQUEST_BYTES + 1
            )
        except BaseException:
            sock.close()
            self._remove_socket_file()
            raise
        self.logger.info("control socket: %s", self.path)

    async def close(self) -> None:
        """Stop serving: close every connection and remove the socket file."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # Closing a connection's transport ends its reads (EOF); only a connection still
        # waiting for a slow command is cancelled.
        for writer in list(self._connections.values()):
            writer.close()
        if self._connections:
            tasks = set(self._connections)
            _, stuck = await asyncio.wait(tasks, timeout=CLOSE_GRACE_S)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        await server.wait_closed()
        self._remove_socket_file()

    # -- binding ----------------------------------------------------------------------------

    async def _clear_stale(self) -> None:
        """Remove a socket file left by a runtime that is gone; refuse one that answers."""
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode):
            raise ControlSocketError(
                f"{self.path} exists and is not a socket; remove it or choose another path "
                "for the control socket"
            )
        owner = await _probe(self.path)
        if owner is not None:
            raise SocketInUse(f"{self.path} is served by {owner}")
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.logger.info("replaced a stale control socket at %s (nothing answered)", self.path)

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # umask: the file is never reachable by others, not even between bind and chmod.
            previous = os.umask(0o177)
            try:
                sock.bind(os.fsencode(str(self.path)))
            finally:
                os.umask(previous)
            os.chmod(self.path, 0o600)
            info = os.stat(self.path)
            self._identity = (info.st_dev, info.st_ino)
            if stat.S_IMODE(info.st_mode) != 0o600 or info.st_uid != os.geteuid():
                raise ControlSocketError(
                    f"the control socket {self.path} could not be made private (mode "
                    f"{stat.S_IMODE(info.st_mode):o}, owner uid {info.st_uid}); "
                    "choose a path on a local file system"
                )
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise SocketInUse(f"{self.path} was taken by another process meanwhile") from None
            self._remove_socket_file()
            raise ControlSocketError(
                f"cannot serve the control socket at {self.path}: {exc.strerror or exc}"
            ) from None
        except ControlSocketError:
            sock.close()
            self._remove_socket_file()
            raise
        return sock

    def _remove_socket_file(self) -> None:
        if self._identity is None:
            return
        identity, self._identity = self._identity, None
        try:
            info = os.lstat(self.path)
            if (info.st_dev, info.st_ino) == identity:
                self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            self.logger.warning("could not remove the control socket %s: %s", self.path, exc)

    # -- serving ----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            if len(self._connections) >= self.max_connections:
                message = (
                    f"the runtime serves {self.max_connections} control connections already; "
                    "close one (an attached console, a script) and try again"
                )
                await self._send(writer, encode_error(None, "busy", message))
                return
            self._connections[task] = writer
            uid, pid = _peer_credentials(writer)
            if uid is not None and uid not in (os.geteuid(), 0):
                message = f"uid {uid} may not control this runtime (it runs as {os.geteuid()})"
                await self._send(writer, encode_error(None, "refused", message))
                return
            await self._converse(reader, writer, uid, pid)
        except (ConnectionError, TimeoutError) as exc:
            self.logger.debug("control connection ended: %s", exc)
        except asyncio.CancelledError:
            # Only `close()` and the end of the loop cancel a connection: it ends here, quietly
            # (asyncio 3.11's stream callback would log a cancelled handler as an error).
            pass
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    async def _converse(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        uid: int | None,
        pid: int | None,
    ) -> None:
        """Answer the connection's requests one at a time, in order, until it ends."""
        loop = asyncio.get_running_loop()
        buffer = bytearray()
        scanned = 0  # bytes of `buffer` known to hold no newline
        first_byte_at = 0.0
        while True:
            newline = buffer.find(b"\n", scanned)
            if newline < 0:
                scanned = len(buffer)
                if len(buffer) > MAX_REQUEST_BYTES:
                    await self._too_large(writer)
                    return
                if buffer:
                    budget = first_byte_at + self.request_timeout_s - loop.time()
                else:
                    budget = self.idle_timeout_s
                try:
                    async with asyncio.timeout(max(budget, 0.0)):
                        chunk = await reader.read(READ_CHUNK)
                except TimeoutError:
                    if buffer:
                        message = (
                            f"the request did not arrive whole within {self.request_timeout_s:g} "
                            "s of its first byte; send each request as one line at once"
                        )
                        await self._send(writer, encode_error(None, "bad-request", message))
                    return
                if not chunk:
                    return  # the client left (a partial request is dropped with it)
                if not buffer:
                    first_byte_at = loop.time()
                buffer += chunk
                continue
            line = bytes(buffer[:newline])
            del buffer[: newline + 1]
            scanned = 0
            first_byte_at = loop.time()  # what is left is the start of the next request
            if len(line) > MAX_REQUEST_BYTES:
                await self._too_large(writer)
                return
            if not line.strip():
                continue  # a blank line (a person typing into socat) asks for nothing
            await self._send(writer, await self._answer(line, uid, pid))

    async def _answer(self, line: bytes, uid: int | None, pid: int | None) -> bytes:
        """The reply line to one request line; never raises (but for cancellation)."""
        request_id: RequestId = None
        try:
            request = decode_request(line)
            request_id = request.id
            via = request.client.via if request.client.via in KNOWN_VIAS else "api"
            user = user_name(uid) if uid is not None else "unknown"
            actor = Actor(user, uid, pid, request.client.ssh, via)
            result = await self._run(request.cmd, request.args, actor, request.why)
            return encode_reply(request_id, result)
        except ProtocolError as exc:
            reply_id = exc.request_id if exc.request_id is not None else request_id
            return encode_error(reply_id, exc.code, exc.message)
        except UnknownCommand as exc:
            return encode_error(request_id, "unknown-command", str(exc))
        except ControlError as exc:
            return encode_error(request_id, "refused", str(exc))
        except Exception as exc:
            self.logger.exception("control request failed: %s", line[:200])
            message = f"the runtime failed on this request ({type(exc).__name__}: {exc}); "
            message += "this is a bug: please report it with the runtime's log"
            return encode_error(request_id, "internal", message)

    async def _run(self, cmd: str, args: dict[str, Any], actor: Actor, why: str) -> Any:
        if cmd not in SLOW_COMMANDS:
            return await dispatch(self.control, cmd, args, actor, why)
        # A swap must not be cut half way when its client gives up: it runs on, is audited,
        # and the client is told where to see how it ended.
        task = asyncio.ensure_future(dispatch(self.control, cmd, args, actor, why))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.slow_command_timeout_s)
        except asyncio.CancelledError:  # the server closes: the command still ends on its own
            self._keep_until_done(task)
            raise
        if task in done:
            return task.result()
        self._keep_until_done(task)
        raise ProtocolError(
            "busy",
            f"{cmd} is still running after {self.slow_command_timeout_s:g} s; it goes on in "
            "the runtime: see `schnitzel ctl audit` and `schnitzel ctl events` for how it ended",
        )

    def _keep_until_done(self, task: asyncio.Future[Any]) -> None:
        self._still_running.add(task)
        task.add_done_callback(self._slow_command_ended)

    def _slow_command_ended(self, task: asyncio.Future[Any]) -> None:
        self._still_running.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, ControlError | ProtocolError | UnknownCommand):
            self.logger.error("a slow control command failed", exc_info=exc)

    async def _too_large(self, writer: asyncio.StreamWriter) -> None:
        message = (
            f"the request is over {MAX_REQUEST_BYTES} bytes; send smaller ones "
            "(the connection is closed: where the next request starts is lost)"
        )
        await self._send(writer, encode_error(None, "too-large", message))

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        async with asyncio.timeout(WRITE_TIMEOUT_S):  # a client that never reads
            await writer.drain()


def _peer_credentials(writer: asyncio.StreamWriter) -> tuple[int | None, int | None]:
    """(uid, pid) of the connected process, as the kernel reports them."""
    sock = writer.get_extra_info("socket")
    return (None, None) if sock is None else peer_credentials(sock)


def _prepare_parent(directory: Path) -> None:
    """Create the socket's directory (0700) when it is missing; refuse one that belongs to
    another user (a planted /tmp/schnitzel-<uid>, say) or that anyone may write to
    (`schnitzel.control.trust`)."""
    try:
        directory.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ControlSocketError(
            f"cannot create {directory} for the control socket: {exc.strerror}; "
            "create it or choose another path"
        ) from None
    else:
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
        return
    problem = directory_problem(directory)  # the checks `schnitzel ctl` makes too
    if problem is not None:
        raise ControlSocketError(
            f"{problem}; choose a directory of your own for the control socket"
        )


async def _probe(path: Path) -> str | None:
    """Who answers at `path`: a description of the runtime there, or None when nothing
    listens (a stale file)."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            reader, writer = await asyncio.open_unix_connection(
                os.fsencode(str(path))  # type: ignore[arg-type]  # bytes: the socket accepts
            )  # any path; the stubs say str only
    except (ConnectionRefusedError, FileNotFoundError):
        return None
    except TimeoutError:
        return "a process that accepts no connections now (its backlog is full)"
    except OSError as exc:
        raise ControlSocketError(f"cannot check who serves {path}: {exc.strerror}") from None
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            writer.write(encode_request("hello", request_id=0))
            await writer.drain()
            reply = decode_reply(await reader.readline())
        hello = reply.get("result") if reply["ok"] else None
        if isinstance(hello, dict):
            return f"another runtime (pid {hello.get('pid')}, graph {hello.get('graph')})"
    except (OSError, TimeoutError, ProtocolError, ValueError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await writer.wait_closed()
    return "another process"
