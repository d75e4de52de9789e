"""`FileTail` on real files: rotation by rename and by copytruncate, truncation, partial lines,
and resuming from a checkpoint whose file moved: nothing skipped, nothing read twice, and
every change told to the operator."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from schnitzel_plugins.io.jsonl_files import identify
from schnitzel_plugins.io.jsonl_tail import FileTail, Line, Resume


class Told(list[tuple[str, str]]):
    """Collects what the tail tells the operator."""

    def __call__(self, level: str, message: str) -> None:
        self.append((level, message))


def tail(
    path: Path,
    follow: bool,
    told: Told,
    resume: Resume | None = None,
    max_line_bytes: int = 1 << 62,
) -> FileTail:
    reader = FileTail(
        path,
        follow=follow,
        poll_s=0.01,
        stopping=threading.Event(),
        tell=told,
        max_line_bytes=max_line_bytes,
    )
    reader.start(resume)
    return reader


def append(path: Path, first: int, count: int, tag: str = "a") -> None:
    with path.open("ab") as file:
        for n in range(first, first + count):
            file.write(f'{{"n": {n}, "file": "{tag}"}}\n'.encode())


def until_idle(lines: Iterator[Line | None]) -> list[Line]:
    """The lines there are now (follow mode: up to the first None)."""
    got = []
    for line in lines:
        if line is None:
            return got
        got.append(line)
    return got


def texts(lines: list[Line]) -> list[str]:
    return [line.raw.decode() for line in lines]


def test_a_partial_last_line_waits_for_its_newline_in_follow_mode(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    append(path, 0, 2)
    with path.open("ab") as file:
        file.write(b'{"n": 2, "fi')
    lines = tail(path, True, Told()).lines()
    assert len(until_idle(lines)) == 2
    with path.open("ab") as file:
        file.write(b'le": "a"}\n')
    (third,) = until_idle(lines)
    assert third.raw == b'{"n": 2, "file": "a"}' and third.number == 2
    assert third.end == path.stat().st_size


def test_without_follow_a_last_line_without_newline_is_read_and_the_source_ends(
    tmp_path: Path,
) -> None:
    path = tmp_path / "in.jsonl"
    append(path, 0, 2)
    with path.open("ab") as file:
        file.write(b'{"n": 2}')
    got = list(tail(path, False, Told()).lines())
    assert texts(got)[-1] == '{"n": 2}' and None not in got and got[-1].end == path.stat().st_size


def test_rename_rotation_finishes_the_old_file_then_reads_the_new_one(tmp_path: Path) -> None:
    path, told = tmp_path / "in.jsonl", Told()
    append(path, 0, 3)
    lines = tail(path, True, told).lines()
    assert len(until_idle(lines)) == 3
    append(path, 3, 2)  # written before the rename: must not be lost
    path.rename(tmp_path / "in.jsonl.1")
    append(path, 0, 4, tag="b")
    got = until_idle(lines)
    assert texts(got) == [
        '{"n": 3, "file": "a"}',
        '{"n": 4, "file": "a"}',
        *(f'{{"n": {n}, "file": "b"}}' for n in range(4)),
    ]
    assert [line.number for line in got] == [3, 4, 0, 1, 2, 3]
    old, new = got[0].file, got[-1].file
    assert old != new and old.key != new.key
    assert any("rotated" in message for _level, message in told)


def test_copytruncate_reads_the_rest_from_the_copy_then_the_file_again(tmp_path: Path) -> None:
    """The tail read 3 lines; 2 more were written, then copied and the file truncated: those
    2 are only in the copy."""
    path, told = tmp_path / "in.jsonl", Told()
    append(path, 0, 3)
    lines = tail(path, True, told).lines()
    assert len(until_idle(lines)) == 3
    append(path, 3, 2)
    shutil.copyfile(path, tmp_path / "in.jsonl.1")
    os.truncate(path, 0)
    append(path, 100, 2, tag="b")
    got = until_idle(lines)
    assert [line.raw for line in got] == [
        b'{"n": 3, "file": "a"}',
        b'{"n": 4, "file": "a"}',
        b'{"n": 100, "file": "b"}',
        b'{"n": 101, "file": "b"}',
    ]
    assert got[0].path.endswith("in.jsonl.1") and got[0].number == 3
    assert any("copytruncate" in message for _level, message in told)


def test_truncated_and_written_past_the_old_offset_is_noticed_by_its_head(
    tmp_path: Path,
) -> None:
    path, told = tmp_path / "in.jsonl", Told()
    append(path, 0, 3)
    lines = tail(path, True, told).lines()
    assert len(until_idle(lines)) == 3
    os.truncate(path, 0)
    append(path, 0, 10, tag="b")  # longer than before: only the head tells
    got = until_idle(lines)
    assert texts(got) == [f'{{"n": {n}, "file": "b"}}' for n in range(10)]
    assert any(level == "warning" and "truncated" in message for level, message in told)


def test_a_checkpoint_of_a_file_rotated_away_finishes_it_then_reads_the_new_one(
    tmp_path: Path,
) -> None:
    path, told = tmp_path / "in.jsonl", Told()
    append(path, 0, 5)
    first = list(tail(path, False, Told()).lines())
    at = first[2]  # checkpointed after line 2; lines 3 and 4 not yet safe
    path.rename(tmp_path / "in.jsonl.1")
    append(path, 0, 2, tag="b")
    got = list(tail(path, False, told, Resume(at.file, at.end, at.number + 1)).lines())
    assert texts(got) == [
        '{"n": 3, "file": "a"}',
        '{"n": 4, "file": "a"}',
        '{"n": 0, "file": "b"}',
        '{"n": 1, "file": "b"}',
    ]
    assert any("finishing in.jsonl.1 from line 4" in message for _level, message in told)


def test_two_rotations_while_stopped_read_the_file_between_them_too(tmp_path: Path) -> None:
    """The checkpoint's file was rotated (`in.jsonl.1`), then the file after it too
    (`in.jsonl.2`), while the source was stopped: the rest of the first, all of the file
    between, then the new one. An older rotation (written before) is not read again."""
    path, told = tmp_path / "in.jsonl", Told()
    append(tmp_path / "in.jsonl.9", 0, 2, tag="z")  # rotated long ago, read long ago
    os.utime(tmp_path / "in.jsonl.9", (1e9, 1e9))
    append(path, 0, 5)
    at = list(tail(path, False, Told()).lines())[2]
    assert at is not None
    path.rename(tmp_path / "in.jsonl.1")
    append(path, 0, 2, tag="b")
    path.rename(tmp_path / "in.jsonl.2")
    append(path, 0, 2, tag="c")
    got = until_idle(tail(path, False, told, Resume(at.file, at.end, at.number + 1)).lines())
    assert texts(got) == [
        '{"n": 3, "file": "a"}',
        '{"n": 4, "file": "a"}',
        '{"n": 0, "file": "b"}',
        '{"n": 1, "file": "b"}',
        '{"n": 0, "file": "c"}',
        '{"n": 1, "file": "c"}',
    ]
    assert [line.path for line in got[2:4]] == [str(tmp_path / "in.jsonl.2")] * 2
    assert any(
        "finishing in.jsonl.1 from line 4, then in.jsonl.2" in message for _level, message in told
    )


def test_two_rotations_between_two_looks_read_the_file_between_them_too(tmp_path: Path) -> None:
    """While following: the file was rotated twice before the tail looked again (a source
    held back by a slow sink): the file between is read, not skipped."""
    path, told = tmp_path / "in.jsonl", Told()
    append(path, 0, 3)
    lines = tail(path, True, told).lines()
    assert len(until_idle(lines)) == 3
    path.rename(tmp_path / "in.jsonl.1")
    append(path, 0, 2, tag="b")
    path.rename(tmp_path / "in.jsonl.2")
    append(path, 0, 2, tag="c")
    got = until_idle(lines)
    assert texts(got) == [
        '{"n": 0, "file": "b"}',
        '{"n": 1, "file": "b"}',
        '{"n": 0, "file": "c"}',
        '{"n": 1, "file": "c"}',
    ]
    assert any("in.jsonl.2" in message for _level, message in told)


def test_a_checkpoint_whose_file_is_gone_reads_the_new_file_and_says_so(tmp_path: Path) -> None:
    path, told = tmp_path / "in.jsonl", Told()
    append(path, 0, 5)
    last = list(tail(path, False, Told()).lines())[-1]
    path.unlink()
    append(path, 0, 3, tag="b")
    got = list(tail(path, False, told, Resume(last.file, last.end, last.number + 1)).lines())
    assert len(got) == 3
    ((level, message),) = told
    assert level == "warning" and "reading in.jsonl from its first line" in message


def test_the_same_file_resumes_where_the_checkpoint_says(tmp_path: Path) -> None:
    path, told = tmp_path / "in.jsonl", Told()
    append(path, 0, 5)
    at = list(tail(path, False, Told()).lines())[1]
    got = list(tail(path, False, told, Resume(at.file, at.end, at.number + 1)).lines())
    assert [line.number for line in got] == [2, 3, 4]
    assert told == [("info", f"resuming in.jsonl at line 3 (byte {at.end})")]


def test_a_file_is_identified_once_its_first_line_is_complete(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"n": 0')
    fd = os.open(path, os.O_RDONLY)
    try:
        assert identify(fd) is None
        with path.open("ab") as file:
            file.write(b"}\n")
        known = identify(fd)
        append(path, 1, 50)
        assert identify(fd) == known  # the identity does not change as the file grows
    finally:
        os.close(fd)


def test_a_truncation_in_the_middle_of_reading_is_caught_before_the_next_read(
    tmp_path: Path,
) -> None:
    """Truncated and written past the old size while the tail is inside its first 64 KiB:
    it never reads the new bytes as if they went on from the old ones."""
    path, told = tmp_path / "in.jsonl", Told()
    append(path, 0, 5000)  # about 120 KiB
    lines = tail(path, False, told).lines()
    first = next(lines)
    assert first is not None and first.number == 0
    os.truncate(path, 0)
    append(path, 0, 6000, tag="b")
    got = [line for line in lines if line is not None]
    old = [line for line in got if b'"a"' in line.raw]
    new = [line for line in got if b'"b"' in line.raw]
    assert [line.number for line in old] == list(range(1, len(old) + 1))  # the chunk in hand
    assert [line.raw for line in new] == [
        f'{{"n": {n}, "file": "b"}}'.encode() for n in range(6000)
    ]
    assert len(got) == len(old) + len(new)  # nothing mixed of the two
    assert any(level == "warning" and "truncated" in message for level, message in told)


def test_a_line_of_several_megabytes_is_read_once_and_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its chunks are kept until the newline and joined once (rejoining the partial line on
    # every read made a 48 MB line take quadratic time); every byte is read exactly once.
    from schnitzel_plugins.io import jsonl_tail

    path = tmp_path / "in.jsonl"
    long_line = b'{"blob": "' + b"x" * (6 << 20) + b'"}'
    path.write_bytes(b'{"n": 0}\n' + long_line + b'\n{"n": 2}\n{"n": 3}')
    read: list[int] = []
    copied: list[int] = []
    real_pread = os.pread

    class Chunk(bytes):
        """A chunk that counts the bytes copied when something is prepended to it."""

        def __radd__(self, before: bytes) -> bytes:
            copied.append(len(before))
            return bytes(before) + bytes(self)

    def counting_pread(fd: int, size: int, offset: int) -> bytes:
        chunk = real_pread(fd, size, offset)
        if sys._getframe(1).f_code.co_name != "_drain":  # the file-identity reads
            return chunk
        read.append(len(chunk))
        return Chunk(chunk)

    monkeypatch.setattr(jsonl_tail.os, "pread", counting_pread)
    got = list(tail(path, False, Told()).lines())
    assert [line.raw for line in got if line is not None] == [
        b'{"n": 0}',
        long_line,
        b'{"n": 2}',
        b'{"n": 3}',
    ]
    assert [line.number for line in got if line is not None] == [0, 1, 2, 3]
    assert got[-1] is not None and got[-1].end == path.stat().st_size
    assert sum(read) == path.stat().st_size  # nothing read twice
    assert sum(copied) <= path.stat().st_size  # the partial line is not copied on every read
    assert len([size for size in read if size]) == -(-path.stat().st_size // jsonl_tail.CHUNK)


def _shift_rotate(path: Path, keep: int) -> None:
    """logrotate's default scheme: `in.jsonl.N` to `.N+1` (oldest first), the file to `.1`."""
    for n in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            older.rename(path.with_name(f"{path.name}.{n + 1}"))
    path.rename(path.with_name(f"{path.name}.1"))


def _three_shifting_rotations_while_stopped(tmp_path: Path) -> tuple[Path, Resume]:
    """Checkpoint in file a; then a, b and c rotated away (`.3`, `.2`, `.1`); d at the path."""
    path = tmp_path / "in.jsonl"
    append(path, 0, 3)
    at = list(tail(path, False, Told()).lines())[1]
    for tag in "bcd":
        _shift_rotate(path, keep=5)
        append(path, 0, 1, tag=tag)
    return path, Resume(at.file, at.end, at.number + 1)


def test_shifted_rotations_with_the_same_mtime_are_read_oldest_first(tmp_path: Path) -> None:
    """File times tick coarsely: b (`.2`) and c (`.1`) written within one tick have the same
    mtime; `.2` is the older one and is read first."""
    path, resume = _three_shifting_rotations_while_stopped(tmp_path)
    for name in ("in.jsonl.3", "in.jsonl.2", "in.jsonl.1"):
        os.utime(tmp_path / name, ns=(1_000_000_000, 1_000_000_000))
    got = list(tail(path, False, Told(), resume).lines())
    assert [line.raw.decode()[-4:-1] for line in got] == ['"a"', '"b"', '"c"', '"d"']


def test_ascending_rotations_with_the_same_mtime_are_read_oldest_first(tmp_path: Path) -> None:
    """The other numbering (the newest rotation has the highest number, log4j's `max`):
    b (`.2`) and c (`.3`) with the same mtime as a (`.1`) are read b, then c."""
    path = tmp_path / "in.jsonl"
    append(path, 0, 3)
    at = list(tail(path, False, Told()).lines())[1]
    for n, tag in ((1, "b"), (2, "c"), (3, "d")):
        path.rename(tmp_path / f"in.jsonl.{n}")
        append(path, 0, 1, tag=tag)
    for name in ("in.jsonl.1", "in.jsonl.2", "in.jsonl.3"):
        os.utime(tmp_path / name, ns=(1_000_000_000, 1_000_000_000))
    got = list(tail(path, False, Told(), Resume(at.file, at.end, at.number + 1)).lines())
    assert [line.raw.decode()[-4:-1] for line in got] == ['"a"', '"b"', '"c"', '"d"']


def test_a_checkpoint_whose_file_is_gone_still_reads_the_files_rotated_after_it(
    tmp_path: Path,
) -> None:
    """Stopped for more rotations than are kept: the checkpoint's file a was deleted, but b,
    rotated away after the checkpoint was written (`in.jsonl.1`), is still there: it is read
    before the file at the path. An older rotation written before the checkpoint is not."""
    path, told = tmp_path / "in.jsonl", Told()
    append(tmp_path / "in.jsonl.2", 0, 1, tag="z")
    os.utime(tmp_path / "in.jsonl.2", ns=(1_000_000_000, 1_000_000_000))
    append(path, 0, 3)
    at = list(tail(path, False, Told()).lines())[1]
    saved_ns = 2_000_000_000  # when the checkpoint was written
    os.utime(path, ns=(3_000_000_000, 3_000_000_000))
    path.unlink()  # a rotated away and deleted (rotate 1)
    append(path, 0, 2, tag="b")
    path.rename(tmp_path / "in.jsonl.1")
    append(path, 0, 1, tag="c")
    resume = Resume(at.file, at.end, at.number + 1, saved_ns)
    got = list(tail(path, False, told, resume).lines())
    assert [line.raw.decode()[-4:-1] for line in got] == ['"b"', '"b"', '"c"']
    ((level, message),) = told
    assert level == "warning" and "reading in.jsonl.1, then in.jsonl from its first" in message


def test_copytruncate_with_a_header_line_reads_the_rest_from_the_newest_copy(
    tmp_path: Path,
) -> None:
    """Every file starts with the same header line, so every copy looks like the file; with
    dated names (`dateext`) the older copy sorts first. The rest is read from the copy just
    made (the newest), not from yesterday's."""
    path, told = tmp_path / "in.jsonl", Told()
    header = b'{"header": 1}\n'
    path.write_bytes(header)
    append(path, 0, 20, tag="y")
    shutil.copyfile(path, tmp_path / "in.jsonl-20261205")  # yesterday's copy, longer
    os.utime(tmp_path / "in.jsonl-20261205", ns=(1_000_000_000, 1_000_000_000))
    path.write_bytes(header)
    append(path, 0, 3)
    lines = tail(path, True, told).lines()
    assert len(until_idle(lines)) == 4
    append(path, 3, 2)
    shutil.copyfile(path, tmp_path / "in.jsonl-20261206")
    os.truncate(path, 0)
    path.write_bytes(header)
    got = until_idle(lines)
    assert texts(got) == ['{"n": 3, "file": "a"}', '{"n": 4, "file": "a"}', '{"header": 1}']


@pytest.mark.parametrize("newline", [True, False], ids=["complete", "last-without-newline"])
def test_a_line_over_max_line_bytes_is_cut_with_bounded_memory_and_offsets_stay_right(
    tmp_path: Path, newline: bool
) -> None:
    import tracemalloc

    path = tmp_path / "in.jsonl"
    append(path, 0, 1)
    long_line = b'{"pad": "' + b"x" * (16 * 1024 * 1024) + b'"}'
    with path.open("ab") as file:
        file.write(long_line + (b"\n" if newline else b""))
    if newline:
        append(path, 2, 1)
    reader = tail(path, False, Told(), max_line_bytes=65536)
    tracemalloc.start()
    try:
        got = [line for line in reader.lines() if line is not None]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        reader.close()
    assert peak < 4 * 1024 * 1024, f"{peak / 1e6:.1f} MB held for a 16 MB line"
    long = got[1]
    assert (long.number, len(long.raw), long.cut) == (1, 65536, len(long_line) - 65536)
    assert long.raw == long_line[:65536]
    assert long.end == len(b'{"n": 0, "file": "a"}\n') + len(long_line) + (1 if newline else 0)
    if newline:
        assert texts(got[2:]) == ['{"n": 2, "file": "a"}'] and got[2].end == path.stat().st_size
    assert [line.cut for line in got if line is not long] == [0] * (len(got) - 1)


@pytest.mark.parametrize("before", [0, 64], ids=["first-line", "after-a-read-ending-in-newline"])
def test_a_line_over_max_line_bytes_is_cut_wherever_a_read_begins(
    tmp_path: Path, before: int
) -> None:
    """The first line of a read (the file's first line, or the one after a read that ended
    on a newline) is held to max_line_bytes like any other: it was passed on whole."""
    from schnitzel_plugins.io.jsonl_tail import CHUNK

    path = tmp_path / "in.jsonl"
    short = b'{"pad": "' + b"y" * 1012 + b'"}\n'  # 1024 bytes: `before` of them fill a read
    assert before * len(short) in (0, CHUNK)
    long_line = b'{"pad": "' + b"x" * 3000 + b'"}'
    path.write_bytes(short * before + long_line + b"\n" + b'{"n": 2}\n')
    reader = tail(path, False, Told(), max_line_bytes=1024)
    try:
        got = [line for line in reader.lines() if line is not None]
    finally:
        reader.close()
    assert [line.cut for line in got[:before]] == [0] * before
    long = got[before]
    assert (len(long.raw), long.cut) == (1024, len(long_line) - 1024)
    assert long.end == before * len(short) + len(long_line) + 1
    assert got[-1].raw == b'{"n": 2}' and got[-1].end == path.stat().st_size
