"""StreamPacket: immutability, ids, idempotency keys and the portable JSON encoding."""

from __future__ import annotations

import itertools
import json
import math
import os
import pickle
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schnitzel.contract import (
    FrozenMeta,
    PayloadProfile,
    PayloadRef,
    StreamPacket,
    decode_packet,
    encode_packet,
    is_encoded_packet,
    packet_profile,
)
from schnitzel.contract.codec import format_ts, parse_ts
from schnitzel.contract.packet import EMPTY_META, _IdSource
from schnitzel.errors import PacketDecodeError, PacketNotPortable

REF = PayloadRef("file:///var/lib/cam/0001.jpg", "image/jpeg", 2048, "ab" * 32)


def test_packet_fields_cannot_be_reassigned() -> None:
    packet = StreamPacket.new("sensor", "imu", 0, {"x": 1})
    with pytest.raises(AttributeError):
        packet.kind = "frame"  # type: ignore[misc]


def test_packet_meta_is_read_only_and_not_shared_with_the_caller() -> None:
    meta = {"site": "a"}
    packet = StreamPacket.new("sensor", "imu", 0, meta=meta)
    meta["site"] = "b"
    assert packet.meta["site"] == "a"
    with pytest.raises(TypeError, match="read-only"):
        packet.meta["site"] = "c"  # type: ignore[index]
    with pytest.raises(TypeError, match="evolve"):
        packet.meta.update(x=1)


def test_evolve_keeps_the_id_and_freezes_new_meta() -> None:
    packet = StreamPacket.new("sensor", "imu", 3, 1.0)
    changed = packet.evolve(payload=2.0, meta={"unit": "m"})
    assert changed.packet_id == packet.packet_id
    assert changed.payload == 2.0 and packet.payload == 1.0
    assert isinstance(changed.meta, FrozenMeta)


def test_idempotency_key_defaults_to_source_and_seq() -> None:
    assert StreamPacket.new("sensor", "imu", 7).idempotency_key == "imu:7"


def test_idempotency_key_from_meta_overrides_the_default() -> None:
    packet = StreamPacket.new("sensor", "imu", 7, meta={"idempotency_key": "order-9"})
    assert packet.idempotency_key == "order-9"


def test_packet_ids_are_unique_within_a_process() -> None:
    ids = {StreamPacket.new("sensor", "s", n).packet_id for n in range(10_000)}
    assert len(ids) == 10_000


def test_packet_ids_differ_in_a_forked_child() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report the id it would hand out next
        os.write(write, StreamPacket.new("sensor", "s", 0).packet_id.encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 100).decode()
    os.waitpid(pid, 0)
    parent_id = StreamPacket.new("sensor", "s", 0).packet_id
    assert child_id.split("-")[0] != parent_id.split("-")[0]


SOME_AND_MANY = [1, 3, 7, 8, 40]
"""Batch sizes on both sides of where `new_many` switches to building in one C loop."""


@pytest.mark.parametrize("n", SOME_AND_MANY)
def test_new_many_gives_what_new_gives_with_one_ts_and_one_frozen_meta(n: int) -> None:
    payloads = [{"n": 3 + i} for i in range(n - 1)] + [None]
    seqs = range(3, 3 + n)
    made = StreamPacket.new_many("frame", "cam", seqs, payloads, meta={"site": "a"})
    assert [p.seq for p in made] == list(seqs)
    assert [p.payload for p in made] == payloads and made[0].payload is payloads[0]
    assert {(p.kind, p.source_id, p.payload_ref) for p in made} == {("frame", "cam", None)}
    assert type(made[0]) is StreamPacket and made[0] == StreamPacket(*made[0])
    assert len({p.ts for p in made}) == 1
    assert made[0].meta is made[-1].meta and type(made[0].meta) is FrozenMeta
    assert made[0].meta == {"site": "a"}
    assert [p.idempotency_key for p in made] == [f"cam:{seq}" for seq in seqs]
    assert StreamPacket.new_many("sensor", "s", range(n), [1] * n, ts=5.0)[-1].ts == 5.0
    assert StreamPacket.new_many("sensor", "s", range(n), [1] * n)[0].meta is EMPTY_META


@pytest.mark.parametrize("n", SOME_AND_MANY)
def test_new_many_ids_come_from_the_counter_new_uses(n: int) -> None:
    before = StreamPacket.new("sensor", "s", 0).packet_id
    made = StreamPacket.new_many("sensor", "s", range(n), [None] * n)
    after = StreamPacket.new("sensor", "s", 0).packet_id
    prefix, first = before.rsplit("-", 1)
    numbers = [int(p.packet_id.rsplit("-", 1)[1]) for p in made]
    assert {p.packet_id.rsplit("-", 1)[0] for p in made} == {prefix}
    assert numbers == [int(first) + 1 + i for i in range(n)]
    assert after == f"{prefix}-{int(first) + n + 1}"


def test_new_many_ids_stay_unique_when_threads_make_packets_at_once() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def make(into: list[str], many: bool) -> None:
        for _ in range(200):
            if many:
                batch = StreamPacket.new_many("sensor", "s", range(50), [None] * 50)
                into.extend(p.packet_id for p in batch)
            else:
                into.extend(StreamPacket.new("sensor", "s", n).packet_id for n in range(50))

    threads = [threading.Thread(target=make, args=(ids, n % 2 == 0)) for n, ids in enumerate(made)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [packet_id for ids in made for packet_id in ids]
    assert len(every) == len(set(every)) == 4 * 200 * 50


@pytest.mark.parametrize("start", [0, 1, 998, 999, 1000, 1999, 12_345, 999_999, 10**12 - 2])
@pytest.mark.parametrize("n", [1, 2, 256, 1001, 2500])
def test_ids_made_together_are_those_made_one_at_a_time(start: int, n: int) -> None:
    ids = _IdSource()
    ids.counter = itertools.count(start)
    assert ids.next_ids(n) == [f"{ids.prefix}-{number}" for number in range(start, start + n)]
    assert ids.next_id() == f"{ids.prefix}-{start + n}"


def test_ids_from_numbers_that_are_not_one_run_are_each_written_out() -> None:
    ids = _IdSource()
    ids.counter = itertools.count(995, 2)  # as if another thread took every other one
    assert ids.next_ids(4) == [f"{ids.prefix}-{number}" for number in (995, 997, 999, 1001)]
    assert ids.next_ids(0) == []


def test_new_many_refuses_payloads_that_do_not_match_the_seqs() -> None:
    with pytest.raises(ValueError, match="got 3 seqs and 2 payloads; give one payload per seq"):
        StreamPacket.new_many("sensor", "s", range(3), [1, 2])


def test_packet_with_meta_pickles_for_process_pools() -> None:
    packet = StreamPacket.new("sensor", "imu", 1, [1, 2], meta={"a": 1}, payload_ref=REF)
    restored = pickle.loads(pickle.dumps(packet))
    assert restored == packet
    assert isinstance(restored.meta, FrozenMeta)


def test_encoding_is_one_json_line_with_rfc3339_utc_time() -> None:
    packet = StreamPacket.new("sensor", "imu", 1, {"t": "a\nb"}, ts=0.5)
    line = encode_packet(packet)
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["ts"] == "1970-01-01T00:00:00.500000Z"
    assert obj["v"] == 1 and is_encoded_packet(obj)
    assert "payload_ref" not in obj


def test_non_json_payload_is_refused_with_the_packet_named() -> None:
    packet = StreamPacket.new("frame", "cam", 4, object())
    with pytest.raises(PacketNotPortable, match=r"cam.*seq 4.*payload_ref"):
        encode_packet(packet)
    assert packet_profile(packet) is PayloadProfile.INPROC_ANY


class _WithPixels:
    """A payload holding in-process data and offering the JSON to write in its place."""

    def __init__(self, pixels: bytes, boxes: list[int]) -> None:
        self.pixels = pixels
        self.boxes = boxes

    def portable_view(self) -> dict[str, object]:
        return {"boxes": self.boxes}


class _BadView:
    def portable_view(self) -> object:
        return object()


def test_a_payload_with_a_portable_view_is_written_as_that_view() -> None:
    packet = StreamPacket.new("detection", "cam", 1, _WithPixels(b"\x00" * 64, [1, 2, 3, 4]))
    line = encode_packet(packet)
    assert json.loads(line)["payload"] == {"boxes": [1, 2, 3, 4]}
    assert "pixels" not in line
    assert packet_profile(packet) is PayloadProfile.JSON_PORTABLE
    assert decode_packet(line).payload == {"boxes": [1, 2, 3, 4]}
    nested = StreamPacket.new("detection", "cam", 2, {"found": [_WithPixels(b"", [5])]})
    assert json.loads(encode_packet(nested))["payload"] == {"found": [{"boxes": [5]}]}


def test_a_portable_view_that_is_not_json_is_refused() -> None:
    with pytest.raises(PacketNotPortable, match="not JSON serializable"):
        encode_packet(StreamPacket.new("detection", "cam", 1, _BadView()))


def test_nan_payload_is_not_portable_json() -> None:
    with pytest.raises(PacketNotPortable):
        encode_packet(StreamPacket.new("sensor", "s", 0, math.nan))


def test_profiles_follow_the_payload() -> None:
    assert packet_profile(StreamPacket.new("sensor", "s", 0, {"a": 1})) is (
        PayloadProfile.JSON_PORTABLE
    )
    assert packet_profile(StreamPacket.new("frame", "s", 0, None, payload_ref=REF)) is (
        PayloadProfile.REF_PORTABLE
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ("[1]", "JSON object"),
        ('{"v": 1}', "missing packet_id"),
        ('{"v": 9, "packet_id": "a", "ts": 0, "kind": "k", "source_id": "s", "seq": 0}', "version"),
        (
            '{"v": 1, "packet_id": "a", "ts": "yesterday", "kind": "k", "source_id": "s",'
            ' "seq": 0}',
            "Invalid isoformat",
        ),
        (
            '{"v": 1, "packet_id": "a", "ts": "2026-01-01T00:00:00", "kind": "k", "source_id": "s",'
            ' "seq": 0}',
            "no UTC offset",
        ),
        ('{"v": 1, "packet_id": "a", "ts": 0, "kind": "k", "source_id": "s", "seq": -1}', "seq"),
        ('{"v": 1, "packet_id": "a", "ts": 0, "kind": "", "source_id": "s", "seq": 0}', "kind"),
        (
            '{"v": 1, "packet_id": "a", "ts": 0, "kind": "k", "source_id": "s", "seq": 0, "x": 1}',
            "unknown keys: x",
        ),
        (
            '{"v": 1, "packet_id": "a", "ts": 0, "kind": "k", "source_id": "s", "seq": 0,'
            ' "payload_ref": {"uri": "f"}}',
            "missing content_type",
        ),
    ],
)
def test_decoding_refuses_malformed_packets_with_the_reason(line: str, message: str) -> None:
    with pytest.raises(PacketDecodeError, match=message):
        decode_packet(line)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(
    payload=json_values,
    meta=st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    seq=st.integers(0, 2**62),
    ts=st.floats(0, 4_102_444_800),
    with_ref=st.booleans(),
)
def test_portable_packets_round_trip_through_json(
    payload: object, meta: dict[str, object], seq: int, ts: float, with_ref: bool
) -> None:
    packet = StreamPacket.new(
        "sensor", "src", seq, payload, meta=meta, payload_ref=REF if with_ref else None, ts=ts
    )
    line = encode_packet(packet)
    restored = decode_packet(line)
    assert restored._replace(ts=packet.ts) == packet
    assert abs(restored.ts - packet.ts) < 1e-6  # RFC 3339 keeps microseconds
    assert encode_packet(restored) == line


def test_numeric_ts_is_accepted_when_decoding() -> None:
    assert parse_ts(12.5) == 12.5
    assert parse_ts(format_ts(12.5)) == 12.5


def test_packets_from_before_the_year_1000_round_trip() -> None:
    packet = StreamPacket.new("sensor", "s", 0, ts=-61_000_000_000.25)  # year 36
    line = encode_packet(packet)
    assert '"ts":"0036-' in line
    assert decode_packet(line).ts == packet.ts


def test_unwritable_ts_is_blamed_on_ts_not_the_payload() -> None:
    with pytest.raises(PacketNotPortable, match=r"has a ts .* years 1 to 9999"):
        encode_packet(StreamPacket.new("sensor", "s", 0, ts=1e300))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"seq": -1}, "seq must be a whole number >= 0"),
        ({"seq": True}, "seq must be a whole number >= 0"),
        ({"kind": ""}, "kind must be a non-empty string"),
        ({"source_id": 3}, "source_id must be a non-empty string"),
        ({"payload_ref": "file:///x"}, "payload_ref must be a PayloadRef"),
    ],
)
def test_packets_that_could_not_be_read_back_are_not_written(
    changes: dict[str, object], reason: str
) -> None:
    packet = StreamPacket.new("sensor", "s", 0)._replace(**changes)
    with pytest.raises(PacketNotPortable, match=reason):
        encode_packet(packet)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (("", "a/b", 1, "ab" * 32), "uri must be a non-empty string"),
        (("file:///x", None, 1, "ab" * 32), "content_type must be a string"),
        (("file:///x", "a/b", -3, "ab" * 32), "size must be a whole number"),
        (("file:///x", "a/b", True, "ab" * 32), "size must be a whole number"),
        (("file:///x", "a/b", 1, "zz" * 32), "sha256 must be 64 hex digits"),
    ],
)
def test_payload_refs_check_their_fields(fields: tuple[object, ...], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        PayloadRef(*fields)  # type: ignore[arg-type]


def test_evolve_with_meta_none_gives_empty_meta() -> None:
    packet = StreamPacket.new("sensor", "s", 4, meta={"a": 1}).evolve(meta=None)
    assert packet.meta == {} and packet.idempotency_key == "s:4"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("packet_id", "other-1"),
        ("ts", 12.5),
        ("kind", "event"),
        ("source_id", "cam"),
        ("seq", 99),
        ("payload", {"y": 2}),
        ("meta", FrozenMeta({"unit": "m"})),
        ("payload_ref", REF),
    ],
)
def test_evolve_changes_only_the_field_given(field: str, value: object) -> None:
    packet = StreamPacket.new("sensor", "imu", 3, {"x": 1}, {"site": "a"}, None, 1.0)
    changed = packet.evolve(**{field: value})
    assert changed.__class__ is StreamPacket
    assert changed == packet._replace(**{field: value})
    assert getattr(changed, field) is value


def test_evolve_refuses_a_name_that_is_not_a_field() -> None:
    packet = StreamPacket.new("sensor", "imu", 3)
    with pytest.raises(TypeError, match="payload_typo"):
        packet.evolve(payload_typo=1)  # type: ignore[call-arg]


def test_with_payload_is_evolve_of_the_payload() -> None:
    packet = StreamPacket.new("sensor", "imu", 3, {"x": 1}, {"site": "a"}, REF, 1.0)
    changed = packet.with_payload({"x": 2})
    assert changed.__class__ is StreamPacket
    assert changed == packet.evolve(payload={"x": 2})
    assert changed.meta is packet.meta and packet.payload == {"x": 1}
