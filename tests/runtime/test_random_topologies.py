"""Property: on any layered graph of sources, transforms and sinks, with any inbox sizes and
overflow policies, the run ends by itself and every packet is accounted for."""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.runtime.harness import assert_counts_add_up, assert_one_to_one, graph_from, run

TRANSFORMS = [
    "{plugin: passthrough}",
    "{plugin: sample, config: {every: 3}}",
    "{plugin: dedup, kind: policy}",
    '{plugin: "tests.runtime.plugins:Flaky", config: {every: 5}}',
]


@st.composite
def layered_graphs(draw: st.DrawFn) -> str:
    layers = [draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    names = [[f"l{depth}n{i}" for i in range(width)] for depth, width in enumerate(layers)]
    lines = ["nodes:"]
    for name in names[0]:
        count = draw(st.integers(0, 400))
        lines.append(
            f"  - {{id: {name}, kind: source, plugin: synthetic, config: {{count: {count}}}}}"
        )
    for name in names[1]:
        spec = draw(st.sampled_from(TRANSFORMS))
        kind = "policy" if "kind: policy" in spec else "transform"
        spec = spec.replace(", kind: policy", "")
        lines.append(f"  - {{id: {name}, kind: {kind}, {spec[1:-1]}, inbox: {draw(inboxes)}}}")
    for name in names[2]:
        lines.append(f'  - {{id: {name}, kind: sink, plugin: "null", inbox: {draw(inboxes)}}}')
    lines.append("edges:")
    for upper, lower in ((names[0], names[1]), (names[1], names[2])):
        for target in lower:  # every node is fed ...
            lines.append(f"  - {{from: {draw(st.sampled_from(upper))}, to: {target}}}")
        for source in upper:  # ... and feeds something
            lines.append(f"  - {{from: {source}, to: {draw(st.sampled_from(lower))}}}")
    return "\n".join(dict.fromkeys(lines)) + "\n"  # the same edge drawn twice: keep one


inboxes = st.builds(
    lambda size, overflow: f"{{max: {size}, overflow: {overflow}}}",
    st.integers(1, 64),
    st.sampled_from(["block", "drop_new", "drop_oldest"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=layered_graphs())
def test_every_packet_is_accounted_for_on_random_graphs(body: str) -> None:
    with TemporaryDirectory() as tmp:
        graph = graph_from(Path(tmp), body)
        report = run(graph, Path(tmp))
    assert report["stop_reason"] == "sources_exhausted"
    assert report["totals"]["in_flight"] == 0
    assert_counts_add_up(report, graph)
    for node_id, node in report["nodes"].items():
        if node["kind"] in ("transform", "policy"):
            assert_one_to_one(report, node_id)
