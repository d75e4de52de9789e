"""Plugin configs: plain-JSON option types, strict numbers, and plugins whose own code fails."""

from __future__ import annotations

import re
from datetime import date
from typing import Any, ClassVar

import pytest
from pydantic import Field, ValidationError, field_validator

from schnitzel import (
    CheckContext,
    EnvironmentProblem,
    JsonObject,
    PluginConfig,
    PluginPack,
    PluginRegistry,
    StreamPacket,
    StreamShape,
    Transform,
)
from schnitzel.validate import validate_text
from schnitzel_plugins.core import PACK as CORE


class Options(PluginConfig):
    extra: JsonObject = Field(default={})


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({1: "x"}, "Input should be a valid string"),
        ({"a": {1: "x"}}, "key 1 in a is not a string"),
        ({"a": (1, 2)}, "a is a tuple"),
        ({"a": {"b": [float("nan")]}}, "a.b[0] is nan"),
        ({"when": date(2024, 1, 1)}, "when is a date (quote dates)"),
    ],
)
def test_json_object_refuses_what_json_would_change_or_refuse(
    value: dict[Any, Any], reason: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(reason)):
        Options(extra=value)


def test_json_object_accepts_plain_json() -> None:
    assert Options(extra={"a": [1, 2.5, {"b": None, "c": True}]}).extra["a"][2]["c"] is True


GRAPH = """\
version: 2
nodes:
  - {{id: s, kind: source, plugin: synthetic, config: {source_config}}}
  - {{id: t, kind: transform, plugin: {transform}}}
  - {{id: o, kind: sink, plugin: "null"{sink_extra}}}
edges: [{{from: s, to: t}}, {{from: t, to: o}}]
"""


def graph(source_config: str = "{}", transform: str = "passthrough", sink_extra: str = "") -> str:
    return GRAPH.format(source_config=source_config, transform=transform, sink_extra=sink_extra)


@pytest.mark.parametrize(
    ("source_config", "sink_extra", "path"),
    [
        ("{count: true}", "", "config.count"),
        ("{rate_hz: false}", "", "config.rate_hz"),
        ('{count: "10"}', "", "config.count"),
        ("{}", ", inbox: {max: true}", "inbox.max"),
    ],
)
def test_booleans_and_strings_are_not_numbers(
    registry: PluginRegistry, source_config: str, sink_extra: str, path: str
) -> None:
    report = validate_text(graph(source_config, sink_extra=sink_extra), registry=registry).report
    assert [p.where.path.split("]", 1)[1].lstrip(".") for p in report.errors] == [path]


def test_synthetic_payload_with_a_yaml_date_is_refused(registry: PluginRegistry) -> None:
    report = validate_text(graph("{payload: {day: 2024-01-01}}"), registry=registry).report
    [problem] = report.errors
    assert problem.code == "bad-config" and "day is a date (quote dates)" in problem.message
    assert problem.where.line == 3


class ExplodingConfig(PluginConfig):
    level: int = 0

    @field_validator("level")
    @classmethod
    def _explode(cls, value: int) -> int:
        if value == 13:
            raise KeyError("unlucky")
        return value


class Exploding(Transform):
    """Its own code raises in every hook, depending on the config."""

    name: ClassVar[str] = "exploding"
    Config = ExplodingConfig

    def process(self, packet: StreamPacket) -> StreamPacket:
        return packet

    @classmethod
    def check_environment(cls, config: Any, context: CheckContext) -> list[EnvironmentProblem]:
        if config.level == 1:
            raise RuntimeError("disk probe failed")
        return []

    @classmethod
    def output_shape(cls, config: Any, incoming: StreamShape | None) -> StreamShape:
        if config.level == 2:
            raise ZeroDivisionError("division by zero")
        return super().output_shape(config, incoming)


@pytest.mark.parametrize(
    ("level", "raised"),
    [
        (13, "KeyError while validating its config: 'unlucky'"),
        (1, "RuntimeError while checking its environment: disk probe failed"),
        (2, "ZeroDivisionError while computing its output shape: division by zero"),
    ],
)
def test_a_plugin_that_raises_is_reported_not_a_crash(level: int, raised: str) -> None:
    registry = PluginRegistry([CORE, PluginPack("bad", (Exploding,))])
    text = graph(transform=f"exploding, config: {{level: {level}}}")
    [problem] = validate_text(text, registry=registry).report.errors
    assert problem.code == "plugin-failed" and problem.where.node == "t"
    assert problem.message == f"plugin 'exploding' raised {raised}"
    assert "bug in the plugin" in problem.hint
