"""Run inside a private small tmpfs (see test_store_small_disk.py): a durable store on a disk
that really fills up. Prints one JSON object with what the operator is told.

Usage: python -m tests.runtime.store_small_disk DIR   (DIR: the mount point of an empty tmpfs)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from schnitzel.durable.store import DiskFull, DurableStore
from schnitzel.errors import RuntimeStartError
from tests.io.small_disk import fill
from tests.runtime.test_store_files import body, row


def main() -> None:
    path = Path(sys.argv[1]) / "st" / "out.db"
    store = DurableStore(path)
    store.open()
    commit_error = ""
    seq = 1
    # One packet per commit: a failed commit's frames stay in the WAL past its valid end,
    # room later writes reuse; after a failed commit of a 50-packet batch row the open found
    # enough there for its own write and did not fail (measured), which is not this test.
    while seq < 100_000:  # a 1.5 MiB disk is full long before
        try:
            store.commit([row(seq, body(seq - 1) * 4)], [], 0)
        except DiskFull as exc:
            commit_error = str(exc)
            break
        seq += 1
    store.close()
    open_error = ""
    fill(path.parent.parent / "filler")  # whatever the close's checkpoint gave back, taken
    try:
        again = DurableStore(path)
        again.open()
        again.close()
    except RuntimeStartError as exc:
        open_error = str(exc)
    print(json.dumps({"rows": seq - 1, "commit_error": commit_error, "open_error": open_error}))


if __name__ == "__main__":
    main()
