"""Batch rows (schnitzel/durable/rows.py) as the inbox counts them: the bytes of a backlog
read back at open, and the sizes of the packets of a damaged row."""

from __future__ import annotations

from pathlib import Path

from schnitzel.durable.store import DurableStore, NewRow
from tests.runtime import plugins
from tests.runtime.harness import graph_from, run
from tests.runtime.test_durable import graph


def new_rows(first: int, n: int) -> list[NewRow]:
    return [(seq, 1.0, b'{"n":%d}' % seq) for seq in range(first, first + n)]


def test_a_reopened_backlog_counts_its_packets_bytes_not_the_newlines_between_them(
    tmp_path: Path,
) -> None:
    store = DurableStore(tmp_path / "out.db")
    store.open()
    rows = new_rows(1, 600)  # three batch rows
    store.commit(rows, [], 0)
    store.commit([], [(1, 10)], 0)  # cut into the first
    store.close()
    again = DurableStore(tmp_path / "out.db")
    backlog = again.open()
    again.close()
    assert backlog.count == 590
    assert backlog.bytes == sum(len(body) for _seq, _at, body in rows[10:])


def test_a_replayed_backlog_once_delivered_leaves_no_bytes_counted(tmp_path: Path) -> None:
    """The report's `durable.bytes` (and what `max_bytes` is checked against) comes back to 0
    once the backlog a run found in its store is delivered."""
    plugins.DOWN.add("out")
    sink = "tests.runtime.plugins:Backend"
    first = run(graph_from(tmp_path, graph("{count: 1000}", sink)), tmp_path, max_packets=1000)
    assert first["nodes"]["out"]["durable"]["backlog"] == 1000
    plugins.DOWN.clear()
    second = run(graph_from(tmp_path, graph("{count: 0}", sink)), tmp_path)
    durable = second["nodes"]["out"]["durable"]
    assert (durable["replayed"], durable["settled"]) == (1000, 1000)
    assert (durable["backlog"], durable["bytes"]) == (0, 0)
