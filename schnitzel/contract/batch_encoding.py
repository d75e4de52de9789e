"""A batch of packets in the portable encoding at once: what a durable inbox writes.

`encode_batch_bytes(batch)` returns exactly `[encode_packet_bytes(p) for p in batch]`
(contract/codec.py), byte for byte, and raises what that would raise. It is faster for the
batches sources and nodes hand over, whose packets share what they were made with (one `ts`,
one `kind`, one `source_id`, one `meta` object from `StreamPacket.new_many`): every check of
codec's msgspec path is made per column of the batch (a C loop over the packets, not Python
bytecode per packet), each distinct `ts` is formatted once, each distinct `meta` checked once,
and the payloads are checked level by level across the whole batch (`plain_values`). Then
what the packets share is encoded once, each other field by one msgspec call for the whole
batch, and each packet's pieces joined by a C loop (`_joined`). A batch that does not pass
every check, or that msgspec refuses, is encoded packet by packet by codec, which writes it
or names what is wrong with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import chain, compress, repeat
from operator import is_, is_not
from typing import Any

import msgspec

from schnitzel.contract.codec import ENCODING_VERSION, encode_packet_bytes, format_ts
from schnitzel.contract.packet import FrozenMeta, StreamPacket

__all__ = ["encode_batch_bytes", "plain_values"]

_SCALARS = frozenset((str, int, bool, type(None)))
_PLAIN = _SCALARS | {float, dict, FrozenMeta, list, tuple}
_MAPPINGS = (dict, FrozenMeta)
_STR = frozenset((str,))
_INT = frozenset((int,))
_FLOAT = frozenset((float,))
MAX_LEVELS = 100
MAX_VALUES = 1 << 20
"""Values nested deeper, or more of them in all, are left to codec's per-packet path: it
writes them or refuses them (a payload that holds itself) in time linear in the packet, where
a check across a batch, level by level, could double at every level of such a payload."""

Column = tuple[Any, ...]
"""One field of every packet of a batch, in order (a tuple: never a field's own value)."""

_isfinite = math.isfinite
_values = dict.values


_encoder = msgspec.json.Encoder()
_encode = _encoder.encode
_encode_lines = _encoder.encode_lines
_join = b"".join
_KEYS = ("v", "packet_id", "ts", "kind", "source_id", "seq", "payload", "meta")
"""An encoded packet's fields, in codec's order."""


def encode_batch_bytes(batch: Sequence[StreamPacket]) -> list[bytes]:
    """The bodies `encode_packet_bytes` gives each packet of `batch`, in order. Raises as that
    does (PacketNotPortable, UnicodeEncodeError) for the first packet that cannot be written."""
    if batch:
        try:
            bodies = _plain_bodies(batch)
        except (TypeError, ValueError, OverflowError, OSError, RecursionError):
            bodies = None  # a ts out of range, a lone surrogate, an int msgspec cannot write
        if bodies is not None:
            return bodies
    return list(map(encode_packet_bytes, batch))


def _plain_bodies(batch: Sequence[StreamPacket]) -> list[bytes] | None:
    """msgspec's bodies of a batch of plain packets, or None when one is not plain (codec's
    `_fast` checks, per column)."""
    ids, stamps, kinds, sources, seqs, payloads, metas, refs = zip(*batch, strict=True)
    if (
        any(map(is_not, refs, repeat(None)))
        or set(map(type, ids)) != _STR
        or not all(ids)
        or set(map(type, seqs)) != _INT
        or min(seqs) < 0
    ):
        return None
    kind, source = _strings(kinds), _strings(sources)
    if kind is None or source is None:
        return None
    distinct_metas = _distinct(metas)
    if not all(type(meta) in _MAPPINGS for meta in distinct_metas):
        return None
    # Apart: payloads of one type (dicts, usually) are checked by the shortest path.
    if not plain_values(distinct_metas) or not plain_values(list(payloads)):
        return None
    texts = _ts_texts(stamps)
    if texts is None:
        return None
    meta = distinct_metas[0] if len(distinct_metas) == 1 else metas
    return _joined(
        len(batch),
        (
            ("v", ENCODING_VERSION),
            ("packet_id", ids),
            ("ts", texts),
            ("kind", kind),
            ("source_id", source),
            ("seq", seqs),
            ("payload", payloads),
            ("meta", meta),
        ),
    )


def _joined(n: int, fields: Iterable[tuple[str, Any]]) -> list[bytes]:
    """The JSON objects of `n` packets whose fields (key, value) are given in order: a value
    is one for every packet, or a `Column` of one per packet. A shared value is encoded once,
    into the text around it; a column by one msgspec call (a line per value: JSON never holds
    a raw newline), then split. Each packet's pieces are joined by one C call: no bytecode,
    and no msgspec call, per packet."""
    pieces: list[Any] = []
    text = b"{"
    for key, value in fields:
        text += b'"' + key.encode() + b'":'
        if type(value) is not tuple:
            text += _encode(value)
        else:
            lines = _encode_lines(value).split(b"\n")
            lines.pop()  # after the last newline
            pieces += (repeat(text), lines)
            text = b""
        text += b","
    text = text[:-1] + b"}"
    if not pieces:
        return [text] * n
    pieces.append(repeat(text))
    return list(map(_join, zip(*pieces, strict=False)))  # the repeats are endless


def _same(column: Column) -> bool:
    """Every item of `column` is its first, as in a batch from `new_many`: one identity test
    per packet, no hashing or comparing."""
    return all(map(is_, column, repeat(column[0])))


def _strings(column: Column) -> str | Column | None:
    """The column's one string when every packet shares it, else the column itself; None
    when one is not a non-empty `str`."""
    if _same(column):
        first = column[0]
        return first if type(first) is str and first else None
    return column if set(map(type, column)) == _STR and all(column) else None


def _distinct(metas: Column) -> list[Any]:
    """The distinct meta objects (by identity: equal is not enough, `1 == True`)."""
    if _same(metas):
        return [metas[0]]
    return list(dict(zip(map(id, metas), metas, strict=True)).values())


def _ts_texts(stamps: Column) -> str | Column | None:
    """The `ts` of every packet as written: one text when they share it, else each packet's
    (formatted once per distinct value); None when one is not a float (codec decides what an
    int or another number becomes)."""
    if _same(stamps):
        return format_ts(stamps[0]) if type(stamps[0]) is float else None
    if set(map(type, stamps)) != _FLOAT:
        return None
    texts = {stamp: format_ts(stamp) for stamp in set(stamps)}
    return tuple(map(texts.__getitem__, stamps))


def plain_values(values: list[Any]) -> bool:
    """True when every value holds only plain JSON values (exact dicts and FrozenMeta with
    string keys, lists, tuples, strings, ints, finite floats, booleans, None): codec's
    `_plain` of each, checked one nesting level at a time across all of them."""
    budget = MAX_VALUES
    for _level in range(MAX_LEVELS):
        budget -= len(values)
        if budget < 0:
            return False
        kinds = set(map(type, values))
        if kinds <= _SCALARS:
            return True
        if not kinds <= _PLAIN:
            return False
        if len(kinds) == 1:  # one container type (all payloads dicts, usually) or all floats
            (kind,) = kinds
            if kind is float:
                return all(map(_isfinite, values))
            if kind in _MAPPINGS:
                if not set(map(type, chain.from_iterable(values))) <= _STR:
                    return False
                values = list(chain.from_iterable(map(_values, values)))
            else:
                values = list(chain.from_iterable(values))
            continue
        of_kind = list(map(type, values))
        nested: list[Any] = []
        for kind in kinds - _SCALARS:
            members = compress(values, map(is_, of_kind, repeat(kind)))
            if kind is float:
                if not all(map(_isfinite, members)):
                    return False
            elif kind in _MAPPINGS:
                mappings = list(members)
                if not set(map(type, chain.from_iterable(mappings))) <= _STR:
                    return False
                nested.extend(chain.from_iterable(map(_values, mappings)))
            else:
                nested.extend(chain.from_iterable(members))
        values = nested
    return False
