"""C JSON encoders considered as the durable inbox's batch encoder: prototypes, not the runtime's.

Each candidate is an `encode_batch_bytes(batch)` that must return exactly what
`schnitzel.contract.batch_encoding.encode_batch_bytes` returns (codec's bytes for each packet,
codec's error for the first it refuses). It writes the payload column (and a meta) with a C
encoder in one call, after the same per-column checks of the other fields as main's encoder;
whatever the C encoder refuses, or might write otherwise than codec, goes to main's encoder.

Why each needs what it needs (measured, see docs/architecture.md):
- codec writes a plain packet with msgspec, any other with the standard library. Their floats
  differ where `repr` has an exponent (`1e+16` and `1e-05` against `1e16` and `0.00001`), and
  python-rapidjson and ssrjson write `repr`'s text. So a column whose text holds an exponent
  (`[0-9]e[-+][0-9]`) is left to main's encoder; without one their text is both codecs'.
- python-rapidjson (exact dicts and lists only, no NaN, `default` for tuples and FrozenMeta)
  refuses every subclass that codec writes otherwise, and writes int, float and str
  subclasses (IntEnum, StrEnum) as the standard library does. But it formats every float with
  `float.__repr__` (about 2,600 instructions a float): it does not pay.
- ssrjson writes `repr`'s text fast, but also writes dict and list subclasses in storage
  order (an OrderedDict after `move_to_end`, a list subclass's own `__iter__`: the standard
  library iterates them) and NaN as `NaN`. orjson, with subclasses, dataclasses and datetimes
  passed through to a `default` it does not get (so they raise), refuses those subclasses but
  writes NaN as null and plain Enum members and UUIDs natively, which ssrjson refuses. So
  orjson checks (its text is dropped) and ssrjson writes; `NaN` or `Infinity` in the text
  sends the column to main's encoder. orjson also refuses nesting deeper than 255, far from
  the depth at which codec's own recursion gives up, so nothing codec refuses for its depth
  is written.

The column is one C call: the values interleaved with a sentinel string (`"\\x7f"`), the text
split on `,"\\x7f",`. A value that holds the sentinel where the split would see it makes more
pieces than values, and the column goes to main's encoder.

Run `python bench/_batch_encoding_candidates.py --lib DIR` to check the candidates against
codec (hard cases, then generated packets); `bench_batch_encoding.py --candidates --lib DIR`
counts their instructions. Install them apart from the project, e.g.
`pip install --target DIR orjson ssrjson python-rapidjson`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from itertools import repeat
from operator import is_, is_not
from pathlib import Path
from typing import Any

import msgspec

from schnitzel.contract import batch_encoding
from schnitzel.contract.codec import ENCODING_VERSION, format_ts
from schnitzel.contract.packet import FrozenMeta, StreamPacket

Encoder = Callable[[Sequence[StreamPacket]], list[bytes]]
OwnPath = Callable[[Sequence[StreamPacket]], list[bytes] | None]
ColumnWriter = Callable[[list[Any]], bytes]
"""Writes a list of values as one JSON array, or raises for what it will not write."""

CANDIDATES = ("rapidjson", "orjson+ssrjson")
_SENTINEL = "\x7f"
_SPLIT = b',"\x7f",'
_END = len(b',"\x7f"]')
_EXPONENT = re.compile(rb"[0-9]e[-+][0-9]")
_encode = msgspec.json.Encoder().encode
_encode_lines = msgspec.json.Encoder().encode_lines
_join = b"".join


def load(name: str) -> tuple[Encoder, OwnPath]:
    """The candidate's `encode_batch_bytes`, and its own path alone (None where it leaves a
    batch to main's encoder); ImportError when its packages are missing."""
    writer = _rapidjson_writer() if name == "rapidjson" else _orjson_ssrjson_writer()
    return _batch_encoder(writer)


def _rapidjson_writer() -> ColumnWriter:
    rapidjson = import_module("rapidjson")

    class _Encoder(rapidjson.Encoder):  # type: ignore[name-defined]
        def default(self, obj: Any) -> Any:
            kind = type(obj)
            if kind is tuple:
                return list(obj)
            if kind is FrozenMeta:
                return dict(obj)
            raise TypeError(f"{kind.__name__} is left to main's encoder")

    encoder = _Encoder(
        ensure_ascii=False,
        number_mode=rapidjson.NM_NATIVE,
        bytes_mode=rapidjson.BM_NONE,
        iterable_mode=rapidjson.IM_ONLY_LISTS,
        mapping_mode=rapidjson.MM_ONLY_DICTS,
    )

    def write(values: list[Any]) -> bytes:
        text: str = encoder(values)
        if "\\u" in text:  # control characters: rapidjson's hex is upper case, codec's lower
            raise ValueError("control characters are left to main's encoder")
        return text.encode()

    return write


def _orjson_ssrjson_writer() -> ColumnWriter:
    orjson, ssrjson = import_module("orjson"), import_module("ssrjson")
    check = orjson.dumps
    options = (
        orjson.OPT_PASSTHROUGH_SUBCLASS
        | orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_DATETIME
    )
    write_bytes = ssrjson.dumps_to_bytes
    refused = ssrjson.JSONEncodeError

    def write(values: list[Any]) -> bytes:
        check(values[::2], None, options)  # without the sentinels
        try:
            text: bytes = write_bytes(values)
        except refused as exc:
            raise ValueError(str(exc)) from exc
        if b"NaN" in text or b"Infinity" in text:
            raise ValueError("a non-finite float is left to main's encoder")
        return text

    return write


def _batch_encoder(write: ColumnWriter) -> tuple[Encoder, OwnPath]:
    def column(values: Sequence[Any]) -> list[bytes] | None:
        """Each value's JSON, written by one call; None when codec might write it otherwise."""
        n = len(values)
        items = [_SENTINEL] * (2 * n)
        items[::2] = values
        text = write(items)
        if (b"e+" in text or b"e-" in text) and _EXPONENT.search(text):
            return None
        pieces = text[1:-_END].split(_SPLIT)
        return pieces if len(pieces) == n else None

    def bodies(batch: Sequence[StreamPacket]) -> list[bytes] | None:
        ids, stamps, kinds, sources, seqs, payloads, metas, refs = zip(*batch, strict=True)
        if (
            any(map(is_not, refs, repeat(None)))
            or set(map(type, ids)) != {str}
            or not all(ids)
            or set(map(type, seqs)) != {int}
            or min(seqs) < 0
        ):
            return None
        kind, source = _shared_string(kinds), _shared_string(sources)
        if kind is None or source is None or not all(map(is_, metas, repeat(metas[0]))):
            return None
        meta = metas[0]
        stamp = stamps[0]
        if (
            type(meta) not in (dict, FrozenMeta)
            or type(stamp) is not float
            or not all(map(is_, stamps, repeat(stamp)))
        ):
            return None
        meta_text = column([dict(meta)]) if meta else [b"{}"]
        if meta_text is None:
            return None
        body = column(payloads)
        if body is None:
            return None
        ts = format_ts(stamp)
        shared = _join(
            (
                b',"ts":',
                _encode(ts),
                b',"kind":',
                _encode(kind),
                b',"source_id":',
                _encode(source),
                b',"seq":',
            )
        )
        lines = [_encode_lines(ids).split(b"\n"), _encode_lines(seqs).split(b"\n")]
        head = b'{"v":' + _encode(ENCODING_VERSION) + b',"packet_id":'
        tail = b',"meta":' + meta_text[0] + b"}"
        return list(
            map(
                _join,
                zip(
                    repeat(head),
                    lines[0],
                    repeat(shared),
                    lines[1],
                    repeat(b',"payload":'),
                    body,
                    repeat(tail),
                    strict=False,  # the repeats are endless; the lines end with an empty one
                ),
            )
        )

    def own(batch: Sequence[StreamPacket]) -> list[bytes] | None:
        try:
            return bodies(batch) if batch else None
        except (TypeError, ValueError, OverflowError, OSError, RecursionError):
            return None

    def encode_batch_bytes(batch: Sequence[StreamPacket]) -> list[bytes]:
        written = own(batch)
        return batch_encoding.encode_batch_bytes(batch) if written is None else written

    return encode_batch_bytes, own


def _shared_string(column: tuple[Any, ...]) -> str | None:
    """The column's one non-empty `str` when every packet holds that object (the prototypes
    take `new_many` batches only; any other goes to main's encoder)."""
    first = column[0]
    if type(first) is not str or not first or not all(map(is_, column, repeat(first))):
        return None
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description="check the candidates against codec")
    parser.add_argument("--lib", help="a directory holding the candidates' packages")
    parser.add_argument("--examples", type=int, default=2000)
    args = parser.parse_args()
    if args.lib:
        sys.path.insert(0, args.lib)
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # the checkout's tests
    from _batch_encoding_exactness import check

    for name in CANDIDATES:
        try:
            encoder, own = load(name)
        except ImportError as exc:
            print(f"{name}: not installed ({exc})")
            continue
        print(f"{name}: {check(encoder, own, args.examples)}")


if __name__ == "__main__":
    main()
