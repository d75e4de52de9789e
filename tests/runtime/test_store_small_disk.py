"""A durable store on a real small tmpfs that fills up (tests/runtime/store_small_disk.py, in
a private mount namespace): the operator is told the file system is full and where, not to
check permissions."""

from __future__ import annotations

from pathlib import Path

import pytest

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


@pytest.mark.slow  # the stop waits out the store's last commits on a disk that stays full
def test_a_stop_on_a_full_disk_names_the_packets_it_could_not_commit(tmp_path: Path) -> None:
    mount = tmp_path / "disk"
    mount.mkdir()
    result = run_on_small_tmpfs(mount, "512k", "tests.runtime.stop_small_disk", 240)
    assert result["dropped_by_reason"].get("shutdown", 0) > 0, result
    said = [e for e in result["events"] if e.startswith(f"durable store '{mount / 'out.db'}'")]
    assert said, result["events"]
    lost = int(said[0].split(" closed with ")[1].split()[0])
    assert lost > 0  # admitted while the disk was full, never committed
    assert said[0].endswith(
        f"closed with {lost} packets it could not commit (its file system stayed full): they "
        "are dropped (shutdown), never accepted; free space there before the next run"
    )
