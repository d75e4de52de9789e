"""The locks that keep one checkpoint (a `jsonl` source's) and one durable store to one run:
a child forked without exec does not keep them once its parent is gone, and a second
`Runtime` in the same process is refused like a second process (a swap within one run still
shares the lock: tests/runtime/test_swap.py, tests/control/test_reload.py); a forked child
releasing its copy of a store lock closes nothing of its own and unlocks nothing of its parent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schnitzel import Runtime, RuntimeStartError
from schnitzel.durable.lock import StoreLock
from schnitzel_plugins.io.checkpoint_lock import CheckpointInUse, CheckpointLock
from tests.conftest import REPO
from tests.runtime.harness import graph_from

GUARD_S = 60.0

FORKS_AND_DIES = """
import os, sys
from pathlib import Path
{take}
if os.fork() == 0:  # a worker forked without exec (multiprocessing's fork): it outlives its parent
    print(os.getpid(), flush=True)  # after the fork handlers ran in it
    os.read(0, 1)
    os._exit(0)
os._exit(0)  # the parent dies holding the lock, as a kill -9 would leave it
"""

TAKE = {
    "checkpoint": (
        "from schnitzel_plugins.io.checkpoint_lock import CheckpointLock\n"
        "CheckpointLock(Path(sys.argv[1]), 'src', 'run-a').acquire()"
    ),
    "store": (
        "from schnitzel.durable.lock import StoreLock\n"
        "StoreLock(Path(sys.argv[1]), Path(sys.argv[1])).acquire()"
    ),
}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("which", sorted(TAKE))
def test_a_child_forked_without_exec_does_not_keep_the_lock_of_its_dead_parent(
    tmp_path: Path, which: str
) -> None:
    """Such a child kept the lock: every later run was refused, naming the dead parent."""
    target = tmp_path / ("cp.json" if which == "checkpoint" else "out.db")
    parent = subprocess.Popen(
        [sys.executable, "-c", FORKS_AND_DIES.format(take=TAKE[which]), str(target)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None and parent.stdin is not None
    child = int(parent.stdout.readline())
    try:
        assert parent.wait(GUARD_S) == 0
        assert _alive(child)  # the forked child still runs, as the next run starts
        if which == "checkpoint":
            lock = CheckpointLock(target, "src", "run-b")
            lock.acquire()
            lock.release()
        else:
            store = StoreLock(target, target)
            store.acquire()
            store.release()
    finally:
        parent.stdin.close()  # the child's read ends: it exits
        deadline = time.monotonic() + GUARD_S
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _alive(child):
            os.kill(child, signal.SIGKILL)


FOLLOWED = """
nodes:
  - {id: src, kind: source, plugin: jsonl, config: {path: in.jsonl, follow: true,
     poll_interval_s: 0.05}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: out}
"""


def test_a_second_runtime_in_the_same_process_sharing_the_checkpoint_is_refused(
    tmp_path: Path,
) -> None:
    """Two `Runtime`s of one graph and one state dir in one process shared the lock (it is
    shared within a run, for swaps) and both read the file and wrote the one checkpoint."""
    (tmp_path / "in.jsonl").write_text('{"n": 1}\n')
    graph = graph_from(tmp_path, FOLLOWED)

    async def scenario() -> None:
        first = Runtime(graph, state_dir=tmp_path / "state")
        running = asyncio.create_task(first.run())
        try:
            deadline = time.monotonic() + GUARD_S
            while first.nodes["src"].metrics.emitted < 1:
                assert time.monotonic() < deadline, "the first run never read its line"
                await asyncio.sleep(0.01)
            second = Runtime(graph, state_dir=tmp_path / "state")
            with pytest.raises(RuntimeStartError, match="another runtime in this process") as e:
                await asyncio.wait_for(second.run(), GUARD_S)
            assert isinstance(e.value.__cause__, CheckpointInUse)
        finally:
            first.request_stop("signal")
            await asyncio.wait_for(running, GUARD_S)
        third = Runtime(graph, state_dir=tmp_path / "state")  # once the first is over: free
        report = await asyncio.wait_for(third.run(duration_s=0.1), GUARD_S)
        assert report["stop_reason"] == "duration", report["stop_detail"]

    asyncio.run(scenario())


@pytest.mark.parametrize("module", ["lock_file", "checkpoint_lock"])
def test_a_child_forked_while_a_lock_registry_is_busy_can_still_take_locks(
    tmp_path: Path, module: str
) -> None:
    """A fork taken while another thread of the parent held a lock registry's guard (a
    `threading.Lock`) gave the child that guard locked for ever: its first lock call hung.
    The child gets fresh guards."""
    from schnitzel.durable import lock_file
    from schnitzel_plugins.io import checkpoint_lock

    guard = lock_file._guard if module == "lock_file" else checkpoint_lock._guard
    with guard:  # as if another thread were inside the registry when the fork came
        pid = os.fork()
        if pid == 0:  # the child: take and give back a lock of each kind, then leave
            try:
                lock = CheckpointLock(tmp_path / "checkpoint.lock", "src", "child-run")
                lock.acquire()
                lock.release()
            finally:
                os._exit(0)
    deadline = time.monotonic() + 60  # against hanging only
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung on a lock registry's guard its parent held at the fork")


def test_a_forked_child_releasing_its_copy_of_a_store_lock_closes_nothing_of_its_own(
    tmp_path: Path,
) -> None:
    """The store lock's descriptor on the store file is closed in a child forked without exec;
    the child's copy of the `StoreLock` still held its number and `release()` closed it again:
    whatever the child had opened under that number since (here a file of its own) was closed
    under it. Another live process's lock is never touched: the parent still holds it."""
    target = tmp_path / "out.db"
    lock = StoreLock(target, target)
    lock.acquire()
    try:
        held = lock._store_fd
        assert held is not None
        pid = os.fork()
        if pid == 0:  # the child: its own file gets the number the fork closed
            code = 1
            try:
                own = os.open(tmp_path / "child.txt", os.O_RDWR | os.O_CREAT, 0o600)
                if own != held:
                    os.dup2(own, held)
                    os.close(own)
                lock.release()
                os.fstat(held)  # still open: the release closed nothing of the child's
                code = 0
            finally:
                os._exit(code)
        deadline = time.monotonic() + GUARD_S  # against hanging only
        while not (done := os.waitpid(pid, os.WNOHANG))[0]:
            assert time.monotonic() < deadline, "the forked child hung"
            time.sleep(0.02)
        assert os.waitstatus_to_exitcode(done[1]) == 0
        with pytest.raises(RuntimeStartError, match="in use by another running schnitzel"):
            _take_store_lock_in_another_process(target)
    finally:
        lock.release()
    _take_store_lock_in_another_process(target)  # released: free


def _take_store_lock_in_another_process(target: Path) -> None:
    """Take and give back the store lock of `target` in a new process; RuntimeStartError with
    its message when refused."""
    script = (
        "import sys\nfrom pathlib import Path\nfrom schnitzel.durable.lock import StoreLock\n"
        "from schnitzel.errors import RuntimeStartError\n"
        "lock = StoreLock(Path(sys.argv[1]), Path(sys.argv[1]))\n"
        "try:\n    lock.acquire()\nexcept RuntimeStartError as exc:\n"
        "    print(exc)\n    sys.exit(1)\nlock.release()\n"
    )
    taken = subprocess.run(
        [sys.executable, "-c", script, str(target)],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=GUARD_S,
    )
    if taken.returncode:
        raise RuntimeStartError(taken.stdout.strip() or taken.stderr.strip())
