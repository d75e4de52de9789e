"""The process a durable store lives in (`inbox.durable.process: true`), started
by `store_worker.ProcessWorker`: `python -P -m schnitzel.durable.store_process FD PATH SYNC PID`.

It reads calls from the socket `FD` (a length, then a pickled `(fn, args)`), runs
`fn(store, *args)` on its one `DurableStore`, and writes back a pickled `(True, result)` or
`(False, exception)`, one call at a time, in order. It is the store's only user, and the
store's lock names the run (`PID`), not this process.

It ends when the socket ends: the run closed it after the store's `close`, or the run died
(then without closing the store, as if the run's `kill -9` had taken it too: what the store
is built to survive). On Linux the kernel kills it when the run dies. SIGINT, SIGTERM and
SIGHUP are the run's to act on: ignored here.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import sys
from pathlib import Path

import schnitzel.durable.store_calls  # noqa: F401 - the calls the run makes, loaded before the first
from schnitzel.durable.lock_file import serve_run
from schnitzel.durable.store import DurableStore, StoreError

__all__ = ["HEADER_BYTES", "main"]

HEADER_BYTES = 4
"""Each message on the socket, either way: its length (big-endian), then that many bytes of
pickle. Defined here, not in `store_worker` (the run's side), whose asyncio and subprocess
this process would otherwise import at its start for one constant (about 50 ms)."""
_PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    fd, path, synchronous, run_pid = int(argv[0]), Path(argv[1]), argv[2], int(argv[3])
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    _die_with(run_pid)
    serve_run(run_pid)
    channel = socket.socket(fileno=fd)
    store = DurableStore(path, synchronous)
    reader = channel.makefile("rb", buffering=1 << 16)
    while True:
        header = reader.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES:
            os._exit(0)  # the run closed the socket, or died
        request = reader.read(int.from_bytes(header, "big"))
        answer = _answer(store, request)
        channel.sendall(len(answer).to_bytes(HEADER_BYTES, "big") + answer)


def _answer(store: DurableStore, request: bytes) -> bytes:
    try:
        fn, args = pickle.loads(request)
        outcome: tuple[bool, object] = (True, fn(store, *args))
    except Exception as exc:  # the run raises it where it made the call
        outcome = (False, exc)
    try:
        answer = pickle.dumps(outcome, pickle.HIGHEST_PROTOCOL)
        if not outcome[0]:  # an exception whose class wants more than its args to be built
            pickle.loads(answer)  # again fails to unpickle: the run gets its words instead
        return answer
    except Exception as exc:  # an answer that does not pickle: the run is told what it was
        what = outcome[1]
        return pickle.dumps(
            (False, StoreError(f"{type(what).__name__}: {what} (not sent back whole: {exc})")),
            pickle.HIGHEST_PROTOCOL,
        )


def _die_with(run_pid: int) -> None:
    """Have the kernel kill this process when the run dies (Linux), or exit now if it died
    before this was set."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != run_pid:
        os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
