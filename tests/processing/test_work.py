"""The sizes the work budget charges (plugins/processing/work.py): what a value counts, nested,
counted once per distinct container, without recursion limits on deep payloads."""

from __future__ import annotations

from typing import Any

import pytest

from schnitzel_plugins.processing.work import size_of

BIG = 10**9


@pytest.mark.parametrize(
    ("value", "units"),
    [
        (1.5, 1),
        (None, 1),
        (True, 1),
        (7, 1),
        (2**64, 2),  # one more per 64 bits
        ("", 1),
        ("abc", 3),
        ([], 1),
        ({}, 1),
        (["ab", 1.5, None], 4),
        ({"a": [1, 2], "bc": {"d": "ef"}}, 1 + (1 + 2) + 2 + (1 + 1 + 2)),  # + one per inner
        ([0] * 1000, 1000),  # long and flat: counted at C speed
        (["ab"] * 1000, 2000),
        ([2**64] * 100, 200),
        ([1.5, 2, "x"] * 100, 300),
        ({f"k{n}": n for n in range(100)}, sum(len(f"k{n}") for n in range(100)) + 100),
    ],
)
def test_a_value_counts_its_characters_scalars_and_items_nested(value: Any, units: int) -> None:
    assert size_of(value, BIG) == units


def test_a_container_held_many_times_counts_every_time() -> None:
    inner = [0] * 1000
    assert size_of([inner] * 100, BIG) == 100 * (1 + 1000)  # each time: itself and its items
    assert size_of({"a": [inner] * 10, "b": inner}, BIG) == 2 + (1 + 10 * 1001) + 1001


def test_a_count_stops_past_its_limit() -> None:
    many = [[n] for n in range(100_000)]  # distinct containers: walked one by one
    assert 100 < size_of(many, 100) < 200


def test_a_payload_nested_deeper_than_the_stack_is_counted() -> None:
    deep: Any = ["leaf"]
    for _ in range(5_000):
        deep = [deep, 1]
    assert size_of(deep, BIG) == 5_000 + 5_000 + 4  # the ints, the lists inside others
