"""Where the graph view draws each node and each edge, on a character grid.

Pure logic, no Textual: `layout_graph` turns a `Topology` into a `GraphLayout`, a frozen value
holding the static background (box borders, node ids, edges) and where each node's box is, so
a widget draws the background once and repaints only the boxes whose figures changed.

The layout is a small layered (Sugiyama) drawing:

1. loops: edges out of a delay node that close a cycle are set aside and routed around the
   drawing (in a graph the validator would refuse, a depth-first search in file order breaks
   any cycle left);
2. layers: a node sits one layer after its furthest predecessor; an edge that spans several
   layers gets a bend point in each layer it passes;
3. order: barycenter sweeps order each layer to reduce crossings;
4. place: each layer is packed as close as it can to the median of its neighbours (isotonic
   regression), so chains come out straight and fan-outs centred on their source;
5. route: between two layers each source gets one track (its fan-out tree, merging into a
   shared target); tracks are ordered to avoid crossings and share a column when their spans
   do not touch.

Layers run left to right when that fits the width, top to bottom when it does not, and the
graph is listed as text (a line per node, then `a → b → c` chains) when even that does not fit.
"""

from __future__ import annotations

import heapq
import itertools
import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from schnitzel_tui.formatting import bar, format_rate
from schnitzel_tui.model import NodeView, Topology
from schnitzel_tui.theme import HEALTH_MARK, PAUSED_MARK

__all__ = ["ACROSS", "DOWN", "LIST", "GraphLayout", "NodeBox", "box_content", "layout_graph"]

ACROSS, DOWN, LIST = "across", "down", "list"
"""Layout modes: layers as columns, layers as rows, or a plain text list."""

MIN_BOX = 12
"""Narrowest box: an 8-character id and a rate still read."""
MAX_BOX = 28
"""Widest box: room for a long id and a fill bar; more only spreads the figures apart."""
_MAX_STRETCH = 4
"""Spare width given to each gap between layers, so arrows grow a little on wide screens."""

# Directions of a line leaving a cell, along the layers (main) or across them (cross).
_MP, _MM, _CP, _CM = 1, 2, 4, 8
_DIRS = (_MP, _MM, _CP, _CM)
# Directions on screen, and what the main/cross directions are when layers run across or down.
_R, _L, _D, _U = 1, 2, 4, 8
_SCREEN = {True: (_R, _L, _D, _U), False: (_D, _U, _R, _L)}
_LINE = {
    _R: "─", _L: "─", _R | _L: "─", _U: "│", _D: "│", _U | _D: "│",
    _D | _R: "╭", _D | _L: "╮", _U | _R: "╰", _U | _L: "╯",
    _U | _D | _R: "├", _U | _D | _L: "┤", _L | _R | _D: "┬", _L | _R | _U: "┴",
    _U | _D | _L | _R: "┼",
}  # fmt: skip
_LIST_FIGURES = 12
"""Cells the figures of a node need in the text list: `● 1.2k/s 37%`."""
_CROSSING = "┼"
"""Two edges crossing without joining."""


@dataclass(frozen=True, slots=True)
class NodeBox:
    """Where one node is drawn: its box, and the content cells its figures go in."""

    node_id: str
    x: int
    y: int
    width: int
    height: int
    content_x: int
    content_y: int
    content_width: int

    def contains(self, x: int, y: int) -> bool:
        """True when the cell (x, y) is inside the box."""
        return self.x <= x < self.x + self.width and self.y <= y < self.y + self.height


@dataclass(frozen=True, slots=True)
class GraphLayout:
    """A laid-out graph: the static background and where each node's box is."""

    width: int
    height: int
    mode: str
    """ACROSS, DOWN or LIST."""
    background: tuple[str, ...]
    """`height` lines of exactly `width` cells: borders, ids and edges; box contents blank."""
    boxes: tuple[NodeBox, ...]
    """One per node, in graph-file order."""

    def box(self, node_id: str) -> NodeBox | None:
        """The box of this node, or None."""
        return next((b for b in self.boxes if b.node_id == node_id), None)

    def node_at(self, x: int, y: int) -> str | None:
        """The id of the node whose box covers the cell (x, y), or None."""
        return next((b.node_id for b in self.boxes if b.contains(x, y)), None)


def layout_graph(topology: Topology, width: int, height: int | None = None) -> GraphLayout:
    """Lay `topology` out in at most `width` columns.

    Layers run left to right when they fit; otherwise top to bottom (also chosen when only it
    fits `height`); otherwise the graph is listed as text. Same input, same output.
    """
    width = max(width, 1)
    graph = _Graph.build(topology)
    if not graph.ids:
        return _text_layout(("(no nodes)",), (), width)
    across = _across(graph, width, pitch=2) or _across(graph, width, pitch=1)
    if across and (height is None or across.height <= height):
        return across
    down = _down(graph, width)
    if across and (down is None or height is None or down.height > height):
        return across
    return down or _list_layout(topology, graph, width)


def box_content(view: NodeView | None, width: int) -> str:
    """A box's content line, exactly `width` cells: mark, rate, inbox fill bar and percent.

    The mark (health, or paused) is the first cell. Sources have no inbox, so no fill; when
    the width is short the bar goes first, then the `/s` of the rate.
    """
    if width <= 0:
        return ""
    if view is None:
        return _fit("· —", width)
    mark = PAUSED_MARK if view.paused else HEALTH_MARK.get(view.health, "?")
    rate = format_rate(view.rate)
    if not view.capacity:
        return _fit(f"{mark} {rate}", width)
    pct = f"{min(round(view.fill * 100), 999)}%"
    head = f"{mark} {rate}"
    room = width - len(head) - len(pct) - 2
    if room >= 3:
        return f"{head} {bar(view.fill, room)} {pct}"
    for text in (head, f"{mark} {rate.removesuffix('/s')}"):
        if len(text) + 1 + len(pct) <= width:
            return text + pct.rjust(width - len(text))
    return _fit(head, width)


def _fit(text: str, width: int) -> str:
    """`text` padded or cut (with …) to exactly `width` cells."""
    if len(text) <= width:
        return text.ljust(width)
    return text[: width - 1] + "…" if width > 1 else text[:width]


# --- graph structure --------------------------------------------------------------------------


@dataclass(slots=True)
class _Slot:
    """A place in a layer: a node, or a bend point of an edge spanning several layers."""

    node: str | None
    layer: int
    preds: list[int] = field(default_factory=list)
    succs: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Graph:
    """The layered graph: slots by layer, in crossing-reduced order, and the loop edges."""

    ids: list[str]
    slots: list[_Slot]
    layers: list[list[int]]
    back: list[tuple[str, str]]
    exits: set[str]
    """Nodes with an edge out (their box border shows where it leaves)."""

    @classmethod
    def build(cls, topology: Topology) -> _Graph:
        ids = list(dict.fromkeys(n.id for n in topology.nodes))
        kinds = {n.id: n.kind for n in topology.nodes}
        known = set(ids)
        edges = list(
            dict.fromkeys(
                (e.source, e.target)
                for e in topology.edges
                if e.source in known and e.target in known
            )
        )
        back = _back_edges(ids, kinds, edges)
        layer = _layers(ids, [e for e in edges if e not in back])
        # A loop edge that ends up pointing forward closes no cycle in the layered drawing.
        back = {(s, t) for s, t in back if layer[t] <= layer[s]}
        slots = [_Slot(node_id, layer[node_id]) for node_id in ids]
        index = {node_id: i for i, node_id in enumerate(ids)}
        for s, t in edges:
            if (s, t) in back:
                continue
            prev = index[s]
            for bend_layer in range(layer[s] + 1, layer[t]):
                slots.append(_Slot(None, bend_layer))
                _link(slots, prev, len(slots) - 1)
                prev = len(slots) - 1
            _link(slots, prev, index[t])
        layers: list[list[int]] = [[] for _ in range(max(layer.values(), default=0) + 1)]
        for i, slot in enumerate(slots):
            layers[slot.layer].append(i)
        return cls(
            ids,
            slots,
            _order(layers, slots),
            [e for e in edges if e in back],
            {s for s, _ in edges},
        )


def _link(slots: list[_Slot], a: int, b: int) -> None:
    slots[a].succs.append(b)
    slots[b].preds.append(a)


def _back_edges(
    ids: list[str], kinds: dict[str, str], edges: list[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Edges that close a cycle: out of a delay node first, then any a DFS finds."""
    back: set[tuple[str, str]] = set()
    succs: dict[str, list[str]] = {i: [] for i in ids}
    for s, t in edges:
        succs[s].append(t)

    def reaches(a: str, b: str) -> bool:
        seen, todo = {a}, [a]
        while todo:
            n = todo.pop()
            if n == b:
                return True
            for m in succs[n]:
                if (n, m) not in back and m not in seen:
                    seen.add(m)
                    todo.append(m)
        return False

    for s, t in edges:
        if kinds.get(s) == "delay" and reaches(t, s):
            back.add((s, t))
    state: dict[str, int] = {}  # 1: on the DFS stack, 2: done
    for root in ids:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(succs[root]))]
        while stack:
            node, it = stack[-1]
            nxt = next((m for m in it if (node, m) not in back), None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succs[nxt])))
    return back


def _layers(ids: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest path from the sources, over an acyclic edge list."""
    rank = {n: i for i, n in enumerate(ids)}
    preds: dict[str, list[str]] = {n: [] for n in ids}
    succs: dict[str, list[str]] = {n: [] for n in ids}
    for s, t in edges:
        preds[t].append(s)
        succs[s].append(t)
    waiting = {n: len(preds[n]) for n in ids}
    ready = [(rank[n], n) for n in ids if not waiting[n]]
    heapq.heapify(ready)
    layer: dict[str, int] = {}
    while ready:
        _, n = heapq.heappop(ready)
        layer[n] = max((layer[p] + 1 for p in preds[n]), default=0)
        for m in succs[n]:
            waiting[m] -= 1
            if not waiting[m]:
                heapq.heappush(ready, (rank[m], m))
    return layer


def _order(layers: list[list[int]], slots: list[_Slot], sweeps: int = 4) -> list[list[int]]:
    """Reorder each layer by the barycenter of its neighbours; keep the fewest crossings."""
    layers = [list(layer) for layer in layers]
    best, best_crossings = [list(x) for x in layers], _crossings(layers, slots)
    for _ in range(sweeps):
        for i in range(1, len(layers)):
            _sort_by_barycenter(layers[i], layers[i - 1], lambda s: slots[s].preds)
        for i in range(len(layers) - 2, -1, -1):
            _sort_by_barycenter(layers[i], layers[i + 1], lambda s: slots[s].succs)
        crossings = _crossings(layers, slots)
        if crossings < best_crossings:
            best, best_crossings = [list(x) for x in layers], crossings
    return best


def _sort_by_barycenter(
    layer: list[int], ref: list[int], neighbours: Callable[[int], list[int]]
) -> None:
    pos = {s: i for i, s in enumerate(ref)}
    here = {s: i for i, s in enumerate(layer)}

    def key(s: int) -> tuple[float, int]:
        ns = [pos[n] for n in neighbours(s) if n in pos]
        return (sum(ns) / len(ns) if ns else float(here[s]), here[s])

    layer.sort(key=key)


def _crossings(layers: list[list[int]], slots: list[_Slot]) -> int:
    total = 0
    for upper, lower in itertools.pairwise(layers):
        pos = {s: i for i, s in enumerate(lower)}
        ends = [(i, pos[t]) for i, s in enumerate(upper) for t in slots[s].succs]
        total += sum(
            1 for k, (a, b) in enumerate(ends) for c, d in ends[k + 1 :] if (a - c) * (b - d) < 0
        )
    return total


# --- placement and routing --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Axis:
    """How the abstract drawing maps to the screen, and its spacing."""

    across: bool
    """Layers are columns (main axis = x) rather than rows (main axis = y)."""
    pitch: int
    """Main-axis distance between two tracks."""
    lane_pitch: int
    """Cross-axis distance between two loop lanes."""
    gap: int
    """Cross-axis blank cells between two slots of a layer."""
    tail: int
    """Main-axis cells from the last track to the target (the arrow included)."""
    straight: int
    """Main-axis length of a gap between layers that needs no track."""


@dataclass(slots=True)
class _Net:
    """What one source sends through a gap between layers, drawn around one track."""

    starts: list[int]
    """Cross positions entering from the near side (the source)."""
    ends: list[tuple[int, bool]]
    """Cross positions leaving to the far side; True when that end is an arrow into a box."""
    lanes_out: list[int] = field(default_factory=list)
    """Loop lanes leaving the track back toward the near side."""
    lanes_in: list[int] = field(default_factory=list)
    """Loop lanes arriving at the track from the far side."""
    track: int = -1

    @property
    def left(self) -> list[int]:
        return self.starts + self.lanes_out

    @property
    def right(self) -> list[int]:
        return [c for c, _ in self.ends] + self.lanes_in

    @property
    def span(self) -> tuple[int, int]:
        rows = self.left + self.right
        return min(rows), max(rows)

    @property
    def straight(self) -> bool:
        return not self.lanes_out and not self.lanes_in and len(set(self.left + self.right)) == 1


@dataclass(slots=True)
class _Plan:
    """Cross positions of the slots and the routed gaps, before main positions are fixed."""

    top: list[int]
    channels: list[list[_Net]]
    widths: list[int]
    lanes: list[tuple[int, int, _Net, int, _Net]]
    """Per loop edge: its lane's cross position, and the gap and net it leaves and arrives by."""
    cross_size: int


def _across(graph: _Graph, width: int, pitch: int) -> GraphLayout | None:
    axis = _Axis(across=True, pitch=pitch, lane_pitch=1, gap=1, tail=2, straight=3)
    plan = _plan(graph, axis, box_cross=(3, 1))
    box = min(MAX_BOX, (width - sum(plan.widths)) // len(graph.layers))
    if box < MIN_BOX:
        return None
    spare = width - sum(plan.widths) - box * len(graph.layers)
    inner = range(1, len(graph.layers))
    for c in inner:
        plan.widths[c] += min(_MAX_STRETCH, spare // max(len(inner), 1))
    return _draw(graph, axis, plan, box)


def _down(graph: _Graph, width: int) -> GraphLayout | None:
    axis = _Axis(across=False, pitch=1, lane_pitch=2, gap=2, tail=1, straight=2)
    widest = max(sum(1 for s in layer if graph.slots[s].node) for layer in graph.layers)
    for box in range(min(MAX_BOX, width // widest), MIN_BOX - 1, -1):
        plan = _plan(graph, axis, box_cross=(box, box // 2))
        if plan.cross_size <= width:
            return _draw(graph, axis, plan, box)
    return None


def _plan(graph: _Graph, axis: _Axis, box_cross: tuple[int, int]) -> _Plan:
    slots = graph.slots

    def extent(s: int) -> tuple[int, int]:
        return box_cross if slots[s].node is not None else (1, 0)

    top = _place(graph, extent, axis.gap)
    anchor = [top[s] + extent(s)[1] for s in range(len(slots))]
    channels: list[list[_Net]] = [[] for _ in range(len(graph.layers) + 1)]
    out_net: dict[int, _Net] = {}
    for layer in graph.layers:
        for s in layer:
            if slots[s].succs:
                ends = [(anchor[t], slots[t].node is not None) for t in slots[s].succs]
                out_net[s] = _Net([anchor[s]], sorted(ends))
                channels[slots[s].layer + 1].append(out_net[s])
    bottom = max(top[s] + extent(s)[0] for s in range(len(slots)))
    index = {slot.node: i for i, slot in enumerate(slots) if slot.node is not None}
    lanes: list[tuple[int, int, _Net, int, _Net]] = []
    for (src, dst), lane in zip(graph.back, _lanes(graph, index), strict=True):
        s, t = index[src], index[dst]
        cross = bottom + axis.lane_pitch * (lane + 1)
        leaving = out_net.get(s)
        if leaving is None:
            leaving = out_net[s] = _Net([anchor[s]], [])
            channels[slots[s].layer + 1].append(leaving)
        leaving.lanes_out.append(cross)
        arriving = _Net([], [(anchor[t], True)], lanes_in=[cross])
        channels[slots[t].layer].append(arriving)
        lanes.append((cross, slots[s].layer + 1, leaving, slots[t].layer, arriving))
    merged: dict[int, _Net] = {}
    for nets in channels:
        merged.update(_merge_fan_in(nets))
    lanes = [(cross, c, out, d, merged.get(id(into), into)) for cross, c, out, d, into in lanes]
    widths = [_route(nets, axis) for nets in channels]
    cross_size = max([bottom] + [lane[0] + 1 for lane in lanes])
    return _Plan(top, channels, widths, lanes, cross_size)


def _merge_fan_in(nets: list[_Net]) -> dict[int, _Net]:
    """Let the nets that only feed one target share one track into it, so a merge is one trunk.

    Returns the net each merged net became, by `id`.
    """
    groups: dict[tuple[int, bool], _Net] = {}
    merged: dict[int, _Net] = {}
    kept: list[_Net] = []
    for net in nets:
        if len(net.ends) != 1 or net.lanes_out:
            kept.append(net)
            continue
        group = groups.setdefault(net.ends[0], net)
        if group is net:
            kept.append(net)
        else:
            group.starts = sorted(group.starts + net.starts)
            group.lanes_in += net.lanes_in
        merged[id(net)] = group
    nets[:] = kept
    return merged


def _place(graph: _Graph, extent: Callable[[int], tuple[int, int]], gap: int) -> list[int]:
    """Cross position of each slot: packed, ordered, near the median of its neighbours."""
    slots = graph.slots
    top = [0] * len(slots)
    for layer in graph.layers:
        c = 0
        for s in layer:
            top[s] = c
            c += extent(s)[0] + gap

    def fit(layer: list[int], neighbours: Callable[[int], list[int]]) -> None:
        offsets, wanted, c = [], [], 0
        for s in layer:
            size, at = extent(s)
            ns = [top[n] + extent(n)[1] for n in neighbours(s)]
            ideal = statistics.median(ns) if ns else top[s] + at
            offsets.append(c)
            wanted.append(ideal - at - c)
            c += size + gap
        for s, z, c in zip(layer, _isotonic(wanted), offsets, strict=True):
            top[s] = math.floor(z + 0.5) + c

    for _ in range(4):
        for layer in graph.layers[1:]:
            fit(layer, lambda s: slots[s].preds)
        for layer in reversed(graph.layers[:-1]):
            fit(layer, lambda s: slots[s].succs)
    for layer in graph.layers[1:]:
        fit(layer, lambda s: slots[s].preds)
    low = min(top)
    return [t - low for t in top]


def _isotonic(values: list[float]) -> list[float]:
    """The non-decreasing sequence closest (least squares) to `values`: pool adjacent blocks."""
    blocks: list[list[float]] = []
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] * blocks[-1][1] > blocks[-1][0] * blocks[-2][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    return [total / count for total, count in blocks for _ in range(int(count))]


def _lanes(graph: _Graph, index: dict[str, int]) -> list[int]:
    """A lane per loop edge; loops whose gaps overlap get different lanes, shortest inside."""
    spans = [(graph.slots[index[t]].layer, graph.slots[index[s]].layer + 1) for s, t in graph.back]
    lane = [0] * len(spans)
    taken: list[list[tuple[int, int]]] = []
    for i in sorted(range(len(spans)), key=lambda i: (spans[i][1] - spans[i][0], i)):
        a, b = spans[i]
        k = next(
            (k for k, used in enumerate(taken) if all(b < c or d < a for c, d in used)),
            len(taken),
        )
        if k == len(taken):
            taken.append([])
        taken[k].append(spans[i])
        lane[i] = k
    return lane


def _route(nets: list[_Net], axis: _Axis) -> int:
    """Give each net in a gap its track; return the gap's main-axis length."""
    bent = [n for n in nets if not n.straight]
    order: list[_Net] = []
    for net in sorted(bent, key=lambda n: (n.span, n.left)):
        costs = [
            sum(_cost(o, net) for o in order[:p]) + sum(_cost(net, o) for o in order[p:])
            for p in range(len(order) + 1)
        ]
        order.insert(costs.index(min(costs)), net)
    for k, net in enumerate(order):
        lo, hi = net.span
        net.track = 1 + max(
            (o.track for o in order[:k] if o.span[0] <= hi + 1 and lo <= o.span[1] + 1),
            default=-1,
        )
    if not nets:
        return 0
    if not order:
        return axis.straight
    tracks = max(n.track for n in order) + 1
    tail = axis.tail if any(n.ends for n in nets) else 0
    return 1 + (tracks - 1) * axis.pitch + 1 + tail


def _cost(a: _Net, b: _Net) -> int:
    """Crossings (and, weighted, overlapping lines) when `a`'s track is before `b`'s."""
    cost = 0
    a_lo, a_hi = a.span
    b_lo, b_hi = b.span
    b_left, b_right = set(b.left), set(b.right)
    a_right = set(a.right)
    for c in a_right - b_right:
        if c in b_left:
            cost += 100
        elif b_lo < c < b_hi:
            cost += 1
    cost += sum(1 for c in b_left - a_right if a_lo < c < a_hi)
    return cost


# --- drawing ----------------------------------------------------------------------------------


class _Lines:
    """Line cells in main/cross coordinates: which directions each edge leaves a cell in."""

    def __init__(self) -> None:
        self.cells: dict[tuple[int, int], dict[int, int]] = {}
        self.arrows: set[tuple[int, int]] = set()

    def segment(self, net: int, a: tuple[int, int], b: tuple[int, int]) -> None:
        """Draw a straight line of `net` from cell `a` to cell `b` (same main or cross)."""
        if a == b:
            return
        (m0, c0), (m1, c1) = a, b
        if c0 == c1:
            step, fwd, bwd = (1 if m1 > m0 else -1), _MP, _MM
            cells = [(m, c0) for m in range(m0, m1 + step, step)]
        else:
            step, fwd, bwd = (1 if c1 > c0 else -1), _CP, _CM
            cells = [(m0, c) for c in range(c0, c1 + step, step)]
        if step < 0:
            fwd, bwd = bwd, fwd
        for i, cell in enumerate(cells):
            bits = (fwd if i < len(cells) - 1 else 0) | (bwd if i else 0)
            nets = self.cells.setdefault(cell, {})
            nets[net] = nets.get(net, 0) | bits

    def char(self, cell: tuple[int, int], across: bool) -> str:
        """The box-drawing character of a cell; two edges passing straight through cross."""
        nets = self.cells[cell]
        bits = 0
        for mask in nets.values():
            bits |= mask
        turns = any(m & (_MP | _MM) and m & (_CP | _CM) for m in nets.values())
        if bits == _MP | _MM | _CP | _CM and not turns:
            return _CROSSING
        screen = 0
        for bit, mapped in zip(_DIRS, _SCREEN[across], strict=True):
            if bits & bit:
                screen |= mapped
        return _LINE[screen]


def _draw(graph: _Graph, axis: _Axis, plan: _Plan, box: int) -> GraphLayout:
    """Fix main positions (gap, layer, gap, ...), then draw the lines and the boxes."""
    box_main = box if axis.across else 3
    gaps, layers, m = [], [], 0
    for c, w in enumerate(plan.widths):
        gaps.append(m)
        m += w
        if c < len(graph.layers):
            layers.append(m)
            m += box_main
    lines = _trace(graph, axis, plan, gaps, layers, box_main)

    def to_screen(m: int, c: int) -> tuple[int, int]:
        return (m, c) if axis.across else (c, m)

    width, height = to_screen(m, plan.cross_size)
    grid = [[" "] * width for _ in range(height)]
    for m, c in lines.cells:
        x, y = to_screen(m, c)
        if 0 <= x < width and 0 <= y < height:
            grid[y][x] = lines.char((m, c), axis.across)
    for m, c in lines.arrows:
        x, y = to_screen(m, c)
        grid[y][x] = "▶" if axis.across else "▼"
    boxes = {}
    for s, slot in enumerate(graph.slots):
        if slot.node is not None:
            x, y = to_screen(layers[slot.layer], plan.top[s])
            exit_ = slot.node in graph.exits
            boxes[slot.node] = _draw_box(grid, slot.node, x, y, box, exit_, axis.across)
    return GraphLayout(
        width,
        height,
        ACROSS if axis.across else DOWN,
        tuple("".join(row) for row in grid),
        tuple(boxes[i] for i in graph.ids),
    )


def _trace(
    graph: _Graph, axis: _Axis, plan: _Plan, gaps: list[int], layers: list[int], box_main: int
) -> _Lines:
    """The edges' lines: each gap's nets, the loops' lanes, and long edges through layers."""
    lines, net_id = _Lines(), 0
    for c, nets in enumerate(plan.channels):
        m0, w = gaps[c], plan.widths[c]
        for net in nets:
            net_id += 1
            x = m0 - 1 if net.straight else m0 + 1 + net.track * axis.pitch
            for c0 in net.starts:
                lines.segment(net_id, (m0 - 1, c0), (x, c0))
            lines.segment(net_id, (x, net.span[0]), (x, net.span[1]))
            for c1, arrow in net.ends:
                lines.segment(net_id, (x, c1), (m0 + w, c1))
                if arrow:
                    lines.arrows.add((m0 + w - 1, c1))
    for cross, out_gap, leaving, in_gap, arriving in plan.lanes:
        net_id += 1
        x_out = gaps[out_gap] + 1 + leaving.track * axis.pitch
        x_in = gaps[in_gap] + 1 + arriving.track * axis.pitch
        lines.segment(net_id, (x_out, cross), (x_in, cross))
    for s, slot in enumerate(graph.slots):
        if slot.node is None:
            net_id += 1
            m0, c = layers[slot.layer], plan.top[s]
            lines.segment(net_id, (m0 - 1, c), (m0 + box_main, c))
    return lines


def _draw_box(
    grid: list[list[str]], node_id: str, x: int, y: int, width: int, exit_: bool, across: bool
) -> NodeBox:
    """Draw a 3-row box with the id in its top border; return where it is."""
    title = node_id if len(node_id) <= width - 4 else node_id[: width - 5] + "…"
    rows = (
        "┌ " + title + " " + "─" * (width - 4 - len(title)) + "┐",
        "│" + " " * (width - 2) + ("├" if exit_ and across else "│"),
        "└" + "─" * (width - 2) + "┘",
    )
    for dy, row in enumerate(rows):
        grid[y + dy][x : x + width] = list(row)
    if exit_ and not across:
        grid[y + 2][x + width // 2] = "┬"
    pad = 1 if width >= 16 else 0
    return NodeBox(node_id, x, y, width, 3, x + 1 + pad, y + 1, width - 2 - 2 * pad)


# --- text fallbacks ---------------------------------------------------------------------------


def _list_layout(topology: Topology, graph: _Graph, width: int) -> GraphLayout:
    """A line per node (id, then its figures), a blank line, then the edges as chains.

    When the width leaves the figures too little room beside the id, they go on the next line.
    """
    id_width = max(len(i) for i in graph.ids)
    beside = width - id_width - 1 >= _LIST_FIGURES
    lines: list[str] = []
    boxes: list[NodeBox] = []
    for node_id in graph.ids:
        if beside:
            x, y = id_width + 1, len(lines)
            lines.append(node_id)
        else:
            x, y = min(2, width // 4), len(lines) + 1
            lines += [node_id, ""]
        content = min(width - x, _LIST_FIGURES + 8)
        boxes.append(NodeBox(node_id, x, y, content, 1, x, y, content))
    chains = list(_chains(graph.ids, [(e.source, e.target) for e in topology.edges]))
    if chains:
        lines.append("")
    for chain in chains:
        lines.extend(_wrap(chain, width))
    return _text_layout(tuple(lines), tuple(boxes), width)


def _chains(ids: list[str], edges: Iterable[tuple[str, str]]) -> Iterable[list[str]]:
    """Edges as `a → b → c` chains: a chain runs on through nodes with one edge in and out."""
    edges = list(dict.fromkeys((s, t) for s, t in edges if s in ids and t in ids))
    outs: dict[str, list[tuple[str, str]]] = {}
    ins: dict[str, list[tuple[str, str]]] = {}
    for e in edges:
        outs.setdefault(e[0], []).append(e)
        ins.setdefault(e[1], []).append(e)

    def through(n: str) -> bool:
        return len(outs.get(n, ())) == 1 and len(ins.get(n, ())) == 1

    used: set[tuple[str, str]] = set()
    for e in edges:
        if e in used:
            continue
        first = e
        while through(first[0]) and ins[first[0]][0] not in used and ins[first[0]][0] != e:
            first = ins[first[0]][0]
        chain, cur = [first[0]], first
        while cur not in used:
            used.add(cur)
            chain.append(cur[1])
            if not through(cur[1]):
                break
            cur = outs[cur[1]][0]
        yield chain


def _wrap(chain: list[str], width: int) -> list[str]:
    """`a → b → c`, wrapped to `width` with `  → d` continuation lines."""
    lines = [_fit(chain[0], width).rstrip()]
    for node_id in chain[1:]:
        piece = f" → {node_id}"
        if len(lines[-1]) + len(piece) <= width:
            lines[-1] += piece
        else:
            lines.append(_fit(f"  → {node_id}", width).rstrip())
    return lines


def _text_layout(lines: tuple[str, ...], boxes: tuple[NodeBox, ...], width: int) -> GraphLayout:
    return GraphLayout(width, len(lines), LIST, tuple(_fit(line, width) for line in lines), boxes)
