"""The control clients check what they talk to (issue 13 §5): another local user who plants
`/tmp/schnitzel-<uid>` with a fake runtime, or hands a listening socket to another uid, gets
nothing from `schnitzel ctl`, which names what is wrong and exits 3. The runtime applies the
same checks where it serves.

The tests with a second user run where the suite runs as root: a real user
(`schnitzel-test`, created when absent) is the victim and `nobody` the attacker."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from schnitzel.control.async_client import AsyncControlClient
from schnitzel.control.client import ControlClient, ControlUntrusted
from schnitzel.control.paths import default_socket_path
from schnitzel.control.server import ControlServer, ControlSocketError
from schnitzel.control.trust import directory_problem
from tests.conftest import REPO
from tests.control.harness import GUARD_S, socket_dir

NOBODY = 65534
VICTIM = "schnitzel-test"
FAKE = Path(__file__).with_name("fake_runtime.py")


# -- as any user ----------------------------------------------------------------------------


def test_a_directory_anyone_may_write_is_refused_by_client_and_runtime() -> None:
    with socket_dir() as directory:
        open_dir = directory / "open"
        open_dir.mkdir()
        os.chmod(open_dir, 0o777)  # not sticky: anyone may replace the socket
        problem = directory_problem(open_dir)
        assert problem is not None and "can be written by any user (mode 777)" in problem
        with pytest.raises(ControlUntrusted) as caught:
            ControlClient(open_dir / "c.sock").request("status")
        assert "refusing to talk to" in str(caught.value) and "nothing was sent" in str(
            caught.value
        )
        server = ControlServer(object(), open_dir / "c.sock")
        with pytest.raises(ControlSocketError, match="can be written by any user"):
            asyncio.run(server.start())
        os.chmod(open_dir, 0o1777)  # sticky, as /tmp: nobody may replace another's file
        assert directory_problem(open_dir) is None


def test_a_socket_others_may_use_is_refused_before_anything_is_sent() -> None:
    with socket_dir() as directory:
        path = directory / "loose.sock"
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(path))
        listener.listen(1)
        os.chmod(path, 0o666)
        try:
            with pytest.raises(ControlUntrusted) as caught:
                ControlClient(path).request("stop", {"force": False})
            assert f"{path} has mode 666; a runtime's control socket is 0600" in str(caught.value)
            listener.settimeout(GUARD_S)
            conn, _ = listener.accept()  # it connected, checked, and hung up
            conn.settimeout(GUARD_S)
            assert conn.recv(1024) == b""  # without a byte
            conn.close()
        finally:
            listener.close()


# -- with a second user (root only) ---------------------------------------------------------


@pytest.fixture
def victim() -> Iterator[pwd.struct_passwd]:
    """A real unprivileged user to run `schnitzel ctl` as."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a fake runtime and ctl as two other users")
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to run as another user")
    try:
        yield pwd.getpwnam(VICTIM)
        return
    except KeyError:
        pass
    made = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
         "--user-group", VICTIM],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        yield pwd.getpwnam(VICTIM)  # made, or made meanwhile by a parallel run
    except KeyError:
        pytest.skip(f"cannot create the user {VICTIM}: {made.stderr.strip()}")


def as_user(uid: int, gid: int, *argv: str) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", *argv]


def ctl_as(user: pwd.struct_passwd, *args: str) -> subprocess.CompletedProcess[str]:
    """`schnitzel ctl` run by `user`, with no XDG_RUNTIME_DIR (the fallback is /tmp)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp", "LANG": "C.UTF-8"}
    return subprocess.run(
        as_user(user.pw_uid, user.pw_gid, sys.executable, "-m", "schnitzel.cli.main", "ctl",
                *args),
        cwd="/", env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def start_fake(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(argv, cwd=REPO, stderr=subprocess.PIPE)
    deadline = time.monotonic() + GUARD_S
    while "ready" not in log.read_text():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "hang guard: the fake runtime never listened"
        time.sleep(0.05)
    return process


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory every user may read (the fake's script and log)."""
    directory = Path(tempfile.mkdtemp(prefix="sz-trust-", dir="/tmp"))
    os.chmod(directory, 0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_a_planted_tmp_dir_gets_nothing_from_ctl(
    victim: pwd.struct_passwd, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    state = scratch / ("deep-" * 25) / "state"  # too long: the socket falls back to /tmp
    name = default_socket_path(state, scratch / "graph.yaml").name
    planted = Path(f"/tmp/schnitzel-{victim.pw_uid}")
    if planted.exists():
        pytest.skip(f"{planted} exists already; not touching it")
    log = scratch / "fake.log"
    log.write_text("")
    os.chown(log, NOBODY, NOBODY)
    fake = start_fake(
        as_user(NOBODY, NOBODY, sys.executable, str(FAKE), "plant", str(planted / name),
                str(log)),
        log,
    )  # fmt: skip
    try:
        assert planted.stat().st_uid == NOBODY
        for choose in (
            ["--state-dir", str(state)],
            ["--state-dir", str(state), "--graph", str(scratch / "graph.yaml")],
            ["--socket", str(planted / name)],
        ):
            done = ctl_as(victim, *choose, "stop", "--why", "maintenance")
            assert done.returncode == 3, (choose, done.stdout, done.stderr)
            assert (
                f"{planted} belongs to uid {NOBODY}, not to uid {victim.pw_uid} it is named for"
                in done.stderr
            ), done.stderr
            assert "nothing was sent" in done.stderr
            assert "stopping" not in done.stdout
        assert "received" not in log.read_text()  # never even connected to
    finally:
        fake.kill()
        fake.wait()
        shutil.rmtree(planted, ignore_errors=True)


def test_a_socket_served_by_another_uid_gets_nothing_from_ctl(
    victim: pwd.struct_passwd, scratch: Path
) -> None:
    home = scratch / "victim"
    home.mkdir()
    os.chown(home, victim.pw_uid, victim.pw_gid)
    os.chmod(home, 0o700)
    path = home / "control.sock"
    log = scratch / "fake.log"
    log.write_text("")
    # Bound as root, handed to the victim (mode 0600, the victim's file in the victim's
    # directory): only the kernel's word on who listens tells it apart.
    fake = start_fake(
        [sys.executable, str(FAKE), "handoff", str(path), str(log), str(victim.pw_uid)], log
    )
    try:
        info = path.lstat()
        assert info.st_uid == victim.pw_uid and stat.S_IMODE(info.st_mode) == 0o600
        done = ctl_as(victim, "--socket", str(path), "stop", "--why", "maintenance")
        assert done.returncode == 3, (done.stdout, done.stderr)
        assert (
            f"the process serving it runs as uid {NOBODY}, not as this user "
            f"({victim.pw_uid}) or root" in done.stderr
        ), done.stderr
        assert "nothing was sent" in done.stderr and "stopping" not in done.stdout
        deadline = time.monotonic() + GUARD_S
        while "received" not in log.read_text():  # the fake saw the connection end...
            assert time.monotonic() < deadline, "hang guard"
            time.sleep(0.05)
        assert "received 0 bytes" in log.read_text()  # ...without a byte
    finally:
        fake.kill()
        fake.wait()


def test_the_attached_console_client_refuses_the_same_socket() -> None:
    async def attach(path: Path) -> None:
        client = AsyncControlClient(path)
        try:
            await client.request("hello")
        finally:
            await client.close()

    with socket_dir() as directory:
        path = directory / "loose.sock"
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(path))
        listener.listen(1)
        os.chmod(path, 0o666)
        try:
            with pytest.raises(ControlUntrusted, match="has mode 666"):
                asyncio.run(attach(path))
        finally:
            listener.close()
