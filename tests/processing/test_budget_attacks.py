"""Attacks on the work budget of `filter`, `map` and `route` (docs/processing.md, The work
budget) that once got far more work than they were charged for: each now fails its packet on
the budget, with an `ExpressionError` naming the expression, so `on_error` applies."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from schnitzel import NodeContext
from schnitzel.contract.packet import StreamPacket
from schnitzel_plugins.processing.expressions import (
    ExpressionError,
    ExpressionInvalid,
    compile_expression,
)
from schnitzel_plugins.processing.map import Map


def packet(payload: Any) -> StreamPacket:
    return StreamPacket.new("sensor", "s", 1, payload, ts=1_700_000_000.0)


def a_map(options: dict[str, Any]) -> Map:
    config = Map.Config.model_validate(options)
    return Map(config, NodeContext("m", Path("."), Path("state"), logging.getLogger("t")))


REFERENCES = "[" + ", ".join(["payload.s"] * 350) + "]"
"""350 references to one list: free to build (no item is copied), but `map` copies its result
into plain JSON, 350 times the list."""


def test_a_map_result_is_charged_for_the_copy_map_makes_of_it() -> None:
    copies = a_map({"set": {"copies": REFERENCES}})
    with pytest.raises(ExpressionError, match="over its work budget, max_work 100,000"):
        copies.process(packet({"s": list(range(1000))}))  # 350,000 items copied


def test_a_map_result_within_the_budget_is_still_copied() -> None:
    copies = a_map({"set": {"copies": REFERENCES}})
    result = copies.process(packet({"s": list(range(10))}))
    assert result.payload["copies"] == [list(range(10))] * 350


BIG = {"a": 10**4299, "b": 10**2000 + 7}
"""The largest integer JSON gives Python (4,300 digits: 224 units of 64 bits), and one of 104."""


@pytest.mark.parametrize(
    ("source", "units"),
    [
        # Multiplying or dividing big integers costs about the product of their sizes (a
        # division of one by the other walks both for every word of the quotient), not the
        # size of the result: a tree of products of `payload.a` ran 75 ms for 86,000 units,
        # its quotient by half its size 0.5 s for 120,000 units.
        ("payload.a * payload.b", 5 + 224 * 104),
        ("payload.a // payload.b", 5 + 224 * 104),
        ("payload.a % payload.b", 5 + 224 * 104),
        ("payload.a * 3", 4 + 224),
        ("payload.a // 3", 4 + 224),
        ("2 ** 100 * 2 ** 100", 7 + 2 + 2 + 2 * 2),  # (docs/processing.md, unchanged)
    ],
)
def test_big_integer_products_and_divisions_are_charged_by_both_sizes(
    source: str, units: int
) -> None:
    expected = compile_expression(source, 10**9).evaluate(packet(BIG))
    assert compile_expression(source, units).evaluate(packet(BIG)) == expected
    with pytest.raises(ExpressionError, match=f"over its work budget, max_work {units - 1:,}"):
        compile_expression(source, units - 1).evaluate(packet(BIG))


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "source", ['str(payload) != ""', 'f"{payload}" != ""', "payload.a == payload.b"]
)
def test_a_payload_nested_deeper_than_the_stack_fails_as_an_expression_error(source: str) -> None:
    """Python's printing and comparing recurse per level, and the budget counts a deep payload
    without recursing: the RecursionError is the packet's, named like any other failure."""
    deep = packet({"a": nested(5_000), "b": nested(5_000)})
    with pytest.raises(ExpressionError, match="nested too deep"):
        compile_expression(source, 10**9).evaluate(deep)


def test_a_map_result_nested_deeper_than_the_stack_fails_as_an_expression_error() -> None:
    copy = a_map({"set": {"copy": "payload.a"}, "max_work": 10**9})
    with pytest.raises(ExpressionError, match="nested too deep"):
        copy.process(packet({"a": nested(5_000)}))


@pytest.mark.parametrize("base", ["True", "False", "1"])
def test_a_boolean_base_is_bounded_like_an_integer_base(base: str) -> None:
    """`True ** n` loops over the bits of n, as `1 ** n` does: 170 of them on a 4,300-digit
    payload integer ran 34 ms for 1,021 units before a boolean base was bounded too."""
    with pytest.raises(ExpressionError, match="is too large"):
        compile_expression(f"{base} ** payload.a == 1").evaluate(packet(BIG))


@pytest.mark.parametrize(
    ("source", "units"),
    [
        # Searching a string is not at C's memcmp speed: a payload of 1 MB of "a" and a needle
        # of 30 "a" then "b" took 3 ms per `in`, 130 of them 0.4 s for 651 units. The text
        # searched is charged, a character a unit.
        ("payload.n in payload.h", 5 + 1000),
        ("payload.n not in payload.h", 5 + 1000),
        ("payload.h in payload.h in payload.h", 7 + 1000 + 1000),
    ],
)
def test_a_string_searched_with_in_is_charged_by_its_length(source: str, units: int) -> None:
    texts = packet({"n": "a" * 30 + "b", "h": "a" * 1000})
    expected = compile_expression(source, 10**9).evaluate(texts)
    assert compile_expression(source, units).evaluate(texts) == expected
    with pytest.raises((ExpressionError, ExpressionInvalid), match=f"max_work {units - 1:,}"):
        compile_expression(source, units - 1).evaluate(texts)  # (nodes alone: refused)


@pytest.mark.parametrize(
    ("source", "units"),
    [
        # Strings compare at C speed, but not free: `<` between 1 MB of "a" and the same
        # ending in an emoji (two kinds of string, compared character by character) took
        # 0.35 ms, 160 of them 56 ms for 801 units (0.5 s at 10 MB). A unit per 256
        # characters of the shorter side: at most about 10 ms at the default budget.
        ("payload.h < payload.u", 5 + 40),
        ("payload.h == payload.u", 5 + 40),
        ("payload.h[:255] < payload.u", 8 + 255),  # the slice; short: no charge
        ('kind == "sensor"', 3),
    ],
)
def test_long_strings_compared_are_charged_per_256_characters(source: str, units: int) -> None:
    texts = packet({"h": "a" * 10_240, "u": "a" * 10_239 + "\U0001f600"})
    expected = compile_expression(source, 10**9).evaluate(texts)
    assert compile_expression(source, units).evaluate(texts) == expected
    with pytest.raises((ExpressionError, ExpressionInvalid), match=f"max_work {units - 1:,}"):
        compile_expression(source, units - 1).evaluate(texts)


def test_the_walk_of_a_payload_of_nested_containers_stops_at_the_budget() -> None:
    """A list holding a list holding ... an empty list counted one unit, however deep: a
    payload of 100,000 `[[[[[]]]]]` (1.1 MB) counted 100,000 units, walking 500,000 lists
    (0.4 s before `str()` failed on the budget, 0.6 s for `==`). A container inside another
    now counts one for itself, so the walk stops after about `max_work` containers."""
    from schnitzel_plugins.processing.work import size_of

    assert size_of([[[[[]]]]], 10**9) == 4  # three lists inside others, and an empty one
    assert 1000 < size_of([[[[[[]]]]]] * 100_000, 1000) < 1100


class WatchedList(list[Any]):
    """A list that records being walked."""

    walked = False

    def __iter__(self) -> Any:
        WatchedList.walked = True
        return super().__iter__()


def test_a_comparison_whose_left_side_is_over_the_budget_does_not_walk_the_right() -> None:
    """Each side was counted up to the whole budget: twice the walk it buys (`==` of two
    payload lists of 100,000 empty lists took 64 ms where `str()` of one took 33)."""
    WatchedList.walked = False
    sides = packet({"a": [0] * 200, "b": WatchedList([[] for _ in range(200)])})
    with pytest.raises(ExpressionError, match="over its work budget"):
        compile_expression("payload.a == payload.b", 100).evaluate(sides)
    assert not WatchedList.walked
