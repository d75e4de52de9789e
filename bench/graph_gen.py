"""Generated graphs of any size for the benchmarks (valid, with fan-in, fan-out and configs)."""

from __future__ import annotations


def large_graph_yaml(nodes: int) -> str:
    """A valid graph of about `nodes` nodes: sources feeding chains that merge into sinks."""
    lines = ["version: 2", "nodes:"]
    edges: list[str] = []
    chains = max(1, nodes // 10)
    per_chain = max(1, round((nodes - 2) / chains) - 1)
    for c in range(chains):
        lines += [
            f"  - id: src{c}",
            "    kind: source",
            "    plugin: synthetic",
            f"    config: {{count: 1000, rate_hz: 50, kind: sensor, payload: {{chain: {c}}}}}",
        ]
        previous = f"src{c}"
        for i in range(per_chain):
            node = f"n{c}-{i}"
            if i % 3 == 0:
                lines += [
                    f"  - id: {node}",
                    "    kind: transform",
                    "    plugin: sample",
                    "    config: {every: 2}",
                    "    inbox: {max: 256, overflow: drop_oldest}",
                ]
            else:
                lines += [f"  - id: {node}", "    kind: transform", "    plugin: passthrough"]
            edges.append(f"  - {{from: {previous}, to: {node}}}")
            previous = node
        edges.append(f"  - {{from: {previous}, to: archive}}")
        edges.append(f"  - {{from: {previous}, to: count}}")
    lines += [
        "  - id: archive",
        "    kind: sink",
        "    plugin: jsonl",
        "    config: {path: out/bench.jsonl}",
        "  - id: count",
        "    kind: sink",
        "    plugin: 'null'",
        "edges:",
        *edges,
    ]
    return "\n".join(lines) + "\n"
