"""The packet encoding has two JSON codecs (msgspec for plain values, the standard library for
the rest): whatever a packet holds, both paths give the same values back and the same
refusals as the standard library alone did."""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schnitzel.contract.codec import (
    _encoder,
    decode_packet,
    encode_packet,
    encode_packet_bytes,
    packet_to_dict,
)
from schnitzel.contract.packet import StreamPacket
from schnitzel.errors import PacketDecodeError, PacketNotPortable


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclass
class Viewed:
    x: int

    def portable_view(self) -> dict[str, Any]:
        return {"viewed": self.x}


class MyStr(str):
    pass


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.sampled_from([Colour.RED, Level.HIGH, b"raw", MyStr("sub"), Viewed(2), {1, 2}])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(
            st.text(max_size=5) | st.integers(-3, 3) | st.booleans(), inner, max_size=4
        )
    ),
    max_leaves=12,
)


def _standard(packet: StreamPacket) -> str | type[Exception]:
    """What the standard library alone writes for `packet`, or the error it raises."""
    try:
        return _encoder.encode(packet_to_dict(packet))
    except (TypeError, ValueError, OverflowError):
        return PacketNotPortable


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b and type(a) is type(b))


@settings(max_examples=400, deadline=None)
@given(payload=values, meta=st.dictionaries(st.text(max_size=4), values, max_size=3))
def test_both_paths_write_what_the_standard_library_writes(payload: Any, meta: Any) -> None:
    packet = StreamPacket.new("sensor", "src", 1, payload, meta, None, 1_700_000_000.25)
    expected = _standard(packet)
    if expected is PacketNotPortable:
        with pytest.raises(PacketNotPortable):
            encode_packet(packet)
        with pytest.raises(PacketNotPortable):
            encode_packet_bytes(packet)
        return
    assert isinstance(expected, str)
    text = encode_packet(packet)
    assert json.loads(text) == json.loads(expected)
    try:
        body = expected.encode()
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 holds it, as before
        with pytest.raises(UnicodeEncodeError):
            encode_packet_bytes(packet)
        return
    assert json.loads(encode_packet_bytes(packet)) == json.loads(body)
    back = decode_packet(encode_packet_bytes(packet))
    assert back.payload == decode_packet(body).payload
    assert back.meta == decode_packet(body).meta


def test_non_finite_floats_are_refused_not_written_as_null() -> None:
    for bad in (math.nan, math.inf, -math.inf):
        packet = StreamPacket.new("sensor", "src", 1, {"v": [1, {"x": bad}]}, None, None, 1.0)
        with pytest.raises(PacketNotPortable, match="JSON"):
            encode_packet_bytes(packet)


def test_objects_msgspec_would_write_its_own_way_take_the_standard_path() -> None:
    """A portable view wins over msgspec's own dataclass encoding; an IntEnum is its value; a
    plain Enum, bytes and a set are refused as before."""
    viewed = StreamPacket.new("sensor", "src", 1, Viewed(7), None, None, 1.0)
    assert json.loads(encode_packet_bytes(viewed))["payload"] == {"viewed": 7}
    level = StreamPacket.new("sensor", "src", 1, {"l": Level.HIGH}, None, None, 1.0)
    assert json.loads(encode_packet_bytes(level))["payload"] == {"l": 3}
    for refused in (Colour.RED, b"raw", {1, 2}):
        packet = StreamPacket.new("sensor", "src", 1, {"x": refused}, None, None, 1.0)
        with pytest.raises(PacketNotPortable):
            encode_packet_bytes(packet)


def test_what_msgspec_cannot_read_the_standard_library_still_reads() -> None:
    """A number beyond a float's range and an escaped lone surrogate: msgspec refuses them,
    the standard library reads them (as it always did)."""
    base = packet_to_dict(StreamPacket.new("sensor", "src", 1, None, None, None, 1.0))
    for raw, expected in (("1e400", math.inf), ('"\\ud800"', "\ud800")):
        text = json.dumps(base)[:-1] + "}"
        text = text.replace('"payload": null', f'"payload": {raw}')
        assert _same(decode_packet(text).payload, expected)
    with pytest.raises(PacketDecodeError, match="not JSON"):
        decode_packet(b'{"v": 1, \xff}')


def test_a_line_given_as_text_with_a_lone_surrogate_is_read_as_before() -> None:
    """`encode_packet` writes a lone surrogate as itself (ensure_ascii=False); reading that
    text back went to msgspec, which raised UnicodeEncodeError instead of reading it."""
    packet = StreamPacket.new("sensor", "src", 1, {"text": "a\ud800b"}, None, None, 1.0)
    assert decode_packet(encode_packet(packet)).payload == {"text": "a\ud800b"}


def test_a_payload_nested_deeper_than_python_writes_is_not_portable() -> None:
    """It raised RecursionError (both paths), which no caller of the encoder expects."""
    nested: Any = 0
    for _ in range(3000):
        nested = [nested]
    packet = StreamPacket.new("sensor", "src", 1, {"v": nested}, None, None, 1.0)
    with pytest.raises(PacketNotPortable, match="recursion"):
        encode_packet_bytes(packet)
    with pytest.raises(PacketNotPortable, match="recursion"):
        encode_packet(packet)
