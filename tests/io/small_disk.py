"""Run inside a private 256 KiB tmpfs (see test_jsonl_sink.py): the jsonl sink on a disk that
really fills up. Prints one JSON object with what it saw.

Usage: python -m tests.io.small_disk DIR   (DIR is the mount point of an empty small tmpfs)

1. A sink without a durable inbox writes a first batch, the disk is filled, and a batch that
   only partly fits must fail with "disk full" and leave the file as it was.
2. A sink with a durable inbox gets a batch while the disk is full; another thread frees the
   space after 0.5 s; the batch must arrive once, and later batches after it.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from schnitzel.contract.packet import StreamPacket
from schnitzel.registry.plugin import NodeContext
from schnitzel_plugins.io.jsonl_sink import JsonlSink


class Records(logging.Handler):
    """Keeps the messages logged, to count warnings per outage."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def sink(directory: Path, name: str, durable: bool, records: Records) -> JsonlSink:
    logger = logging.getLogger(f"small_disk.{name}")
    logger.addHandler(records)
    logger.propagate = False
    logger.setLevel(logging.INFO)  # the recovery is logged at info
    context = NodeContext(name, directory, directory / "state", logger, durable=durable)
    return JsonlSink(JsonlSink.Config(path=f"{name}.jsonl"), context)


def packets(first: int, count: int) -> list[StreamPacket]:
    numbers = range(first, first + count)
    return [StreamPacket.new("sensor", "s", n, {"pad": "x" * 200}) for n in numbers]


def fill(path: Path) -> None:
    """Write `path` until the disk has no byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (65536, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)


def seqs(path: Path) -> list[int]:
    return [json.loads(line)["seq"] for line in path.read_bytes().splitlines()]


def short_write_on_a_full_disk(directory: Path) -> int:
    """Bytes a write of 10 KiB gets in after a short line once the disk is full: more than 0
    proves that a write there really tears (part of it lands before ENOSPC)."""
    probe = directory / "probe"
    probe.write_bytes(b"x" * 343)
    fill(directory / "filler")
    fd = os.open(probe, os.O_WRONLY | os.O_APPEND)
    try:
        return os.write(fd, b"y" * 10240)
    finally:
        os.close(fd)
        probe.unlink()
        (directory / "filler").unlink()


def without_durable_inbox(directory: Path) -> dict[str, Any]:
    records = Records()
    plain = sink(directory, "plain", durable=False, records=records)
    asyncio.run(plain.open())
    plain.deliver_batch(packets(0, 1))  # leaves most of a page free: the next write tears
    size_before = (directory / "plain.jsonl").stat().st_size
    fill(directory / "filler")
    try:
        plain.deliver_batch(packets(1, 40))
        error = None
    except OSError as exc:
        error = {"errno": exc.errno, "message": str(exc)}
    result = {
        "error": error,
        "size_before": size_before,
        "size_after": (directory / "plain.jsonl").stat().st_size,
        "seqs": seqs(directory / "plain.jsonl"),
    }
    (directory / "filler").unlink()
    asyncio.run(plain.close())
    (directory / "plain.jsonl").unlink()
    return result


def with_durable_inbox(directory: Path) -> dict[str, Any]:
    records = Records()
    durable = sink(directory, "durable", durable=True, records=records)
    asyncio.run(durable.open())
    durable.deliver_batch(packets(0, 1))
    fill(directory / "filler")
    freed = threading.Timer(0.5, (directory / "filler").unlink)
    freed.start()
    durable.deliver_batch(packets(1, 40))  # blocks until the timer frees the disk
    freed.join()
    durable.deliver_batch(packets(41, 10))
    asyncio.run(durable.close())
    return {
        "seqs": seqs(directory / "durable.jsonl"),
        "outages": durable.disk_full_outages,
        "retries": durable.disk_full_retries,
        "messages": records.messages,
    }


def main() -> None:
    directory = Path(sys.argv[1])
    result = {
        "short_write": short_write_on_a_full_disk(directory),
        "plain": without_durable_inbox(directory),
        "durable": with_durable_inbox(directory),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
