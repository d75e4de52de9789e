"""Shared fixtures: the real plugin registry (built once) and paths to the example graphs."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bytecode import bytecode_written, compile_the_packages

REPO = Path(__file__).resolve().parent.parent
compile_the_packages(REPO)  # before this process, or any it starts, imports schnitzel

# pytest rewrites the modules of its plugins' packages as they are imported, hypothesis's
# among them (76 modules, about 1 CPU s): cached once, not again in every pytest process.
with bytecode_written():
    from hypothesis import HealthCheck, settings

from schnitzel.registry.registry import PluginRegistry  # noqa: E402
from tests.http_backend import LoopbackBackend  # noqa: E402

GRAPHS = REPO / "graphs"

# Hypothesis's defaults time each example (a 200 ms deadline) and its data generation: on a
# machine busy with other work those fail tests that are correct. No test depends on speed.
settings.register_profile("schnitzel", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("schnitzel")


def pytest_configure(config: pytest.Config) -> None:
    """`SCHNITZEL_LOOP=uvloop pytest ...`: the event loops the tests make themselves
    (`asyncio.run`) are uvloop's too; the runs they start as processes read the variable
    themselves (`--loop`, docs/operations.md). Unset, the tests' own loops are asyncio's and
    those processes take `auto`: uvloop where installed."""
    if os.environ.get("SCHNITZEL_LOOP", "").strip().lower() == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@pytest.hookimpl(hookwrapper=True)
def pytest_collection() -> Iterator[None]:
    """Test modules rewritten for pytest's assertions are cached (tests/bytecode.py)."""
    with bytecode_written():
        yield


def freeze_the_heap() -> None:
    """Collect, then freeze what is alive (`gc.freeze`): the collector no longer scans it.

    After collection a worker holds every test module and what they import (textual, cv2,
    onnxruntime, hypothesis, pydantic models: about 200,000 objects), and every full
    collection scanned them all again. A `Runtime.run()` in a process that froze nothing
    makes one at its start (runtime/collector.py), so each test that ran a graph in process
    paid for one, besides the collections its allocations made: tests/runtime's fast tests
    on two workers made 161 of them, 14 of their 94 CPU s (75 CPU s frozen).
    `schnitzel run` freezes its start-up heap before the runtime starts
    (launch/start_up_heap.py): with this, runs in a test process start as they do there.
    Garbage is collected first, never frozen: cycles holding files stay collectable."""
    gc.collect()
    gc.freeze()


def pytest_collection_finish() -> None:
    """Once every test module is imported: freeze them (`freeze_the_heap`)."""
    freeze_the_heap()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first (in their order, then the rest in theirs). On several workers
    (`pytest -n 2`, `--dist worksteal` from pyproject.toml) each takes an even share of the
    list and a worker that runs out takes half of what another has not started yet, from the
    end of its share: the long tests then run early, and what moves at the end are the
    short ones, so no worker is left running the last long test after the other finished."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _no_run_left_behind() -> Iterator[None]:
    """A `schnitzel run` a failing test started and never stopped is killed at its end."""
    yield
    from tests.logged_run import kill_left_behind  # it imports this module

    kill_left_behind()


@pytest.fixture(scope="session", autouse=True)
def _default_state_dir_of_this_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """A run given no `--state-dir` writes checkpoints, audit log and control socket to the
    default one, `~/.local/state/schnitzel`: the user's, shared with every other test session
    and xdist worker. Here it is a directory of this session (of this worker), for the runs in
    this process and every process they start; tests of the default itself set the variables
    they check."""
    patch = pytest.MonkeyPatch()
    patch.setenv("SCHNITZEL_STATE_DIR", str(tmp_path_factory.mktemp("default-state")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def registry() -> PluginRegistry:
    """The installed packs, found through entry points as in production."""
    return PluginRegistry.from_entry_points()


GENERATED_INPUTS = {"camera.yaml": "out/camera.mp4"}
"""Example graphs whose input is generated, not shipped (`just demo` makes it), and the file each
reads. Without it they are invalid (`environment`): test_examples.py validates them beside it."""


def example_graphs() -> list[Path]:
    """Every runnable example graph shipped in graphs/."""
    return sorted(GRAPHS.glob("*.yaml"))


SCHNITZEL = [sys.executable, "-m", "schnitzel.cli.main"]
SCHNITZEL_TUI = [sys.executable, "-m", "schnitzel_tui"]


def run_cli(
    *args: str, stdin: str | bytes | None = None, cmd: list[str] = SCHNITZEL
) -> subprocess.CompletedProcess[str]:
    """Run a command as an operator would, in a subprocess; output decoded as text."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    done = subprocess.run([*cmd, *args], input=data, capture_output=True, timeout=300, check=False)
    return subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode(errors="replace"),
        done.stderr.decode(errors="replace"),
    )


@pytest.fixture
def loopback_backend() -> Iterator[LoopbackBackend]:
    """A real HTTP backend on 127.0.0.1 (tests/http_backend.py), stopped after the test."""
    with LoopbackBackend() as backend:
        yield backend


def run_on_small_tmpfs(mount: Path, size: str, module: str, timeout_s: float) -> dict[str, Any]:
    """Run `python -m module MOUNT` in a private mount namespace where a real tmpfs of `size`
    (`256k`) is mounted at `mount` (a directory that exists), and return the JSON it prints.
    Skips where unshare(1) or a user-namespace tmpfs is not available."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs unshare(1) to mount a small tmpfs in a private namespace")
    script = (
        f"mount -t tmpfs -o size={size} tmpfs {mount} && exec {sys.executable} -m {module} {mount}"
    )
    done = subprocess.run(
        [unshare, "-Urm", "sh", "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0 and not done.stdout:
        if "mount" in done.stderr or "unshare" in done.stderr:
            pytest.skip(f"cannot mount a tmpfs in a user namespace here: {done.stderr.strip()}")
        pytest.fail(done.stderr)
    result: dict[str, Any] = json.loads(done.stdout)
    return result
