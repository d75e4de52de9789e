"""The jsonl sink on real files: rotation, fsync policy, torn-tail repair and full disks."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schnitzel.contract.packet import StreamPacket
from schnitzel.registry.plugin import NodeContext
from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph
from schnitzel_plugins.io.jsonl_sink import JsonlSink, JsonlSinkConfig
from tests.conftest import run_on_small_tmpfs

LOGGER = "tests.io.jsonl_sink"
# the documented name of a rotated `out.jsonl`: out.<UTC yyyymmddThhmmss>Z[.<n>].jsonl
ROTATED = re.compile(r"out\.(\d{8}T\d{6}Z)(?:\.(\d+))?\.jsonl")


def make(tmp_path: Path, durable: bool = False, **options: Any) -> JsonlSink:
    options.setdefault("path", "out.jsonl")
    context = NodeContext("out", tmp_path, tmp_path / "state", logging.getLogger(LOGGER), durable)
    return JsonlSink(JsonlSinkConfig(**options), context)


def opened(tmp_path: Path, durable: bool = False, **options: Any) -> JsonlSink:
    sink = make(tmp_path, durable, **options)
    asyncio.run(sink.open())
    return sink


def batch(first: int, count: int, pad: int = 0) -> list[StreamPacket]:
    numbers = range(first, first + count)
    return [StreamPacket.new("sensor", "s", n, {"pad": "x" * pad}) for n in numbers]


def seqs(path: Path) -> list[int]:
    return [json.loads(line)["seq"] for line in path.read_bytes().splitlines()]


def files_oldest_first(directory: Path) -> list[Path]:
    """Rotated files ordered by the time and counter in their names, then the active file."""
    rotated = []
    for path in directory.iterdir():
        match = ROTATED.fullmatch(path.name)
        if match:
            rotated.append((match[1], int(match[2] or 0), path))
        else:
            assert path.name in {"out.jsonl", "graph.yaml"}, f"unexpected file {path.name}"
    return [path for *_, path in sorted(rotated)] + [directory / "out.jsonl"]


class FakeClock:
    """Monotonic time the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every os.fsync call, as "file" or "dir" (then the real fsync)."""
    calls: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        calls.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    yield calls


# --- rotation ----------------------------------------------------------------------------


def test_size_rotation_puts_every_line_in_exactly_one_file_in_order(tmp_path: Path) -> None:
    sink = opened(tmp_path, rotate_bytes=1024)
    batches = [batch(n, 3) for n in range(0, 60, 3)]  # ~430 bytes a batch: 2 per file
    for packets in batches:
        sink.deliver_batch(packets)
    asyncio.run(sink.close())

    files = files_oldest_first(tmp_path)
    assert len(files) >= 10
    assert [seq for path in files for seq in seqs(path)] == list(range(60))
    for path in files:
        assert path.stat().st_size <= 1024
        assert path.read_bytes().endswith(b"\n")
    where = {seq: path for path in files for seq in seqs(path)}
    for packets in batches:  # a batch never straddles two files
        assert len({where[p.seq] for p in packets}) == 1


def test_a_batch_larger_than_rotate_bytes_goes_whole_into_a_fresh_file(tmp_path: Path) -> None:
    sink = opened(tmp_path, rotate_bytes=1024)
    sink.deliver_batch(batch(0, 1))
    sink.deliver_batch(batch(1, 20))  # ~3 KiB
    sink.deliver_batch(batch(21, 1))
    asyncio.run(sink.close())
    assert [seqs(path) for path in files_oldest_first(tmp_path)] == [
        [0],
        list(range(1, 21)),
        [21],
    ]


def test_keep_deletes_the_oldest_rotated_files(tmp_path: Path) -> None:
    sink = opened(tmp_path, rotate_bytes=1024, keep=2)
    for n in range(0, 40, 4):  # ~580 bytes a batch: one per file
        sink.deliver_batch(batch(n, 4))
    asyncio.run(sink.close())
    files = files_oldest_first(tmp_path)
    assert len(files) == 3  # two rotated + the active file
    assert [seq for path in files for seq in seqs(path)] == list(range(28, 40))


def test_time_rotation_rotates_a_file_older_than_rotate_s_at_the_next_batch(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    sink = make(tmp_path, rotate_s=10.0)
    sink.clock = clock
    asyncio.run(sink.open())
    sink.deliver_batch(batch(0, 1))
    clock.now += 9.9
    sink.deliver_batch(batch(1, 1))
    assert len(files_oldest_first(tmp_path)) == 1
    clock.now += 0.1
    sink.deliver_batch(batch(2, 1))  # the file is 10 s old: rotated before this batch
    clock.now += 25
    sink.deliver_batch(batch(3, 1))
    asyncio.run(sink.close())
    assert [seqs(path) for path in files_oldest_first(tmp_path)] == [[0, 1], [2], [3]]


def test_an_empty_file_is_not_rotated_however_old(tmp_path: Path) -> None:
    clock = FakeClock()
    sink = make(tmp_path, rotate_s=1.0)
    sink.clock = clock
    asyncio.run(sink.open())
    clock.now += 60
    sink.deliver_batch(batch(0, 1))
    asyncio.run(sink.close())
    assert files_oldest_first(tmp_path) == [tmp_path / "out.jsonl"]


def test_a_file_found_at_start_is_as_old_as_its_last_write(tmp_path: Path) -> None:
    existing = tmp_path / "out.jsonl"
    existing.write_bytes(b'{"seq": -1}\n')
    an_hour_ago = time.time() - 3600
    os.utime(existing, (an_hour_ago, an_hour_ago))
    sink = opened(tmp_path, rotate_s=60.0)
    sink.deliver_batch(batch(0, 1))
    asyncio.run(sink.close())
    assert [seqs(path) for path in files_oldest_first(tmp_path)] == [[-1], [0]]


def test_rotated_names_carry_the_utc_time_and_a_counter_within_one_second(
    tmp_path: Path,
) -> None:
    sink = opened(tmp_path, rotate_bytes=1024)
    before = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(4):
        sink.deliver_batch(batch(n, 1, pad=900))  # ~1 KiB a line: every batch rotates
    after = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    asyncio.run(sink.close())
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != "out.jsonl")
    stamps = {ROTATED.fullmatch(name)[1] for name in names}  # type: ignore[index]
    assert len(names) == 3
    assert all(before <= stamp <= after for stamp in stamps)
    if len(stamps) == 1:  # all within one second: the first plain, then .1 and .2
        stamp = stamps.pop()
        assert names == [f"out.{stamp}.1.jsonl", f"out.{stamp}.2.jsonl", f"out.{stamp}.jsonl"]


# --- crash repair ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "kept"),
    [
        (b'{"seq": 0}\n{"seq": 1}\n{"seq": 2, "pay', b'{"seq": 0}\n{"seq": 1}\n'),
        (b'{"seq": 0, "pa', b""),
        (b'{"seq": 0}\n' + b"x" * 200_000, b'{"seq": 0}\n'),  # torn tail > one read-back
    ],
    ids=["torn-last-line", "torn-only-line", "long-torn-tail"],
)
def test_open_cuts_a_torn_last_line_and_names_the_file_and_bytes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, kept: bytes
) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        sink = opened(tmp_path)
    assert path.read_bytes() == kept
    [record] = caplog.records
    assert str(path) in record.getMessage()
    assert f"removed the last {len(content) - len(kept)} bytes" in record.getMessage()
    sink.deliver_batch(batch(7, 1))
    asyncio.run(sink.close())
    assert seqs(path)[-1] == 7


def test_open_leaves_a_complete_file_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"seq": 0}\n')
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        asyncio.run(opened(tmp_path).close())
    assert path.read_bytes() == b'{"seq": 0}\n'
    assert caplog.records == []


# --- fsync policy ------------------------------------------------------------------------


def test_fsync_batch_syncs_every_batch_and_the_directory_of_a_new_file(
    tmp_path: Path, fsyncs: list[str]
) -> None:
    sink = opened(tmp_path)
    assert fsyncs == ["dir"]  # the file was created
    for n in range(3):
        sink.deliver_batch(batch(n, 5))
    asyncio.run(sink.close())
    assert fsyncs == ["dir", "file", "file", "file"]  # nothing left to sync at close


def test_fsync_batch_syncs_the_directory_after_a_rotation(
    tmp_path: Path, fsyncs: list[str]
) -> None:
    (tmp_path / "out.jsonl").write_bytes(b"")
    sink = opened(tmp_path, rotate_bytes=1024)
    sink.deliver_batch(batch(0, 1, pad=900))
    sink.deliver_batch(batch(1, 1, pad=900))  # rotates first
    asyncio.run(sink.close())
    # batch 0; rename -> dir; the fresh file -> dir; batch 1
    assert fsyncs == ["file", "dir", "dir", "file"]


def test_fsync_interval_syncs_at_most_every_interval_and_on_close(
    tmp_path: Path, fsyncs: list[str]
) -> None:
    (tmp_path / "out.jsonl").write_bytes(b"")
    clock = FakeClock()
    sink = make(tmp_path, fsync="interval", fsync_interval_s=1.0)
    sink.clock = clock
    asyncio.run(sink.open())
    counts = []
    for step in (0.0, 0.4, 0.7, 0.2, 0.2, 1.5):  # at 0, 0.4, 1.1, 1.3, 1.5, 3.0 s
        clock.now += step
        sink.deliver_batch(batch(0, 1))
        counts.append(len(fsyncs))
    assert counts == [0, 0, 1, 1, 1, 2]
    clock.now += 0.1
    sink.deliver_batch(batch(1, 1))
    asyncio.run(sink.close())  # the last batch was not synced yet
    assert fsyncs == ["file", "file", "file"]


def test_fsync_interval_syncs_before_a_rotation(tmp_path: Path, fsyncs: list[str]) -> None:
    (tmp_path / "out.jsonl").write_bytes(b"")
    sink = make(tmp_path, fsync="interval", fsync_interval_s=60.0, rotate_bytes=1024)
    sink.clock = FakeClock()
    asyncio.run(sink.open())
    sink.deliver_batch(batch(0, 1, pad=900))
    assert fsyncs == []
    sink.deliver_batch(batch(1, 1, pad=900))
    assert fsyncs == ["file", "dir", "dir"]  # old file, rename, fresh file
    asyncio.run(sink.close())
    assert fsyncs == ["file", "dir", "dir", "file"]


def test_fsync_never_calls_fsync_at_all(tmp_path: Path, fsyncs: list[str]) -> None:
    (tmp_path / "torn.jsonl").write_bytes(b'{"seq": 0}\n{"se')
    sink = opened(tmp_path, path="torn.jsonl", fsync="never")
    sink.deliver_batch(batch(1, 1))
    asyncio.run(sink.close())
    sink = opened(tmp_path, fsync="never", rotate_bytes=1024, keep=1)
    for n in range(4):
        sink.deliver_batch(batch(n, 1, pad=900))
    asyncio.run(sink.close())
    assert fsyncs == []
    assert seqs(tmp_path / "torn.jsonl") == [0, 1]


# --- full disk ---------------------------------------------------------------------------

needs_dev_full = pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")


@needs_dev_full
def test_a_full_disk_fails_the_batch_with_a_clear_message(tmp_path: Path) -> None:
    sink = opened(tmp_path, path="/dev/full")
    with pytest.raises(OSError, match="disk full writing /dev/full: No space left") as raised:
        sink.deliver_batch(batch(0, 3))
    assert raised.value.errno == errno.ENOSPC
    with pytest.raises(OSError, match="disk full writing /dev/full"):
        sink.deliver(batch(0, 1)[0])  # what the runtime's packet-by-packet retry calls
    asyncio.run(sink.close())


@needs_dev_full
def test_a_durable_inbox_makes_the_sink_wait_for_room_logging_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class GaveUp(Exception):
        pass

    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 9:
            raise GaveUp  # ends the test; a real sink waits until the disk has room

    sink = opened(tmp_path, durable=True, path="/dev/full")
    sink.sleep = sleep
    with caplog.at_level(logging.WARNING, logger=LOGGER), pytest.raises(GaveUp):
        sink.deliver_batch(batch(0, 3))
    assert waits == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    [record] = caplog.records
    assert "disk full writing /dev/full" in record.getMessage()
    assert "holding a batch of 3 packets" in record.getMessage()
    assert (sink.disk_full_outages, sink.disk_full_retries) == (1, 9)


@needs_dev_full
def test_a_file_that_cannot_rotate_is_refused_at_open(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="/dev/full is not a regular file"):
        opened(tmp_path, path="/dev/full", rotate_bytes=4096)


def test_a_full_small_disk_never_tears_a_line_and_a_durable_inbox_waits_for_room(
    tmp_path: Path,
) -> None:
    """A real 256 KiB tmpfs in a private mount namespace (tests/io/small_disk.py)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = run_on_small_tmpfs(mount, "256k", "tests.io.small_disk", 60)

    assert result["short_write"] > 0  # on this disk a write really tears when it fills up
    plain = result["plain"]
    assert plain["error"]["errno"] == errno.ENOSPC
    assert "disk full writing" in plain["error"]["message"]
    assert plain["size_after"] == plain["size_before"]  # the torn batch was cut back
    assert plain["seqs"] == [0]

    durable = result["durable"]
    assert durable["seqs"] == list(range(51))  # every line exactly once, in order
    assert durable["outages"] == 1
    assert durable["retries"] >= 2
    [full, back] = durable["messages"]
    assert "disk full writing" in full
    assert "disk space is back" in back


# --- config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"rotate_bytes": 1023},
        {"rotate_bytes": True},
        {"rotate_s": 0},
        {"rotate_bytes": 4096, "keep": 0},
        {"fsync": "interval", "fsync_interval_s": 0},
        {"fsync": "always"},
        {"keep": 3},
        {"fsync_interval_s": 2.0},
        {"rotate": "daily"},
    ],
)
def test_config_refuses_options_out_of_bounds_or_that_do_not_apply(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        JsonlSinkConfig(path="out.jsonl", **options)


def test_config_defaults_sync_every_batch_and_never_rotate() -> None:
    config = JsonlSinkConfig(path="out.jsonl")
    assert (config.fsync, config.rotate_bytes, config.rotate_s, config.keep) == (
        "batch",
        None,
        None,
        None,
    )
    assert JsonlSinkConfig(path="o", rotate_s=3600, keep=24).rotate_s == 3600.0


# --- through the runtime -----------------------------------------------------------------

GRAPH = """\
version: 2
nodes:
  - {id: gen, kind: source, plugin: synthetic, config: {count: 3000, payload: {v: 1}}}
  - {id: out, kind: sink, plugin: jsonl, config: {path: out.jsonl, rotate_bytes: 16384}}
edges: [{from: gen, to: out}]
"""


def test_a_run_writes_every_packet_exactly_once_across_rotated_files(tmp_path: Path) -> None:
    graph_file = tmp_path / "graph.yaml"
    graph_file.write_text(GRAPH)
    runtime = Runtime(load_graph(graph_file), state_dir=tmp_path / "state")
    report = asyncio.run(asyncio.wait_for(runtime.run(), 60))
    assert report["nodes"]["out"]["out"] == 3000
    files = files_oldest_first(tmp_path)
    assert len(files) > 10
    assert [seq for path in files for seq in seqs(path)] == list(range(3000))
