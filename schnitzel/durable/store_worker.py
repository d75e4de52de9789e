"""Where a durable inbox's store runs: a thread of the run (the default), or a process.

A durable inbox makes every call on its store as `await worker.call(fn, *args)`: `fn(store,
*args)` runs where the store lives, one call at a time, in the order the calls were made.

- `ThreadWorker` (`inbox.durable.process: false`, the default): the store in this process, on
  one thread of its own.
- `ProcessWorker` (`process: true`): the store lives in a child process
  (`schnitzel/durable/store_process.py`), fed over a socket pair that the event loop writes
  and reads itself, with no thread in this process. SQLite, the ledger and the packing of
  rows then never wait for this process's GIL, nor make the loop wait for theirs: on a
  thread, every commit waited for the loop to let go of the GIL before it could begin, and
  again after each SQLite call (docs/architecture.md, "Where a durable packet's wall time
  goes"). `fn` and its arguments travel pickled: `fn` is a module-level function or a
  method of `DurableStore` named by its class, never a closure. It pays on cores that are
  otherwise idle (1.1-1.3x the durable throughput of the thread), and costs where other
  processes keep them busy (0.6-0.8x, measured), with one process and about 17 MB more per
  store (docs/architecture.md, "The store's process, or its thread").

The child is the store's only user. It dies with the run: it exits when its socket closes
(the run closed it, or the run died and the kernel closed it), and on Linux the kernel kills
it when the run dies (`kill -9` too). It ignores SIGINT, SIGTERM and SIGHUP: a Ctrl-C, a
`systemctl stop` or a closed SSH session reaches the run, which commits what is pending and
closes the store through it before it lets the child go.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar, cast

from schnitzel.durable.lock_file import close_in_forked_children, forget_in_forked_children
from schnitzel.durable.store import DurableStore, StoreError
from schnitzel.durable.store_process import HEADER_BYTES

__all__ = ["ProcessWorker", "StoreProcessDied", "StoreWorker", "ThreadWorker", "store_worker"]

T = TypeVar("T")

EXIT_WAIT_S = 5.0
"""How long `close` waits for the child to exit once its socket closed, before SIGKILL."""
EXIT_NAMED_WAIT_S = 0.5
"""How long a socket that ended waits for the child's exit status, to say how it ended."""
OUTPUT_SHOWN_CHARS = 600
"""How much of the end of what the child wrote (a traceback) an error or an event quotes."""


class StoreProcessDied(StoreError):
    """The store's process ended while the run still used it."""


class StoreWorker(Protocol):
    """Runs `fn(store, *args)` where the store lives, one call at a time, in order."""

    path: Path
    fallback: str | None
    """Why the store is on a thread although a process was asked for (its process could not
    be started), for the run's events; None otherwise."""

    left_behind: str
    """What becomes of a store whose call is given up on at the close, in words."""

    @property
    def gone(self) -> bool:
        """Whether the store can never answer again (its process died): nothing waits for
        it then."""
        ...

    def watch(self, on_lost: Callable[[StoreProcessDied], None]) -> None:
        """Have `on_lost(error)` called once, on the loop, when the store's process ends while
        the run uses it (killed, out of memory), at once if it already has; a store on a
        thread is never lost."""
        ...

    said: str
    """After `close`: the end of what the store's process wrote (a warning, a traceback),
    on one line; empty when it wrote nothing, as it should."""

    def start(self) -> None:
        """Begin starting where the store lives, ahead of its first call (a process's
        imports then overlap other work); the first call waits for it."""
        ...

    async def call(self, fn: Callable[..., T], *args: Any) -> T: ...

    def waited_s(self) -> float:
        """How long the oldest call not yet answered has waited (0 when none waits): a
        store that stopped answering (its process stopped, a file system that hangs)."""
        ...

    async def close(self) -> None:
        """After the last call (the store's own `close`), or after giving up on it: let the
        thread or process go."""
        ...


def store_worker(path: Path, synchronous: str, process: bool) -> StoreWorker:
    """The store of `path` in a process of its own, or on a thread of this one."""
    return ProcessWorker(path, synchronous) if process else ThreadWorker(path, synchronous)


class ThreadWorker:
    """The store in this process, on one thread of its own."""

    left_behind = "its thread is left running, and the run's exit waits for it"
    said = ""

    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self.fallback: str | None = None
        self.store = DurableStore(path, synchronous)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"schnitzel-store-{path.stem}")
        self._asked = _Asked()

    gone = False

    def watch(self, on_lost: Callable[[StoreProcessDied], None]) -> None:
        pass

    def start(self) -> None:
        pass  # its thread starts with its first call

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        with self._asked.waiting():
            return await loop.run_in_executor(self._pool, fn, self.store, *args)

    def waited_s(self) -> float:
        return self._asked.waited_s()

    async def close(self) -> None:
        self._pool.shutdown(wait=False)


class ProcessWorker:
    """The store in a child process, its calls and answers over a socket pair."""

    left_behind = "its process was killed"

    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous
        self.fallback: str | None = None
        self.said = ""
        self._asked = _Asked()
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: _Channel | None = None
        self._thread: ThreadWorker | None = None
        self._starting: asyncio.Task[None] | None = None
        self._on_lost: Callable[[StoreProcessDied], None] | None = None
        self._died: StoreProcessDied | None = None
        self._output: IO[bytes] | None = None
        """What the child writes (stdout, stderr): an unnamed file, never the run's own
        stderr (a `--log-format json` stream, a console's screen) nor its stdout (a
        `--report-json -`); quoted when the child ends badly (`output`)."""

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._channel is None and self._thread is None:
            with self._asked.waiting():
                await self._started()
        if self._thread is not None:
            return await self._thread.call(fn, *args)
        assert self._channel is not None
        request = pickle.dumps((fn, args), pickle.HIGHEST_PROTOCOL)
        with self._asked.waiting():
            return await self._channel.call(request)

    def waited_s(self) -> float:
        if self._thread is not None:
            return self._thread.waited_s()
        return self._asked.waited_s()

    @property
    def gone(self) -> bool:
        return self._died is not None

    def watch(self, on_lost: Callable[[StoreProcessDied], None]) -> None:
        if self._thread is not None:  # its process could not start: on a thread, never lost
            return
        self._on_lost = on_lost
        if self._died is not None:
            asyncio.get_running_loop().call_soon(on_lost, self._died)

    def _lost(self, error: StoreProcessDied) -> None:
        self._died = error
        if self._on_lost is not None:
            self._on_lost(error)

    def start(self) -> None:
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())

    async def _started(self) -> None:
        self.start()
        assert self._starting is not None
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        import socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._process = self._spawn(theirs.fileno())
        except OSError as exc:  # an interpreter this user may not run, a frozen build
            ours.close()
            self.fallback = (
                f"its process could not be started ({exc}): it runs on a thread of the run"
            )
            self._thread = ThreadWorker(self.path, self.synchronous)
            return
        finally:
            theirs.close()
        loop = asyncio.get_running_loop()
        where = f"durable store {str(self.path)!r}"
        _transport, self._channel = await loop.create_connection(
            lambda: _Channel(where, self._exit_words, self._lost), sock=ours
        )

    def _spawn(self, fd: int) -> subprocess.Popen[bytes]:
        if getattr(sys, "frozen", False):  # sys.executable is the frozen program, no python
            raise OSError("a frozen build has no interpreter to start it with")
        try:  # the child's until `close`: no context manager
            self._output = tempfile.TemporaryFile(prefix="schnitzel-store-")  # noqa: SIM115
        except OSError:  # no writable temporary directory: the child's words are not kept
            self._output = None
        try:
            return self._popen(fd, self._output)
        except OSError:
            if self._output is not None:
                self._output.close()
                self._output = None
            raise

    def _popen(self, fd: int, output: IO[bytes] | None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-P",  # not the working directory first: it may hold another schnitzel
                "-m",
                "schnitzel.durable.store_process",
                str(fd),
                str(self.path),
                self.synchronous,
                str(os.getpid()),
            ],
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
            stdout=output or subprocess.DEVNULL,
            stderr=output or subprocess.DEVNULL,
            env=_child_environment(),
            start_new_session=True,  # a Ctrl-C at the terminal is the run's to handle
        )

    def _exit_words(self) -> str:
        """How the child ended, for the error of the calls it never answered."""
        process = self._process
        code = None
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):  # it is ending: a moment
                code = process.wait(EXIT_NAMED_WAIT_S)
        said = self.output()
        said = f" (it wrote: {said})" if said else ""
        if code is None:
            return f"its process closed the connection{said}"
        if code < 0:
            return f"its process was killed by signal {-code}{said}"
        return f"its process exited with code {code}{said}"

    def output(self) -> str:
        """The end of what the child wrote so far (nothing, while all is well), on one
        line."""
        if self._output is None:
            return ""
        try:
            size = os.fstat(self._output.fileno()).st_size
            data = os.pread(
                self._output.fileno(), OUTPUT_SHOWN_CHARS, max(size - OUTPUT_SHOWN_CHARS, 0)
            )
        except OSError as exc:
            return f"(its output could not be read: {exc})"
        lines = data.decode(errors="replace").strip().splitlines()
        return " | ".join(line.strip() for line in lines[-2:] if line.strip())

    async def close(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        if self._thread is not None:
            await self._thread.close()
        channel, self._channel = self._channel, None
        unanswered = channel is not None and channel.unanswered
        if channel is not None:
            channel.close()
        process = self._process
        if process is None:
            return
        deadline = time.monotonic() + (0 if unanswered else EXIT_WAIT_S)
        while process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if process.poll() is None:  # a call given up on (it is stuck): never else
            process.kill()
            process.wait()
        if self._output is not None:
            self.said = self.output()
            self._output.close()
            self._output = None


class _Asked:
    """When each call not yet answered was made, oldest first (calls are answered in the
    order they were made; a call given up on leaves with the oldest: near enough)."""

    def __init__(self) -> None:
        self._since: deque[float] = deque()

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        self._since.append(time.monotonic())
        try:
            yield
        finally:
            self._since.popleft()

    def waited_s(self) -> float:
        return time.monotonic() - self._since[0] if self._since else 0.0


class _Channel(asyncio.Protocol):
    """The run's end of the socket: requests written as they come, answers matched to them
    in order."""

    def __init__(
        self,
        where: str,
        exit_words: Callable[[], str],
        on_lost: Callable[[StoreProcessDied], None],
    ) -> None:
        self._where = where
        self._exit_words = exit_words
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._buffer = bytearray()
        self._lost: StoreProcessDied | None = None
        self._closed = False
        """The run closed it (`close`): the child has not seen the end yet, nothing to ask."""
        self._fd = -1
        """The run's end of the socket (closed in a child the run forks)."""

    @property
    def unanswered(self) -> bool:
        """Whether calls were made that the store's process has not answered (given up on:
        it is stuck, and will not see the end of its socket either)."""
        return bool(self._waiting) and self._lost is None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's: not a subclass
        # A process the run forks (a plugin's process pool) would keep this end open: the
        # child would never see its end, at a close nor when the run dies.
        self._fd = transport.get_extra_info("socket").fileno()
        close_in_forked_children(self._fd)

    async def call(self, request: bytes) -> Any:
        if self._lost is not None:
            raise self._lost
        assert self._transport is not None
        answer = asyncio.get_running_loop().create_future()
        self._waiting.append(answer)
        self._transport.write(len(request).to_bytes(HEADER_BYTES, "big") + request)
        return await answer

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while len(buffer) - start >= HEADER_BYTES:
            size = int.from_bytes(buffer[start : start + HEADER_BYTES], "big")
            end = start + HEADER_BYTES + size
            if len(buffer) < end:
                break
            try:
                ok, value = pickle.loads(bytes(buffer[start + HEADER_BYTES : end]))
            except Exception as exc:  # that answer alone is lost: the store serves on
                ok, value = False, StoreError(f"{self._where}: its answer was unreadable: {exc}")
            start = end
            answer = self._waiting.popleft()
            if answer.cancelled():
                continue
            if ok:
                answer.set_result(value)
            else:
                answer.set_exception(value)
        if start:
            del buffer[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        forget_in_forked_children(self._fd)  # closed once this returns
        if self._closed:  # the child ends at this end: waiting for it here would hold the loop
            self._lost = StoreProcessDied(f"{self._where} is closed")
        else:
            self._lost = StoreProcessDied(f"{self._where} is gone: {self._exit_words()}")
        self._fail_waiting(self._lost)
        if not self._closed:
            self._on_lost(self._lost)

    def _fail_waiting(self, error: StoreProcessDied) -> None:
        while self._waiting:
            answer = self._waiting.popleft()
            if not answer.done():
                answer.set_exception(error)

    def close(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.close()


def _child_environment() -> dict[str, str]:
    """The run's environment, with its `sys.path` as PYTHONPATH, after the folder the run's
    own schnitzel came from: the child imports the very same schnitzel (a source tree, a
    path a test or a bench put first), never one of the working directory (`-P`)."""
    home = str(Path(__file__).resolve().parents[2])  # schnitzel/durable/store_worker.py
    paths = [p for p in sys.path if p]
    if home not in paths:  # found through '' (the working directory of `python -c`)
        paths.insert(0, home)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
