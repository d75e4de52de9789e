"""A durable store on a real small tmpfs that fills up (tests/runtime/store_small_disk.py, in
a private mount namespace): the operator is told the file system is full and where, not to
check permissions."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_on_small_tmpfs


def test_a_full_file_system_is_named_at_commit_and_at_open(tmp_path: Path) -> None:
    mount = tmp_path / "disk"
    mount.mkdir()
    result = run_on_small_tmpfs(mount, "1536k", "tests.runtime.store_small_disk", 120)
    directory = str(mount / "st")

    assert result["rows"] > 0  # the store took rows before the disk filled
    commit = result["commit_error"]
    assert "disk is full" in commit
    assert f"the file system holding {directory!r} is full: free space there" in commit
    opened = result["open_error"]
    assert "disk is full" in opened
    assert f"the file system holding {directory!r} is full: free space there" in opened
    assert "readable and writable" not in opened  # the review's misleading advice
