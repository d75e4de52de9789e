"""A batch of packets in the portable encoding at once: what a durable inbox writes.

`encode_batch_bytes(batch)` returns exactly `[encode_packet_bytes(p) for p in batch]`
(contract/codec.py), byte for byte, and raises what that would raise. It is faster for the
batches sources and nodes hand over, whose packets share what they were made with (one `ts`,
one `kind`, one `source_id`, one `meta` object from `StreamPacket.new_many`): every check of
codec's msgspec path is made per column of the batch (a C loop over the packets, not Python
bytecode per packet), each distinct `ts` is formatted once, each distinct `meta` checked once,
and the payloads are checked level by level across the whole batch (`plain_values`). A batch
that does not pass every check, or that msgspec refuses, is encoded packet by packet by
codec, which writes it or names what is wrong with it.
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

_isfinite = math.isfinite
_values = dict.values


class _Body(msgspec.Struct, gc=False):
    """An encoded packet's fields in codec's order: msgspec writes a Struct as the same JSON
    object as the dict codec builds, and builds it from columns without a Python loop."""

    v: int
    packet_id: str
    ts: str
    kind: str
    source_id: str
    seq: int
    payload: Any
    meta: Any


_encoder = msgspec.json.Encoder()
_encode = _encoder.encode


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
        or not _nonempty_strings(kinds)
        or not _nonempty_strings(sources)
        or set(map(type, seqs)) != _INT
        or min(seqs) < 0
    ):
        return None
    distinct_metas = _distinct(metas)
    if not all(type(meta) in _MAPPINGS for meta in distinct_metas):
        return None
    if not plain_values([*payloads, *distinct_metas]):
        return None
    texts = _ts_texts(stamps)
    if texts is None:
        return None
    bodies = map(_Body, repeat(ENCODING_VERSION), ids, texts, kinds, sources, seqs, payloads, metas)
    return list(map(_encode, bodies))


def _same(column: tuple[Any, ...]) -> bool:
    """Every item of `column` is its first, as in a batch from `new_many`: one identity test
    per packet, no hashing or comparing."""
    return all(map(is_, column, repeat(column[0])))


def _nonempty_strings(column: tuple[Any, ...]) -> bool:
    if _same(column):
        return type(column[0]) is str and bool(column[0])
    return set(map(type, column)) == _STR and all(column)


def _distinct(metas: tuple[Any, ...]) -> list[Any]:
    """The distinct meta objects (by identity: equal is not enough, `1 == True`)."""
    if _same(metas):
        return [metas[0]]
    return list(dict(zip(map(id, metas), metas, strict=True)).values())


def _ts_texts(stamps: tuple[Any, ...]) -> Iterable[str] | None:
    """Each packet's `ts` as written, formatted once per distinct value; None when one is not
    a float (codec decides what an int or another number becomes)."""
    if _same(stamps):
        return repeat(format_ts(stamps[0])) if type(stamps[0]) is float else None
    if set(map(type, stamps)) != _FLOAT:
        return None
    texts = {stamp: format_ts(stamp) for stamp in set(stamps)}
    return map(texts.__getitem__, stamps)


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
