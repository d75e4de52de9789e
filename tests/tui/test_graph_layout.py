"""The graph layout: boxes never overlap, every edge ends in an arrow at its target, nothing is
wider than asked, and the same graph always comes out the same."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
from collections import deque
from collections.abc import Iterable
from pathlib import Path

import pytest

from schnitzel_tui.graph_layout import (
    ACROSS,
    DOWN,
    LIST,
    MIN_BOX,
    GraphLayout,
    NodeBox,
    box_content,
    layout_graph,
)
from schnitzel_tui.model import NodeView, Topology
from tests.tui.reports import node_report


def topology(nodes: Iterable[tuple[str, str]], edges: Iterable[tuple[str, str]]) -> Topology:
    """A topology shaped as `RuntimeControl.describe()` answers."""
    return Topology.from_description(
        {
            "graph": "g.yaml",
            "nodes": [
                {"id": n, "kind": k, "plugin": "p", "config": {}, "inbox": {}} for n, k in nodes
            ],
            "edges": [{"from": a, "to": b, "from_port": "out", "to_port": "in"} for a, b in edges],
        }
    )


def chain(n: int = 3) -> Topology:
    ids = [f"step{i}" for i in range(n)]
    return topology([(i, "transform") for i in ids], itertools.pairwise(ids))


FAN_OUT = topology(
    [("cam", "source")] + [(f"out{i}", "sink") for i in range(8)],
    [("cam", f"out{i}") for i in range(8)],
)
FAN_IN = topology(
    [(f"in{i}", "source") for i in range(8)] + [("merge", "sink")],
    [(f"in{i}", "merge") for i in range(8)],
)
DIAMOND = topology(
    [("a", "source"), ("b", "transform"), ("c", "transform"), ("d", "sink")],
    [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
)
PIPELINE = topology(
    [
        ("cam", "source"),
        ("resize", "transform"),
        ("detect", "transform"),
        ("policy", "transform"),
        ("http", "sink"),
        ("jsonl", "sink"),
        ("hold", "delay"),
    ],
    [
        ("cam", "resize"),
        ("resize", "detect"),
        ("detect", "policy"),
        ("policy", "http"),
        ("detect", "jsonl"),
        ("policy", "hold"),
        ("hold", "detect"),
    ],
)
"""cam → resize → detect → {policy → http, jsonl}, and a loop policy → hold (delay) → detect."""
LONG_EDGES = topology(
    [(n, "transform") for n in "abcde"],
    [("a", "b"), ("b", "c"), ("c", "d"), ("d", "e"), ("a", "e"), ("b", "e")],
)


def big_graph(n: int = 50, seed: int = 3) -> Topology:
    """`n` nodes, each fed by one or two of the eight before it."""
    rnd = random.Random(seed)
    edges = [
        (f"n{p:02d}", f"n{i:02d}")
        for i in range(4, n)
        for p in rnd.sample(range(max(0, i - 8), i), k=rnd.choice([1, 1, 1, 2]))
    ]
    return topology([(f"n{i:02d}", "transform") for i in range(n)], edges)


GRAPHS = {
    "chain": chain(),
    "fan_out": FAN_OUT,
    "fan_in": FAN_IN,
    "diamond": DIAMOND,
    "loop": PIPELINE,
    "long_edges": LONG_EDGES,
    "fifty_nodes": big_graph(),
}
WIDTHS = [24, 25, 31, 40, 47, 60, 79, 80, 100, 120, 160, 200]

# Which neighbours each line character connects to: (dx, dy).
_R, _L, _D, _U = (1, 0), (-1, 0), (0, 1), (0, -1)
_LINKS = {
    "─": {_L, _R},
    "│": {_U, _D},
    "╭": {_D, _R},
    "╮": {_D, _L},
    "╰": {_U, _R},
    "╯": {_U, _L},
    "├": {_U, _D, _R},
    "┤": {_U, _D, _L},
    "┬": {_L, _R, _D},
    "┴": {_L, _R, _U},
    "┼": {_L, _R, _U, _D},
    "▶": {_L},
    "▼": {_U},
}


def exit_cell(layout: GraphLayout, box: NodeBox) -> tuple[int, int]:
    if layout.mode == ACROSS:
        return box.x + box.width, box.content_y
    return box.x + box.width // 2, box.y + box.height


def arrow_cell(layout: GraphLayout, box: NodeBox) -> tuple[int, int]:
    if layout.mode == ACROSS:
        return box.x - 1, box.content_y
    return box.x + box.width // 2, box.y - 1


def char(layout: GraphLayout, x: int, y: int) -> str:
    if 0 <= y < layout.height and 0 <= x < len(layout.background[y]):
        return layout.background[y][x]
    return " "


def reachable(layout: GraphLayout, start: tuple[int, int]) -> set[tuple[int, int]]:
    """Cells joined to `start` by lines (both cells must connect toward each other)."""
    seen, todo = {start}, deque([start])
    while todo:
        x, y = todo.popleft()
        for dx, dy in _LINKS.get(char(layout, x, y), ()):
            nxt = (x + dx, y + dy)
            if nxt not in seen and (-dx, -dy) in _LINKS.get(char(layout, *nxt), ()):
                seen.add(nxt)
                todo.append(nxt)
    return seen


def connected(layout: GraphLayout, source: str, target: str) -> bool:
    """True when lines lead from `source`'s exit to an arrow into `target`."""
    src, dst = layout.box(source), layout.box(target)
    assert src is not None and dst is not None
    x, y = arrow_cell(layout, dst)
    assert char(layout, x, y) == ("▶" if layout.mode == ACROSS else "▼")
    return (x, y) in reachable(layout, exit_cell(layout, src))


def overlap(a: NodeBox, b: NodeBox) -> bool:
    return (
        a.x < b.x + b.width
        and b.x < a.x + a.width
        and a.y < b.y + b.height
        and b.y < a.y + a.height
    )


@pytest.mark.parametrize("name", GRAPHS)
def test_no_line_is_wider_than_asked(name: str) -> None:
    for width in [*WIDTHS, 1, 5, 12, 23]:
        layout = layout_graph(GRAPHS[name], width)
        assert layout.width <= width
        assert len(layout.background) == layout.height
        assert all(len(line) == layout.width for line in layout.background)
        for box in layout.boxes:
            assert box.content_x + box.content_width <= layout.width


@pytest.mark.parametrize("name", GRAPHS)
def test_boxes_never_overlap_and_stay_on_the_canvas(name: str) -> None:
    for width in WIDTHS:
        layout = layout_graph(GRAPHS[name], width)
        assert [b.node_id for b in layout.boxes] == [n.id for n in GRAPHS[name].nodes]
        for i, a in enumerate(layout.boxes):
            assert a.x >= 0 and a.y >= 0
            assert a.x + a.width <= layout.width and a.y + a.height <= layout.height
            assert a.x <= a.content_x and a.content_x + a.content_width <= a.x + a.width
            assert not any(overlap(a, b) for b in layout.boxes[i + 1 :]), (name, width, a)


@pytest.mark.parametrize("name", GRAPHS)
def test_every_edge_ends_in_an_arrow_into_its_target(name: str) -> None:
    graph = GRAPHS[name]
    for width in WIDTHS:
        layout = layout_graph(graph, width)
        if layout.mode == LIST:
            continue
        for edge in graph.edges:
            assert connected(layout, edge.source, edge.target), (name, width, edge)


def test_lines_do_not_leak_past_a_box() -> None:
    layout = layout_graph(chain(3), 80)
    assert connected(layout, "step0", "step1")
    arrow = arrow_cell(layout, layout.box("step2"))  # type: ignore[arg-type]
    assert arrow not in reachable(layout, exit_cell(layout, layout.box("step0")))  # type: ignore[arg-type]


def test_a_chain_is_one_straight_row_of_boxes_using_the_width() -> None:
    layout = layout_graph(chain(3), 80)
    assert layout.mode == ACROSS
    assert layout.height == 3
    assert len({b.content_y for b in layout.boxes}) == 1
    assert layout.width >= 76
    assert layout.boxes[0].width > MIN_BOX


def test_a_fan_out_draws_one_arrow_per_target_from_one_exit() -> None:
    layout = layout_graph(FAN_OUT, 80)
    assert layout.mode == ACROSS
    assert "".join(layout.background).count("▶") == 8
    source = layout.box("cam")
    targets = [layout.box(f"out{i}") for i in range(8)]
    assert source is not None and all(targets)
    assert min(t.content_y for t in targets) < source.content_y < max(t.content_y for t in targets)  # type: ignore[union-attr]


def test_a_fan_in_merges_into_a_single_arrow() -> None:
    layout = layout_graph(FAN_IN, 80)
    assert "".join(layout.background).count("▶") == 1


def test_a_loop_through_a_delay_node_runs_under_the_graph_back_into_its_target() -> None:
    layout = layout_graph(PIPELINE, 80)
    assert layout.mode == ACROSS
    bottom = max(b.y + b.height for b in layout.boxes)
    assert layout.height > bottom
    assert "╰" in layout.background[-1] and "╯" in layout.background[-1]
    assert connected(layout, "hold", "detect")
    hold, detect = layout.box("hold"), layout.box("detect")
    assert hold is not None and detect is not None
    assert hold.x > detect.x


def test_a_cycle_without_a_delay_node_is_still_drawn() -> None:
    graph = topology([("a", "transform"), ("b", "transform")], [("a", "b"), ("b", "a")])
    layout = layout_graph(graph, 80)
    assert connected(layout, "a", "b") and connected(layout, "b", "a")


def test_layers_turn_top_down_when_they_do_not_fit_across() -> None:
    layout = layout_graph(PIPELINE, 40)
    assert layout.mode == DOWN
    ys = {b.node_id: b.y for b in layout.boxes}
    assert ys["cam"] < ys["resize"] < ys["detect"] < ys["policy"] < ys["http"]


def test_narrow_terminals_get_a_text_list_of_nodes_and_chains() -> None:
    layout = layout_graph(PIPELINE, 22)
    assert layout.mode == LIST
    text = [line.rstrip() for line in layout.background]
    assert text[:2] == ["cam", "resize"]
    assert "cam → resize → detect" in text
    assert "policy → hold → detect" in text
    for box in layout.boxes:
        assert box.content_width >= 10


def test_a_fifty_node_graph_is_drawn_as_a_graph_when_there_is_room() -> None:
    layout = layout_graph(big_graph(), 200)
    assert layout.mode in (ACROSS, DOWN)


def test_long_ids_are_cut_with_an_ellipsis() -> None:
    graph = topology([("a_very_long_node_identifier_indeed", "source")], [])
    layout = layout_graph(graph, 24)
    assert layout.background[0] == "┌ a_very_long_node_id… ┐"


def test_the_same_graph_always_comes_out_the_same() -> None:
    for width in WIDTHS:
        assert layout_graph(big_graph(), width) == layout_graph(big_graph(), width)
    code = (
        "from tests.tui.test_graph_layout import big_graph, PIPELINE;"
        "from schnitzel_tui.graph_layout import layout_graph;"
        "print(layout_graph(big_graph(), 200).background, layout_graph(PIPELINE, 80))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_node_at_finds_the_box_under_a_cell() -> None:
    layout = layout_graph(PIPELINE, 80)
    box = layout.box("detect")
    assert box is not None
    assert layout.node_at(box.x, box.y) == "detect"
    assert layout.node_at(box.x + box.width - 1, box.y + box.height - 1) == "detect"
    assert layout.node_at(box.x - 1, box.y) is None


def test_an_empty_graph_says_so() -> None:
    layout = layout_graph(topology([], []), 80)
    assert layout.boxes == ()
    assert layout.background[0].startswith("(no nodes)")


def node_view(node_id: str, **report: object) -> NodeView:
    return NodeView.from_report(node_id, node_report(kind="transform", **report))


def test_box_content_fills_its_width_with_mark_rate_and_fill() -> None:
    view = node_view(
        "n", rate_in_per_s=1234.0, queue_depth=37, queue_capacity=100, health="degraded"
    )
    for width in range(1, 40):
        assert len(box_content(view, width)) == width
    assert box_content(view, 20) == "▲ 1.2k/s ██▋     37%"
    assert box_content(view, 11) == "▲ 1.2k  37%"
    source = NodeView.from_report("s", node_report(kind="source", rate_out_per_s=12.0))
    assert box_content(source, 12) == "● 12/s      "
    assert box_content(node_view("p", paused=True), 8).startswith("‖")
    assert box_content(None, 6) == "· —   "
