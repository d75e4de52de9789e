"""The expression language of filter, map and route: what it computes, what it refuses when
compiled (with line and column), what it bounds when evaluated, and how it fails on a packet."""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import pytest
from pydantic import ValidationError

from schnitzel.contract.packet import StreamPacket
from schnitzel_plugins.processing.expressions import (
    DEFAULT_MAX_WORK,
    ExpressionError,
    ExpressionInvalid,
    compile_expression,
)
from schnitzel_plugins.processing.filter import Filter
from schnitzel_plugins.processing.map import Map
from schnitzel_plugins.processing.route import Route

PACKET = StreamPacket.new(
    "sensor",
    "boiler-1",
    7,
    {"value": 21.5, "unit": "celsius", "keys": 3, "reading": {"raw": 4096}, "tags": ["a", "b"]},
    meta={"site": "north"},
    ts=1_700_000_000.0,
)


def evaluate(source: str, max_work: int = DEFAULT_MAX_WORK) -> object:
    return compile_expression(source, max_work).evaluate(PACKET)


UNLIMITED = 10**12
"""A work budget no test expression reaches: for the bounds that hold whatever the budget."""


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ('payload.value > 20 and source_id == "boiler-1"', True),
        ("payload.value * 1.8 + 32", 21.5 * 1.8 + 32),
        ('payload["unit"] in ("celsius", "kelvin")', True),
        ("payload.reading.raw // 16", 256),
        ("payload.tags[1]", "b"),
        ("len(payload.tags)", 2),
        ("payload.keys", 3),  # a field named like a dict method is the field
        ('meta.site == "north" and kind == "sensor"', True),
        ("seq % 2 == 1 and ts > 0", True),
        ('f"{source_id}:{seq}"', "boiler-1:7"),
        ('get(payload, "missing", -1)', -1),
        ('has(payload, "unit") and not has(meta, "unit")', True),
        ("round(sqrt(payload.reading.raw), 1)", 64.0),
        ('upper(payload.unit) if payload.value > 0 else "cold"', "CELSIUS"),
        ("payload.value > 100 or null == None", True),
        ('{"c": payload.value, "raw": [payload.reading.raw]}', {"c": 21.5, "raw": [4096]}),
    ],
)
def test_expressions_read_the_packet_and_compute(source: str, value: object) -> None:
    assert evaluate(source) == value


@pytest.mark.parametrize(
    ("source", "line", "column", "reason"),
    [
        ("payload.value >", 1, 16, "syntax error"),
        ("payload.value > 1 and\n  foo(payload)", 2, 3, "unknown function 'foo'"),
        ("payload.value + nope", 1, 17, "unknown name 'nope'"),
        ('__import__("os").system("true")', 1, 18, "only functions, not methods"),
        ('__import__("os")', 1, 1, "unknown function '__import__'"),
        ("payload.__class__", 1, 9, "'__class__'"),
        ("payload.value.__class__.__mro__", 1, 25, "'_' are not allowed"),
        ("().__class__.__bases__[0].__subclasses__()", 1, 27, "only functions, not methods"),
        ("payload.clear()", 1, 9, "not methods"),
        ('source_id.format(x="")', 1, 11, "not methods"),
        ("open('/etc/passwd')", 1, 1, "unknown function 'open'"),
        ("eval('1')", 1, 1, "unknown function 'eval'"),
        ("lambda: 1", 1, 1, "lambda"),
        ("[x for x in payload.tags]", 1, 1, "comprehension"),
        ("(x := 1)", 1, 2, "assignment"),
        ("import os", 1, 1, "syntax error"),
        ("payload.value; payload.unit", 1, 14, "syntax error"),
        ("payload.value = 3", 1, 1, "syntax error"),
        ('f"{payload.value:>99999999}"', 1, 1, "format specs"),
        # the evaluator ignored a conversion: `f"{kind!r}"` gave sensor, not 'sensor'
        ('f"{kind!r}"', 1, 1, "conversions"),
        ('f"{kind!a}"', 1, 1, "conversions"),
        ('f"{kind!s}"', 1, 1, "conversions"),
        ("round(payload.value, ndigits=1)", 1, 1, "keyword arguments"),
        ("len", 1, 1, "unknown name 'len'"),
        ("", 1, 1, "empty"),
        ("1" + " + 1" * 200, 1, 1, "nested deeper than 64 levels"),
        ("abs(" * 70 + "1" + ")" * 70, 1, 1, "nested deeper than 64 levels"),
    ],
)
def test_what_an_expression_may_not_do_is_refused_with_line_and_column(
    source: str, line: int, column: int, reason: str
) -> None:
    with pytest.raises(ExpressionInvalid) as refused:
        compile_expression(source)
    assert (refused.value.line, refused.value.column) == (line, column), refused.value
    assert reason in str(refused.value)
    assert str(refused.value).startswith(f"line {line}, column {column} of the expression: ")


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("9 ** 999999999", "too large"),
        ("2 ** 4097", "too large"),
        ('"a" * 10 ** 9', "repetition is longer"),
        ("payload.tags * 10 ** 6", "repetition is longer"),
        # a repeated list repeats references: str() or == on it would walk 10 ** 10 items
        ("[[0] * 1000] * 1000", "repetition is longer"),
        ('[{"k": ["x" * 1000]}] * 1000', "repetition is longer"),
        ('("x" * 100000) + ("y" * 100000)', "concatenation is longer"),
        ("10.0 ** 400", "OverflowError"),
        ('"%0999999999d" % 1', "string formatting with % is not allowed"),
        ("round(10 ** 100, -10 ** 8)", "round\\(\\) takes at most 64 digits"),
    ],
)
def test_huge_results_are_refused_while_evaluating(source: str, reason: str) -> None:
    with pytest.raises(ExpressionError, match=reason):
        evaluate(source, UNLIMITED)


@pytest.mark.parametrize(
    ("source", "length"),
    [("[0] * 100000", 100000), ('["ab"] * 50000', 50000), ("[[]] * 100000", 100000)],
)
def test_repetitions_up_to_the_bound_are_evaluated(source: str, length: int) -> None:
    value = evaluate(source, UNLIMITED)
    assert isinstance(value, list) and len(value) == length


def test_an_expression_cannot_change_the_packet_it_reads() -> None:
    before = copy.deepcopy(PACKET.payload)
    for source in ("payload.tags[0]", "payload.reading", 'get(payload, "unit")', "payload"):
        evaluate(source)
    assert PACKET.payload == before


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("payload.missing > 1", "'payload.missing > 1': payload has no field 'missing'"),
        ("payload.value.deg", "payload.value is a float, not a mapping with the field 'deg'"),
        ('payload["nope"]', "payload has no field 'nope'"),
        ("payload.tags[5]", "payload.tags[5]: list index out of range"),
        ("payload.unit + 1", "TypeError: can only concatenate str"),
        ("payload.value / 0", "ZeroDivisionError"),
        ("float(payload.unit)", "ValueError: could not convert string to float"),
        ("sqrt(-1.0)", "ValueError: math domain error"),
    ],
)
def test_a_failure_on_a_packet_names_the_expression_and_what_failed(
    source: str, message: str
) -> None:
    with pytest.raises(ExpressionError) as failed:
        evaluate(source)
    assert message in str(failed.value)


def test_one_compiled_expression_serves_many_packets() -> None:
    expression = compile_expression("payload.value * 2")
    values = [
        expression.evaluate(StreamPacket.new("sensor", "s", n, {"value": n})) for n in range(5)
    ]
    assert values == [0, 2, 4, 6, 8]
    assert math.isclose(expression.evaluate(PACKET), 43.0)


@pytest.mark.parametrize(
    ("source", "units"),
    [
        # nodes, one each, plus what the operations build or walk (docs/processing.md)
        ('"ab" + "cd"', 3 + 4),  # a concatenation: its length
        ("[0] * 3", 4 + 3),  # a repetition: its length
        ("payload.value * 2 > 40", 6),  # numbers: nodes only
        ('kind == "sensor"', 3),  # strings compare at C speed: nodes only
        ('payload.tags == ["a", "b"]', 6 + 2 + 2),  # lists compare item by item: both sides
        ('"unit" in payload', 3 + 4),  # a key looked up in a mapping: the key only
        ("str(payload.tags)", 4 + 2 + len("['a', 'b']")),  # walked, and the string made
        ("max(payload.tags)", 4 + 2 + 1),  # the arguments walked, the string returned
        ('f"{seq}"', 3 + 1),  # an f-string: its length
        ("source_id[:3]", 4 + 3),  # a slice: its length
        ("{**payload}", 2 + 5),  # a mapping unpacked: its keys
        ("2 ** 100 * 2 ** 100", 7 + 2 + 2 + 4),  # a big integer: one per 64 bits
        ("str([[0] * 3] * 2)", 9 + 3 + 2 + 8 + len("[[0, 0, 0], [0, 0, 0]]")),
        ('f"{payload.tags}"', 4 + 2 + len("['a', 'b']")),
        ("[[0] * 3] * 2 == [[0] * 3] * 2", 15 + 2 * (3 + 2) + 2 * 8),  # nested: every item
    ],
)
def test_the_work_budget_charges_each_operation_as_documented(source: str, units: int) -> None:
    """Exactly `units`: the expression evaluates with that budget and fails with one less
    (refused when compiled, where its nodes alone are over), on every try (work is counted,
    never timed)."""
    expected = evaluate(source, UNLIMITED)
    for _ in range(3):
        assert evaluate(source, units) == expected
        with pytest.raises((ExpressionError, ExpressionInvalid), match=f"max_work {units - 1}"):
            evaluate(source, units - 1)


def test_an_expression_whose_nodes_exceed_the_budget_is_refused_when_compiled() -> None:
    with pytest.raises(ExpressionInvalid, match="5 nodes, each a unit of work, over max_work 4"):
        compile_expression("1 + 2 + 3", max_work=4)
    assert compile_expression("1 + 2 + 3", max_work=5).evaluate(PACKET) == 6


HEAVY = " and ".join(['str([[0]*999]*100)!=""'] * 145)
"""4 KB of allowed terms, each building and printing 100,000 items: over a second of CPU per
packet without a budget."""


def test_a_heavy_expression_fails_its_packet_on_the_budget_naming_both() -> None:
    assert 3900 < len(HEAVY) <= 4096
    with pytest.raises(ExpressionError) as failed:
        evaluate(HEAVY)
    message = str(failed.value)
    assert message.startswith(repr(HEAVY) + ": over its work budget, max_work 100,000")
    assert "raise the node's max_work" in message


def test_a_payload_too_big_for_the_budget_fails_that_packet_only() -> None:
    expression = compile_expression("max(payload.samples) > 0", max_work=1000)
    small = StreamPacket.new("sensor", "s", 0, {"samples": list(range(1, 100))})
    large = StreamPacket.new("sensor", "s", 1, {"samples": list(range(1, 1000))})
    assert expression.evaluate(small) is True
    with pytest.raises(ExpressionError, match="over its work budget, max_work 1,000"):
        expression.evaluate(large)
    assert expression.evaluate(small) is True  # the next packet starts with a full budget


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ({"plugin": Filter, "condition": "seq + 1 + 2 > 3"}, "condition"),
        ({"plugin": Map, "set": {"ok": "seq", "x": "seq + 1 + 2 > 3"}}, "set.x"),
        ({"plugin": Route, "routes": {"hot": "seq + 1 + 2 > 3"}}, "routes.hot"),
    ],
)
def test_a_node_refuses_an_expression_its_max_work_cannot_evaluate(
    config: dict[str, Any], option: str
) -> None:
    plugin = config.pop("plugin")
    with pytest.raises(ValidationError, match=f"{option}: line 1, column 1 of the expression: 7 "):
        plugin.Config.model_validate({**config, "max_work": 6})
    assert plugin.Config.model_validate({**config, "max_work": 7}).max_work == 7


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("-" * 4000 + "1", "nested deeper than 64 levels"),  # Python's parser gives up first
        ("x" * 4097, "longer than 4096 characters (4097)"),
    ],
)
def test_an_expression_too_long_or_too_deep_is_refused_with_the_limit(
    source: str, reason: str
) -> None:
    with pytest.raises(ExpressionInvalid, match=re.escape(reason)):
        compile_expression(source)
