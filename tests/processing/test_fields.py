"""The pack's one rule for reading a field named in a config (plugins/processing/fields.py):
what a key, a value and a number accept and refuse, and that every node naming a field fails
a packet the same way, with the same message."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytest

from schnitzel import NodeContext, StreamPacket
from schnitzel.registry.plugin import Plugin
from schnitzel_plugins.processing.deadband import Deadband
from schnitzel_plugins.processing.fields import key_reader, number_reader, value_reader
from schnitzel_plugins.processing.fuse import Fuse
from schnitzel_plugins.processing.rate_limit import RateLimit
from schnitzel_plugins.processing.threshold import Threshold
from schnitzel_plugins.processing.window import Window

T0 = 1_700_000_000.0


def packet(payload: Any, meta: dict[str, Any] | None = None) -> StreamPacket:
    return StreamPacket.new("sensor", "s", 0, payload, meta=meta or {}, ts=T0)


@pytest.mark.parametrize(
    ("field", "payload", "value"),
    [
        ("value", {"value": 3}, 3),
        ("value", {"value": -2.5}, -2.5),
        ("reading.celsius", {"reading": {"celsius": 21.5}}, 21.5),
        ("a-b.c_d", {"a-b": {"c_d": 0}}, 0),
    ],
)
def test_a_number_is_a_finite_int_or_float_at_a_payload_path(
    field: str, payload: Any, value: float
) -> None:
    assert number_reader(field)(packet(payload)) == value


@pytest.mark.parametrize(
    ("field", "payload", "message"),
    [
        ("value", {"other": 1}, "packet has no payload.value"),
        ("value", [1, 2], "packet has no payload.value"),
        ("value", "text", "packet has no payload.value"),
        ("value", None, "packet has no payload.value"),
        ("reading.celsius", {"reading": 21.5}, "packet has no payload.reading.celsius"),
        ("reading.celsius", {"reading": [{"celsius": 1}]}, "packet has no payload.reading"),
        ("value", {"value": True}, "payload.value must be a finite number, not True"),
        ("value", {"value": "7"}, "payload.value must be a finite number, not '7'"),
        ("value", {"value": None}, "payload.value must be a finite number, not None"),
        ("value", {"value": math.nan}, "payload.value must be a finite number, not nan"),
        ("value", {"value": math.inf}, "payload.value must be a finite number, not inf"),
        ("value", {"value": -math.inf}, "payload.value must be a finite number, not -inf"),
        ("value", {"value": [1]}, "payload.value must be a finite number, not [1]"),
        # JSON gives Python integers of up to 4,300 digits: past a float, a window's sum fails
        (
            "value",
            {"value": 10**400},
            "payload.value must be a finite number, not an integer of 1329 bits",
        ),
        ("value", {"value": -(10**400)}, "payload.value must be a finite number, not an integer"),
    ],
)
def test_a_number_that_is_missing_or_not_finite_fails_the_packet_naming_the_field(
    field: str, payload: Any, message: str
) -> None:
    with pytest.raises(ValueError, match="^" + message.replace(".", r"\.").replace("[", r"\[")):
        number_reader(field)(packet(payload))


def test_a_value_is_whatever_json_is_at_the_path_and_missing_fails() -> None:
    read = value_reader("imu.ax")
    assert read(packet({"imu": {"ax": [1, "x", None]}})) == [1, "x", None]
    assert read(packet({"imu": {"ax": None}})) is None
    with pytest.raises(ValueError, match=r"^packet has no payload\.imu\.ax$"):
        read(packet({"imu": {}}))


@pytest.mark.parametrize(
    ("key", "payload", "meta", "want"),
    [
        (None, {}, {}, None),
        ("source_id", {}, {}, "s"),
        ("kind", {}, {}, "sensor"),
        ("payload.sensor", {"sensor": "a"}, {}, "a"),
        ("payload.where.line", {"where": {"line": 3}}, {}, 3),
        ("meta.site", {}, {"site": "north"}, "north"),
        ("payload.tags", {"tags": [1, 2]}, {}, "[1, 2]"),  # unhashable: keyed by its text
        ("payload.pos", {"pos": {"x": 1}}, {}, "{'x': 1}"),
    ],
)
def test_a_key_is_the_packets_field_or_its_text_when_unhashable(
    key: str | None, payload: Any, meta: dict[str, Any], want: Any
) -> None:
    assert key_reader(key)(packet(payload, meta)) == want


@pytest.mark.parametrize(
    ("key", "payload", "message"),
    [
        ("payload.sensor", {"other": 1}, "packet has no payload.sensor"),
        ("payload.sensor", ["sensor"], "packet has no payload.sensor"),
        ("meta.site", {"site": "north"}, "packet has no meta.site"),
    ],
)
def test_a_packet_without_its_key_fails(key: str, payload: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace(".", r"\.") + "$"):
        key_reader(key)(packet(payload))


def make(cls: type[Plugin], config: dict[str, Any]) -> Any:
    context = NodeContext("node", Path("."), Path("state"), logging.getLogger("t"))
    return cls(cls.Config.model_validate(config), context)


NUMBER_NODES: list[tuple[type[Plugin], dict[str, Any]]] = [
    (Threshold, {"above": 1.0, "field": "reading.value"}),
    (Deadband, {"delta": 1.0, "field": "reading.value"}),
    (Window, {"size_s": 1.0, "field": "reading.value"}),
    (
        Fuse,
        {
            "primary": {"source_id": "cam"},
            "partners": [
                {
                    "name": "t",
                    "source_id": "s",
                    "fields": ["reading.value"],
                    "strategy": "interpolate",
                }
            ],
        },
    ),
]


@pytest.mark.parametrize(("cls", "config"), NUMBER_NODES, ids=lambda x: getattr(x, "name", ""))
@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"reading": {"other": 1}}, "packet has no payload.reading.value"),
        ({"reading": 5}, "packet has no payload.reading.value"),
        ({"reading": {"value": "hot"}}, "payload.reading.value must be a finite number, not 'hot'"),
        ({"reading": {"value": False}}, "payload.reading.value must be a finite number, not False"),
        (
            {"reading": {"value": math.nan}},
            "payload.reading.value must be a finite number, not nan",
        ),
        (
            {"reading": {"value": math.inf}},
            "payload.reading.value must be a finite number, not inf",
        ),
        (
            {"reading": {"value": 10**400}},  # once taken, and a window's count was then off
            "payload.reading.value must be a finite number, not an integer of 1329 bits "
            "(past a float's range)",
        ),
    ],
)
def test_every_node_reading_a_number_fails_a_packet_the_same_way(
    cls: type[Plugin], config: dict[str, Any], payload: Any, message: str
) -> None:
    node = make(cls, config)
    with pytest.raises(ValueError) as failed:
        node.process(packet(payload))
    assert str(failed.value) == message


KEY_NODES: list[tuple[type[Plugin], dict[str, Any]]] = [
    (Threshold, {"above": 1.0, "by": "meta.line"}),
    (Deadband, {"delta": 1.0, "by": "meta.line"}),
    (RateLimit, {"rate_hz": 1.0, "by": "meta.line"}),
    (Window, {"size_s": 1.0, "key": "meta.line"}),
]


@pytest.mark.parametrize(("cls", "config"), KEY_NODES, ids=lambda x: getattr(x, "name", ""))
def test_every_node_keeping_state_per_key_fails_a_packet_without_its_key_the_same_way(
    cls: type[Plugin], config: dict[str, Any]
) -> None:
    node = make(cls, config)
    with pytest.raises(ValueError) as failed:
        node.process(packet({"value": 1.0}, meta={"site": "north"}))
    assert str(failed.value) == "packet has no meta.line"


def test_fuse_takes_a_nearest_partners_fields_by_the_same_rule() -> None:
    config = {
        "primary": {"source_id": "cam"},
        "partners": [{"name": "imu", "source_id": "s", "fields": ["imu.ax"]}],
    }
    node = make(Fuse, config)
    with pytest.raises(ValueError) as failed:
        node.process(packet({"imu": [1.0]}))
    assert str(failed.value) == "packet has no payload.imu.ax"


def test_a_key_nested_too_deep_to_print_fails_the_packet_naming_the_field() -> None:
    """An unhashable key is keyed by its text; a list 5,000 levels deep has none Python can
    print (RecursionError), so the packet fails like one without the key."""
    deep: Any = []
    for _ in range(5_000):
        deep = [deep]
    with pytest.raises(ValueError, match=r"^payload\.k is nested too deep to be a key"):
        key_reader("payload.k")(packet({"k": deep}))
