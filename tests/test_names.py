"""Look-alike ids: a Cyrillic letter that reads like a Latin one is refused, and every message
shows it escaped, so the operator sees why an id spelled with a Cyrillic es is not `cam`."""

from __future__ import annotations

from schnitzel.registry.registry import PluginRegistry
from schnitzel.spec.names import did_you_mean, shown, unknown_node
from schnitzel.validate.validator import validate_text

CYRILLIC_CAM = "\u0441am"


def test_a_plain_id_reads_as_before_and_a_look_alike_is_escaped() -> None:
    assert shown("cam") == "'cam'"
    assert shown(CYRILLIC_CAM) == "'\\u0441am'"
    assert shown("a\tb") == "'a\\tb'"
    assert did_you_mean(CYRILLIC_CAM, ["cam", "out"]) == "did you mean 'cam'? "
    assert did_you_mean("zzz", ["cam"]) == ""
    assert unknown_node(CYRILLIC_CAM, ["out", "cam"]) == (
        "no node '\\u0441am' in this graph; did you mean 'cam'? nodes: cam, out"
    )


def test_the_validator_refuses_a_look_alike_id_and_shows_it_escaped(
    registry: PluginRegistry,
) -> None:
    text = f"""version: 2
nodes:
  - {{id: {CYRILLIC_CAM}, kind: source, plugin: synthetic, config: {{count: 1}}}}
  - {{id: out, kind: sink, plugin: "null"}}
edges:
  - {{from: {CYRILLIC_CAM}, to: out}}
"""
    report = validate_text(text, registry=registry).report
    bad_id = next(p for p in report.problems if p.code == "bad-id")
    assert "node id '\\u0441am' is not allowed" in bad_id.message
    assert "node '\\u0441am': " in bad_id.render()
    assert CYRILLIC_CAM not in bad_id.render()  # nothing an operator could misread
    assert bad_id.where.node == CYRILLIC_CAM  # the JSON form keeps the id itself


def test_an_edge_from_a_look_alike_shows_it_escaped(
    registry: PluginRegistry,
) -> None:
    text = f"""version: 2
nodes:
  - {{id: cam, kind: source, plugin: synthetic, config: {{count: 1}}}}
  - {{id: out, kind: sink, plugin: "null"}}
edges:
  - {{from: {CYRILLIC_CAM}, to: out}}
  - {{from: cam, to: out}}
"""
    report = validate_text(text, registry=registry).report
    refused = next(p for p in report.problems if p.where.edge is not None)
    rendered = refused.render()
    assert "edge \\u0441am -> out: " in rendered
    assert "(got '\\u0441am')" in rendered  # the edge end fails the id pattern
    assert CYRILLIC_CAM not in rendered
