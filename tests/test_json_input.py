"""`read_json` against `json.loads` as its model: any JSON a sender's encoder writes (escaped
or not, surrogate pairs for characters past U+FFFF) reads as `json.loads` reads it; a lone
surrogate escape, NaN, an out-of-range number are refused in strict mode; bytes, bytearray and
str read alike."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schnitzel import read_json

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
"""Text any UTF-8 holds (astral characters included: pairs when escaped)."""
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(VALUES, st.booleans(), st.sampled_from(["str", "bytes", "bytearray"]))
def test_valid_json_reads_as_json_loads_reads_it(value: Any, ascii_: bool, form: str) -> None:
    text = json.dumps(value, ensure_ascii=ascii_)
    data: Any = {"str": text, "bytes": text.encode(), "bytearray": bytearray(text.encode())}[form]
    assert read_json(data) == json.loads(text)
    assert read_json(data, strict=False) == json.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "\\ud800"}',
        '{"a": "\\udc00x"}',
        '["\\ud83d"]',
        '["\\ude00\\ud83d"]',  # the pair's halves the wrong way round
        '{"\\ud800": 1}',
        '["\\\\\\ud800"]',  # an escaped backslash, then a lone surrogate
        '["\\\\ud83d\\udc00"]',  # text that reads like a high half, then a lone low one
    ],
)
def test_a_lone_surrogate_escape_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        read_json(text.encode())


@pytest.mark.parametrize("text", ['["\\\\ud800"]', '["\\ud83d\\ude00"]', '{"k": "\\uD83D\\uDE00"}'])
def test_what_only_looks_like_a_lone_surrogate_is_read(text: str) -> None:
    assert read_json(text.encode()) == json.loads(text)


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}', "1e999", "[-1e400]"])
def test_strict_refuses_what_no_json_sink_could_write(text: str) -> None:
    with pytest.raises(ValueError):
        read_json(text)
    read_json(text, strict=False)


def test_not_utf8_and_not_json_are_value_errors() -> None:
    for data in (b"\xff\xfe\xfa", b'{"a": 1', "\ufeff{}", b"[" * 100_000):
        with pytest.raises(ValueError):
            read_json(data)
