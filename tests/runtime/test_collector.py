"""The garbage collector while a graph runs (runtime/collector.py): the start-up heap is
frozen and the young generation sized to the graph's inboxes for the run, and both are
restored when the last run ends."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from schnitzel.runtime.collector import MAX_YOUNG, collector_tuned_for, young_threshold
from tests.conftest import freeze_the_heap
from tests.runtime import plugins
from tests.runtime.harness import graph_from, run


@pytest.fixture
def default_collector() -> Iterator[tuple[int, int, int]]:
    """The collector as CPython starts it (enabled, nothing frozen); restored after the test,
    the heap frozen again if it was (the suite freezes it: tests/conftest.py)."""
    saved, enabled, frozen = gc.get_threshold(), gc.isenabled(), gc.get_freeze_count() > 0
    gc.unfreeze()
    gc.enable()
    gc.set_threshold(700, 10, 10)
    try:
        yield gc.get_threshold()
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)
        if frozen:
            freeze_the_heap()
        if not enabled:
            gc.disable()


def test_a_run_freezes_the_heap_and_sizes_the_young_generation_then_restores_both(
    tmp_path: Path, default_collector: tuple[int, int, int]
) -> None:
    graph = graph_from(
        tmp_path,
        """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 20}}
  - {id: mid, kind: transform, plugin: passthrough, inbox: {max: 3000}}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:CollectorProbe"}
edges:
  - {from: src, to: mid}
  - {from: mid, to: out}
""",
    )
    report = run(graph, tmp_path)
    assert report["totals"]["delivered"] == 20
    # every node may hold a batch (256), the two inboxes up to 3000 and 1024 packets
    expected_young = young_threshold(3 * 256 + 3000 + 1024)
    assert expected_young > 700
    assert {young for young, _ in plugins.COLLECTOR_SEEN} == {expected_young}
    assert all(frozen > 0 for _, frozen in plugins.COLLECTOR_SEEN)
    assert gc.get_threshold() == default_collector
    assert gc.get_freeze_count() == 0


class _Cycle:
    """Garbage only the cyclic collector frees (it refers to itself)."""

    def __init__(self) -> None:
        self.me = self


def test_garbage_left_before_a_run_is_collected_not_frozen_with_the_heap(
    default_collector: tuple[int, int, int],
) -> None:
    # A cycle holding a file (an unclosed sqlite3 connection) frozen with the start-up heap
    # would keep the file open for as long as the run lasts: a test suite ran out of fds.
    gc.set_threshold(10**9, 10, 10)  # no collection on its own before the run starts
    garbage = _Cycle()
    gone = weakref.ref(garbage)
    del garbage
    assert gone() is not None
    with collector_tuned_for(5000):
        assert gone() is None
        assert gc.get_freeze_count() > 0


def test_the_young_generation_is_never_below_the_default_nor_above_the_cap(
    default_collector: tuple[int, int, int],
) -> None:
    assert young_threshold(1) == 700
    assert young_threshold(10**9) == MAX_YOUNG


def test_overlapping_runs_restore_the_collector_when_the_last_one_ends(
    default_collector: tuple[int, int, int],
) -> None:
    with collector_tuned_for(5000):
        first = gc.get_threshold()[0]
        with collector_tuned_for(20_000):
            assert gc.get_threshold()[0] == young_threshold(20_000) > first
        assert gc.get_threshold()[0] == young_threshold(20_000)  # still running: kept
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == default_collector
    assert gc.get_freeze_count() == 0


def test_a_process_that_froze_objects_itself_keeps_them_frozen(
    default_collector: tuple[int, int, int],
) -> None:
    marker: list[list[int]] = [[]]  # a container the collector tracks
    gc.freeze()
    with collector_tuned_for(5000):
        assert gc.get_threshold()[0] == young_threshold(5000)
    assert gc.get_freeze_count() > 0
    assert not any(o is marker for o in gc.get_objects())  # still frozen: not unfrozen
    assert gc.get_threshold() == default_collector


def test_a_process_that_disabled_the_collector_keeps_it_as_it_was(
    default_collector: tuple[int, int, int],
) -> None:
    gc.disable()
    with collector_tuned_for(5000):
        assert gc.get_threshold() == default_collector
        assert gc.get_freeze_count() == 0
    assert not gc.isenabled()


def test_runs_that_end_out_of_order_one_raising_restore_the_collector_when_the_last_ends(
    default_collector: tuple[int, int, int],
) -> None:
    first, second = collector_tuned_for(MAX_YOUNG), collector_tuned_for(10)
    first.__enter__()
    second.__enter__()
    with pytest.raises(RuntimeError):  # the first run raises and ends before the second
        try:
            raise RuntimeError("a plugin failed")
        except RuntimeError as exc:
            first.__exit__(type(exc), exc, exc.__traceback__)
            raise
    assert gc.get_threshold()[0] == MAX_YOUNG  # the second still runs: kept
    assert gc.get_freeze_count() > 0
    second.__exit__(None, None, None)
    assert gc.get_threshold() == default_collector
    assert gc.get_freeze_count() == 0
