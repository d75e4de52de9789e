"""A durable inbox encodes a batch at once (contract/batch_encoding.py): the same bytes as
encoding each packet alone, and the same refusals, whatever the batch holds."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schnitzel.contract.batch_encoding import MAX_LEVELS, encode_batch_bytes, plain_values
from schnitzel.contract.codec import _plain, encode_packet_bytes
from schnitzel.contract.packet import FrozenMeta, PayloadRef, StreamPacket
from tests.encoding_hard_cases import hard_cases
from tests.test_codec_paths import MyStr, values


def _each(batch: list[StreamPacket]) -> list[bytes] | type[Exception]:
    """What encoding the packets one by one gives, or the type of the first error."""
    try:
        return [encode_packet_bytes(packet) for packet in batch]
    except Exception as exc:
        return type(exc)


def _batch(batch: list[StreamPacket]) -> list[bytes] | type[Exception]:
    try:
        return encode_batch_bytes(batch)
    except Exception as exc:
        return type(exc)


stamps = st.sampled_from([1_700_000_000.25, 1_700_000_000.999_999_6, 0.0, -1.5, 1.0]) | (
    st.floats(allow_nan=True, allow_infinity=True)
)
shared_meta = st.sampled_from(
    [FrozenMeta({}), FrozenMeta({"idempotency_key": "k"}), FrozenMeta({"x": [1.5, None]})]
)


@st.composite
def packets(draw: st.DrawFn) -> StreamPacket:
    """A packet like a source makes (plain payload, shared meta), or anything else."""
    fields: list[Any] = [
        draw(st.sampled_from(["id-1", "id-2", "", MyStr("id-3")])),
        draw(stamps),
        draw(st.sampled_from(["sensor", "", 3])),
        draw(st.sampled_from(["src", "other"])),
        draw(st.sampled_from([0, 1, 2**70, -1, True])),
        draw(values),
        draw(shared_meta | st.dictionaries(st.text(max_size=4), values, max_size=3)),
        draw(st.sampled_from([None, None, PayloadRef("file:///x", "image/jpeg", 3, "0" * 64)])),
    ]
    return StreamPacket(*fields)


@settings(max_examples=400, deadline=None)
@given(batch=st.lists(packets(), max_size=6))
def test_a_batch_encodes_to_the_bytes_and_errors_of_its_packets_one_by_one(
    batch: list[StreamPacket],
) -> None:
    assert _batch(batch) == _each(batch)


@settings(max_examples=100, deadline=None)
@given(
    payloads=st.lists(
        st.dictionaries(st.text(max_size=3), st.integers() | st.floats() | st.text()),
        min_size=1,
        max_size=8,
    ),
    ts=stamps,
)
def test_a_batch_from_new_many_encodes_as_its_packets_do(
    payloads: list[dict[str, Any]], ts: float
) -> None:
    """The common case, every packet sharing ts, kind, source and meta: the fast path."""
    batch = StreamPacket.new_many(
        "sensor", "src", range(len(payloads)), payloads, {"idempotency_key": "k"}, ts
    )
    assert _batch(batch) == _each(batch)


@settings(max_examples=400, deadline=None)
@given(value=values)
def test_plain_values_is_the_per_packet_check(value: Any) -> None:
    try:
        expected = _plain(value)
    except RecursionError:
        expected = False
    assert plain_values([value]) is expected
    assert plain_values([value, 1, {"a": value}]) is expected


def test_a_payload_holding_itself_is_left_to_the_per_packet_path() -> None:
    """Checked level by level, [a, a] with a = [a, a] doubles at each level: the check stops
    and the per-packet path refuses it, as it did before."""
    looped: list[Any] = []
    looped += [looped, looped]
    assert plain_values([looped]) is False
    batch = StreamPacket.new_many("sensor", "src", [0, 1], [{"v": 1}, {"v": looped}])
    assert _batch(batch) == _each(batch)


def test_nesting_deeper_than_the_levels_checked_is_encoded_one_by_one_the_same() -> None:
    nested: Any = 0
    for _ in range(MAX_LEVELS + 5):
        nested = [nested]
    assert plain_values([nested]) is False
    batch = StreamPacket.new_many("sensor", "src", [0, 1], [{"v": nested}, None])
    assert encode_batch_bytes(batch) == [encode_packet_bytes(p) for p in batch]


def test_non_finite_floats_anywhere_in_a_batch_are_refused() -> None:
    for bad in (math.nan, math.inf):
        batch = StreamPacket.new_many("sensor", "src", [0, 1], [{"v": 1.5}, {"v": [1, bad]}])
        with pytest.raises(Exception) as raised:
            encode_batch_bytes(batch)
        assert raised.type is _each(batch)


@pytest.mark.parametrize(
    "payloads",
    [
        [{"v": 1}, {MyStr("v"): 1}],  # a str subclass key beside an equal str one
        [{"v": 1}, {"v": {MyStr("k"): 1}}],  # the same, a level down
        [{"v": 1}, {"v": math.nan}],  # a flat dict's value that is not finite
        [{"v": 1}, {"v": b"bytes"}],  # a value msgspec writes but codec does not take
    ],
)
def test_flat_dict_payloads_holding_what_is_not_plain_take_codecs_path(
    payloads: list[dict[Any, Any]],
) -> None:
    """What is not plain among the keys or values of flat dict payloads (the usual batch,
    checked by the shortest path) still takes codec's path, with its bytes or its error."""
    assert plain_values(payloads) is False
    batch = StreamPacket.new_many("sensor", "src", range(len(payloads)), payloads)
    assert _batch(batch) == _each(batch)


def test_what_other_json_encoders_write_their_own_way_is_written_as_codec_writes_it() -> None:
    """NaN and infinities, Enum members (an int Enum whose value is not its int), an
    OrderedDict moved, subclasses with their own `items` or `__iter__` or `repr`, UUID,
    datetime, bytes, sets, dataclasses, ints beyond 64 bits, floats whose `repr` has an
    exponent (msgspec writes `1e16` for `1e+16`), lone surrogates, control characters,
    non-str keys, deep nesting, a list holding itself: in a payload, in a dict beside a float,
    in the meta. The cases a C encoder of the batch (bench/_batch_encoding_candidates.py) must
    meet too."""
    differ = [name for name, batch in hard_cases() if _batch(batch) != _each(batch)]
    assert differ == []
