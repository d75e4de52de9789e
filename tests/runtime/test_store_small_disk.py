"""A durable store on a real small tmpfs that fills up (tests/runtime/store_small_disk.py, in
a private mount namespace): the operator is told the file system is full and where, not to
check permissions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_a_full_file_system_is_named_at_commit_and_at_open(tmp_path: Path) -> None:
    mount = tmp_path / "disk"
    mount.mkdir()
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs unshare(1) to mount a small tmpfs in a private namespace")
    script = (
        f"mount -t tmpfs -o size=1536k tmpfs {mount} "
        f"&& exec {sys.executable} -m tests.runtime.store_small_disk {mount}"
    )
    done = subprocess.run(
        [unshare, "-Urm", "sh", "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0 and not done.stdout:
        if "mount" in done.stderr or "unshare" in done.stderr:
            pytest.skip(f"cannot mount a tmpfs in a user namespace here: {done.stderr.strip()}")
        pytest.fail(done.stderr)
    result = json.loads(done.stdout)
    directory = str(mount / "st")

    assert result["rows"] > 0  # the store took rows before the disk filled
    commit = result["commit_error"]
    assert "disk is full" in commit
    assert f"the file system holding {directory!r} is full: free space there" in commit
    opened = result["open_error"]
    assert "disk is full" in opened
    assert f"the file system holding {directory!r} is full: free space there" in opened
    assert "readable and writable" not in opened  # the review's misleading advice
