"""The expression language of filter, map and route: what it computes, what it refuses when
compiled (with line and column), what it bounds when evaluated, and how it fails on a packet."""

from __future__ import annotations

import copy
import math

import pytest

from schnitzel.contract.packet import StreamPacket
from schnitzel_plugins.processing.expressions import (
    DEFAULT_MAX_WORK,
    ExpressionError,
    ExpressionInvalid,
    compile_expression,
)

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
