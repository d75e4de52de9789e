"""Whether a candidate batch encoder writes exactly codec's bytes and raises codec's errors:
hard cases one by one, then batches hypothesis generates (`_batch_encoding_candidates.py`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schnitzel.contract.codec import encode_packet_bytes
from schnitzel.contract.packet import StreamPacket
from tests.encoding_hard_cases import hard_cases
from tests.test_codec_paths import values

Encoder = Callable[[Sequence[StreamPacket]], list[bytes]]
OwnPath = Callable[[Sequence[StreamPacket]], list[bytes] | None]


def _result(encode: Encoder, batch: Sequence[StreamPacket]) -> list[bytes] | type[Exception]:
    try:
        return encode(batch)
    except Exception as exc:
        return type(exc)


def _each(batch: Sequence[StreamPacket]) -> list[bytes]:
    return [encode_packet_bytes(packet) for packet in batch]


floats = st.floats(allow_nan=True, allow_infinity=True) | st.floats(width=32)
payloads = values | st.dictionaries(st.text(max_size=4), floats | st.text(), max_size=7)
metas = st.none() | st.dictionaries(st.text(max_size=3), values, max_size=3)


def check(encode: Encoder, own: OwnPath, examples: int) -> str:
    """What the candidate does against codec: 'exact on ...' or the cases where it differs.
    `own` is the candidate's path alone: the cases it writes itself are counted."""
    cases = list(hard_cases())
    differ = [name for name, batch in cases if _result(encode, batch) != _result(_each, batch)]
    if differ:
        return "differs from codec on " + ", ".join(differ)
    written = sum(own(batch) is not None for _, batch in cases)

    @settings(max_examples=examples, deadline=None, database=None)
    @given(batch_payloads=st.lists(payloads, min_size=1, max_size=8), meta=metas)
    def same(batch_payloads: list[Any], meta: Any) -> None:
        batch = StreamPacket.new_many(
            "sensor", "src", range(len(batch_payloads)), batch_payloads, meta
        )
        assert _result(encode, batch) == _result(_each, batch)

    try:
        same()
    except AssertionError as exc:
        return f"differs from codec on a generated batch: {exc}"
    return (
        f"exact on {len(cases)} hard cases ({written} written by its own path, the rest left "
        f"to main's encoder) and {examples} generated batches"
    )
