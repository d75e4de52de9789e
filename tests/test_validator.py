"""Validator rules that need plugins the built-in packs do not have: kinds, profiles, ports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from schnitzel import (
    Compute,
    PayloadProfile,
    PluginConfig,
    PluginPack,
    PluginRegistry,
    Sink,
    Source,
    StreamPacket,
    StreamShape,
    Transform,
)
from schnitzel.validate import validate_text
from schnitzel_plugins.core import PACK as CORE
from schnitzel_plugins.http import PACK as HTTP


class Emits(Source):
    """A source that could run (the validator refuses one without `packets()`)."""

    def packets(self) -> Iterator[StreamPacket]:
        return iter(())


class Passes(Transform):
    """A transform that could run (as the sink and compute below)."""

    def process(self, packet: StreamPacket) -> StreamPacket:
        return packet


class Computes(Compute):
    def process(self, packet: StreamPacket) -> StreamPacket:
        return packet


class Takes(Sink):
    def deliver(self, packet: StreamPacket) -> None:
        return None


class Camera(Emits):
    """Raw frames: numpy arrays that only live in this process."""

    name = "camera"
    emits = frozenset({"frame"})
    emits_profile = PayloadProfile.INPROC_ANY


class Detector(Computes):
    """Frames in, detections out (JSON)."""

    name = "detector"
    accepts = frozenset({"frame"})
    emits = frozenset({"detection"})
    emits_profile = PayloadProfile.JSON_PORTABLE
    outputs: ClassVar[tuple[str, ...]] = ("out", "crops")


class Router(Passes):
    """Two named inputs."""

    name = "router"
    inputs: ClassVar[tuple[str, ...]] = ("main", "side")


class Encoder(Passes):
    """Turns frames into JPEG payload refs."""

    name = "encoder"

    @classmethod
    def output_shape(cls, config: Any, incoming: StreamShape | None) -> StreamShape:
        return StreamShape(incoming.kinds if incoming else None, PayloadProfile.REF_PORTABLE)


class Screen(Takes):
    """Accepts frames only."""

    name = "screen"
    accepts = frozenset({"frame"})


class Ticks(Emits):
    """A third-party source that declares no payload profile (so `inproc_any`)."""

    name = "ticks"


class Handles(Passes):
    """Makes in-process objects of whatever it takes (declares `inproc_any` itself)."""

    name = "handles"
    emits_profile = PayloadProfile.INPROC_ANY


class Strict(PluginConfig):
    level: int


class Leveled(Passes):
    """Has a required option."""

    name = "leveled"
    Config = Strict


@pytest.fixture(scope="module")
def vision() -> PluginRegistry:
    pack = PluginPack(
        "vision", (Camera, Detector, Router, Encoder, Screen, Leveled, Ticks, Handles)
    )
    return PluginRegistry([CORE, HTTP, pack])


def codes(text: str, registry: PluginRegistry) -> list[str]:
    return sorted(p.code for p in validate_text(text, registry=registry).report.errors)


HEAD = "version: 2\nnodes:\n  - {id: cam, kind: source, plugin: camera}\n"


def test_frames_into_an_http_sink_are_refused_as_not_portable(vision: PluginRegistry) -> None:
    text = HEAD + (
        "  - {id: up, kind: sink, plugin: http, config: {url: 'http://127.0.0.1:9/x'}}\n"
        "edges: [{from: cam, to: up}]\n"
    )
    report = validate_text(text, registry=vision).report
    assert [p.code for p in report.errors] == ["not-portable"]
    assert "'cam'" in report.errors[0].message and "http sink" in report.errors[0].message
    assert report.errors[0].where.line == 4


def test_a_source_without_a_profile_is_told_to_declare_one(vision: PluginRegistry) -> None:
    # A plugin author's first source usually makes JSON but declares nothing: the hint must
    # point at the declaration, not at converting frames. Through a passthrough, too.
    text = (
        "version: 2\nnodes:\n  - {id: t, kind: source, plugin: ticks}\n"
        "  - {id: p, kind: transform, plugin: passthrough}\n"
        "  - {id: out, kind: sink, plugin: http, config: {url: 'http://127.0.0.1:9/x'}}\n"
        "edges: [{from: t, to: p}, {from: p, to: out}]\n"
    )
    [problem] = validate_text(text, registry=vision).report.errors
    assert problem.code == "not-portable"
    assert problem.hint == (
        "source 't' (plugin ticks) declares no payload profile, so its packets count as "
        "inproc_any: if its payloads are plain JSON, set `emits_profile = "
        "PayloadProfile.JSON_PORTABLE` (and `emits`) on the plugin class "
        "(docs/plugins.md#what-flows-on-an-edge)"
    )


def test_a_source_without_a_profile_is_not_blamed_for_a_transform_that_makes_inproc_packets(
    vision: PluginRegistry,
) -> None:
    # The undeclared source's packets are not what reaches the sink: the transform's own
    # inproc_any packets are, and declaring a profile on the source would change nothing.
    text = (
        "version: 2\nnodes:\n  - {id: t, kind: source, plugin: ticks}\n"
        "  - {id: h, kind: transform, plugin: handles}\n"
        "  - {id: out, kind: sink, plugin: http, config: {url: 'http://127.0.0.1:9/x'}}\n"
        "edges: [{from: t, to: h}, {from: h, to: out}]\n"
    )
    [problem] = validate_text(text, registry=vision).report.errors
    assert problem.code == "not-portable"
    assert "'h'" in problem.message
    assert "ticks" not in problem.hint and "convert them first" in problem.hint, problem.hint


def test_frames_into_a_durable_inbox_are_refused(vision: PluginRegistry) -> None:
    text = HEAD + (
        "  - {id: out, kind: sink, plugin: 'null', inbox: {durable: {path: q.db}}}\n"
        "edges: [{from: cam, to: out}]\n"
    )
    assert codes(text, vision) == ["not-portable"]


def test_encoded_frames_may_cross_a_durable_inbox(vision: PluginRegistry) -> None:
    text = HEAD + (
        "  - {id: enc, kind: transform, plugin: encoder}\n"
        "  - {id: out, kind: sink, plugin: 'null', inbox: {durable: {path: q.db}}}\n"
        "edges: [{from: cam, to: enc}, {from: enc, to: out}]\n"
    )
    result = validate_text(text, registry=vision)
    assert result.report.valid
    assert result.graph is not None
    assert result.graph.nodes["enc"].output == StreamShape(
        frozenset({"frame"}), PayloadProfile.REF_PORTABLE
    )


def test_a_kind_the_target_does_not_accept_is_refused(vision: PluginRegistry) -> None:
    text = (
        "version: 2\nnodes:\n  - {id: temp, kind: source, plugin: synthetic}\n"
        "  - {id: det, kind: compute, plugin: detector}\n"
        "  - {id: out, kind: sink, plugin: 'null'}\n"
        "edges: [{from: temp, to: det}, {from: det, to: out}]\n"
    )
    report = validate_text(text, registry=vision).report
    assert [p.code for p in report.errors] == ["kind-mismatch"]
    assert "'temp' emits sensor packets" in report.errors[0].message
    assert "accepts frame" in report.errors[0].message


def test_kinds_propagate_through_passthrough_nodes(vision: PluginRegistry) -> None:
    text = HEAD + (
        "  - {id: p, kind: transform, plugin: passthrough}\n"
        "  - {id: det, kind: compute, plugin: detector}\n"
        "  - {id: show, kind: sink, plugin: screen}\n"
        "edges: [{from: cam, to: p}, {from: p, to: det}, {from: det, to: show}]\n"
    )
    report = validate_text(text, registry=vision).report
    assert [p.code for p in report.errors] == ["kind-mismatch"]
    assert "'det' emits detection" in report.errors[0].message


def test_named_ports_are_checked_against_the_plugin(vision: PluginRegistry) -> None:
    text = HEAD + (
        "  - {id: det, kind: compute, plugin: detector}\n"
        "  - {id: r, kind: transform, plugin: router}\n"
        "  - {id: out, kind: sink, plugin: 'null'}\n"
        "edges:\n"
        "  - {from: cam, to: det}\n"
        "  - {from: det.crops, to: r.side}\n"
        "  - {from: det.masks, to: r.main}\n"
        "  - {from: r, to: out}\n"
    )
    report = validate_text(text, registry=vision).report
    assert [p.code for p in report.errors] == ["bad-port"]
    assert "no output port 'masks'" in report.errors[0].message
    assert "out, crops" in report.errors[0].hint
    assert report.errors[0].where.line == 10


def test_default_ports_are_the_first_declared(vision: PluginRegistry) -> None:
    text = HEAD + (
        "  - {id: r, kind: transform, plugin: router}\n"
        "  - {id: out, kind: sink, plugin: 'null'}\n"
        "edges: [{from: cam, to: r}, {from: r, to: out}]\n"
    )
    graph = validate_text(text, registry=vision).graph
    assert graph is not None
    assert graph.edges[0].target_port == "main" and graph.edges[0].source_port == "out"


def test_missing_required_option_names_the_key(vision: PluginRegistry) -> None:
    text = HEAD + (
        "  - {id: l, kind: transform, plugin: leveled}\n"
        "  - {id: out, kind: sink, plugin: 'null'}\n"
        "edges: [{from: cam, to: l}, {from: l, to: out}]\n"
    )
    report = validate_text(text, registry=vision).report
    assert [p.code for p in report.errors] == ["bad-config"]
    assert "missing required key 'level'" in report.errors[0].message


def test_validated_graph_carries_parsed_configs_and_shapes(registry: PluginRegistry) -> None:
    text = (
        "version: 2\nnodes:\n"
        "  - {id: s, kind: source, plugin: synthetic, config: {count: 5, kind: telemetry}}\n"
        "  - {id: o, kind: sink, plugin: 'null'}\nedges: [{from: s, to: o}]\n"
    )
    graph = validate_text(text, registry=registry).graph
    assert graph is not None
    source = graph.nodes["s"]
    assert source.config.count == 5  # type: ignore[attr-defined]
    assert source.output == StreamShape(frozenset({"telemetry"}), PayloadProfile.JSON_PORTABLE)
    assert graph.nodes["o"].spec.inbox.max == 1024
    assert graph.nodes["o"].spec.inbox.overflow == "block"


def test_cycle_through_a_delay_is_valid_and_kinds_close_the_loop(registry: PluginRegistry) -> None:
    text = (
        "version: 2\nnodes:\n"
        "  - {id: s, kind: source, plugin: synthetic, config: {kind: telemetry}}\n"
        "  - {id: c, kind: transform, plugin: passthrough}\n"
        "  - {id: d, kind: delay, plugin: delay, config: {initial: 0, kind: state}}\n"
        "  - {id: o, kind: sink, plugin: 'null'}\n"
        "edges: [{from: s, to: c}, {from: d, to: c}, {from: c, to: d}, {from: c, to: o}]\n"
    )
    graph = validate_text(text, registry=registry).graph
    assert graph is not None
    assert graph.nodes["c"].output is not None
    assert graph.nodes["c"].output.kinds == frozenset({"telemetry", "state"})


def test_long_chain_validates_without_recursion_limits(registry: PluginRegistry) -> None:
    lines = ["version: 2", "nodes:", "  - {id: n0, kind: source, plugin: synthetic}"]
    lines += [f"  - {{id: n{i}, kind: transform, plugin: passthrough}}" for i in range(1, 3000)]
    lines += ["  - {id: out, kind: sink, plugin: 'null'}", "edges:"]
    lines += [f"  - {{from: n{i}, to: n{i + 1}}}" for i in range(2999)]
    lines += ["  - {from: n2999, to: out}"]
    result = validate_text("\n".join(lines), registry=registry)
    assert result.report.valid, result.report.problems[:3]


def test_every_problem_is_reported_in_one_pass(registry: PluginRegistry) -> None:
    text = (
        "version: 2\nnodes:\n"
        "  - {id: a, kind: source, plugin: synthetic, config: {rate_hz: -1}}\n"
        "  - {id: b, kind: transform, plugin: samplee}\n"
        "  - {id: c, kind: sink, plugin: 'null', inbox: {overflow: drop_all}}\n"
        "  - {id: d, kind: sink, plugin: 'null'}\n"
        "edges: [{from: a, to: b}, {from: b, to: c}, {from: c, to: a}, {from: x, to: d}]\n"
        "extra: true\n"
    )
    found = codes(text, registry)
    assert found == sorted(
        [
            "bad-config",
            "unknown-plugin",
            "bad-value",
            "sink-has-output",
            "source-has-input",
            "edge-missing-node",
            "unknown-key",
        ]
    )


def test_cycle_without_delay_is_found_beside_a_loop_that_has_one(registry: PluginRegistry) -> None:
    text = (
        "version: 2\nnodes:\n"
        "  - {id: src, kind: source, plugin: synthetic}\n"
        "  - {id: a, kind: transform, plugin: passthrough}\n"
        "  - {id: b, kind: transform, plugin: passthrough}\n"
        "  - {id: d, kind: delay, plugin: delay, config: {initial: 0}}\n"
        "  - {id: out, kind: sink, plugin: 'null'}\n"
        "edges:\n"
        "  - {from: src, to: a}\n"
        "  - {from: a, to: b}\n"
        "  - {from: b, to: a}\n"
        "  - {from: b, to: d}\n"
        "  - {from: d, to: b}\n"
        "  - {from: b, to: out}\n"
    )
    [problem] = validate_text(text, registry=registry).report.errors
    assert problem.code == "cycle-without-delay"
    assert problem.message == "cycle a -> b -> a has no delay node"
    assert problem.where.line == 10


def test_delay_outside_a_cycle_and_a_loop_without_exit_are_warnings(
    registry: PluginRegistry,
) -> None:
    text = (
        "version: 2\nnodes:\n"
        "  - {id: src, kind: source, plugin: synthetic}\n"
        "  - {id: hold, kind: delay, plugin: delay, config: {initial: 1}}\n"
        "  - {id: out, kind: sink, plugin: 'null'}\n"
        "  - {id: d, kind: delay, plugin: delay, config: {initial: 0}}\n"
        "  - {id: spin, kind: transform, plugin: passthrough}\n"
        "edges:\n"
        "  - {from: src, to: hold}\n"
        "  - {from: hold, to: out}\n"
        "  - {from: d, to: spin}\n"
        "  - {from: spin, to: d}\n"
    )
    result = validate_text(text, registry=registry)
    assert result.report.valid and result.graph is not None
    warnings = sorted((p.code, p.where.node) for p in result.report.warnings)
    assert warnings == [
        ("delay-outside-cycle", "hold"),
        ("no-path-to-sink", "d"),
        ("no-path-to-sink", "spin"),
    ]


def test_duplicated_and_broken_nodes_keep_their_own_problems(registry: PluginRegistry) -> None:
    text = (
        "version: 2\nnodes:\n"
        "  - {id: a, kind: transfrom, plugin: passthrough}\n"
        "  - {id: a, kind: transform, plugin: passthrough}\n"
        "  - {id: o, kind: sink, plugin: 'null'}\n"
        "  - {id: o, kind: sink, plugin: nul}\n"
        "  - {id: s, kind: source, plugin: synthetic}\n"
        "edges: [{from: s, to: a}, {from: a, to: o}]\n"
    )
    found = sorted(
        (p.code, p.where.line) for p in validate_text(text, registry=registry).report.errors
    )
    assert found == [
        ("bad-value", 3),
        ("duplicate-id", 4),
        ("duplicate-id", 6),
        ("unknown-plugin", 6),
    ]


def test_a_number_as_id_is_named_and_still_counts_as_a_source(registry: PluginRegistry) -> None:
    text = (
        "version: 2\nnodes:\n"
        "  - {id: 1, kind: source, plugin: synthetic}\n"
        "  - {id: o, kind: sink, plugin: 'null'}\n"
        "edges: [{from: o, to: o}]\n"
    )
    codes_found = {p.code: p for p in validate_text(text, registry=registry).report.errors}
    assert "no-source" not in codes_found
    assert codes_found["bad-id"].hint == 'quote it: `id: "1"`, or use a name'
    assert codes_found["bad-id"].where.node == "1"


def test_an_inbox_on_a_source_is_refused(registry: PluginRegistry) -> None:
    text = (
        "version: 2\nnodes:\n"
        "  - {id: s, kind: source, plugin: synthetic, inbox: {durable: {path: q.db}}}\n"
        "  - {id: o, kind: sink, plugin: 'null'}\n"
        "edges: [{from: s, to: o}]\n"
    )
    [problem] = validate_text(text, registry=registry).report.errors
    assert problem.code == "source-inbox" and problem.where.line == 3


class Listens(Source):
    """Declares a source but has no `packets()`."""

    name = "listens"


class Shapes(Transform):
    """Declares a transform, has only the optional fast path: `process` is still needed (a
    failed batch is run again packet by packet)."""

    name = "shapes"

    def process_batch(self, packets: list[Any]) -> list[Any]:
        return packets


class Drain(Sink):
    """Declares a sink but has no `deliver()`."""

    name = "drain"


def test_a_plugin_that_does_not_implement_its_method_is_named_before_anything_runs() -> None:
    registry = PluginRegistry([CORE, PluginPack("partial", (Listens, Shapes, Drain))])
    text = (
        "version: 2\nnodes:\n"
        "  - {id: src, kind: source, plugin: listens}\n"
        "  - {id: mid, kind: transform, plugin: shapes}\n"
        "  - {id: out, kind: sink, plugin: drain}\n"
        "edges: [{from: src, to: mid}, {from: mid, to: out}]\n"
    )
    result = validate_text(text, registry=registry)
    assert result.graph is None
    found = [(p.code, p.where.node, p.where.line, p.message) for p in result.report.errors]
    assert found == [
        ("plugin-incomplete", node, line, _cannot_run(plugin, method, args))
        for node, line, plugin, method, args in [
            ("src", 3, "listens", "packets", ""),
            ("mid", 4, "shapes", "process", ", packet"),
            ("out", 5, "drain", "deliver", ", packet"),
        ]
    ]


def _cannot_run(plugin: str, method: str, args: str) -> str:
    """What the runtime said when such a plugin was started (tests/runtime/test_errors.py)."""
    return (
        f"plugin {plugin!r} declares itself but does not implement {method}(), so it cannot "
        f"run: its class needs `def {method}(self{args})` (docs/plugins.md#at-run-time); "
        "install a release of its pack that has it"
    )
