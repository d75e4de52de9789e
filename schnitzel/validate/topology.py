"""Graph algorithms the validator needs: reachability and cycles. Iterative, no recursion."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["find_cycle", "reachable_from", "strongly_connected_components"]

Adjacency = Mapping[str, Iterable[str]]


def reachable_from(starts: Iterable[str], successors: Adjacency) -> set[str]:
    """Every node reachable from `starts`, the starts included."""
    seen = set(starts)
    stack = list(seen)
    while stack:
        for nxt in successors.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def strongly_connected_components(nodes: Iterable[str], successors: Adjacency) -> list[list[str]]:
    """Tarjan's algorithm, iteratively (a 10,000-node chain must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, list(successors.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, list(successors.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


def find_cycle(component: Iterable[str], successors: Adjacency) -> list[str]:
    """One cycle inside a strongly connected component, as `[a, b, c, a]`."""
    members = set(component)
    start = min(members)
    parent: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:  # BFS for the shortest way back to `start`
        following: list[str] = []
        for node in frontier:
            for nxt in sorted(successors.get(node, ())):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if nxt in members and nxt not in seen:
                    seen.add(nxt)
                    parent[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start, start]
