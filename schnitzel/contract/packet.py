"""StreamPacket: the one unit of data every node consumes and produces.

A packet is immutable so that fan-out can hand the same object to every downstream node.
It is a `NamedTuple` because that is the cheapest immutable record CPython offers (see
`bench/bench_packet.py`); treat it as a record, not as a sequence.
"""

from __future__ import annotations

import functools
import itertools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice, repeat
from typing import Any, NamedTuple, NoReturn

__all__ = ["FrozenMeta", "PayloadRef", "StreamPacket", "new_packet_id"]


class FrozenMeta(dict[str, Any]):
    """A read-only dict for `StreamPacket.meta`.

    A dict subclass (not `MappingProxyType`) so it stays picklable for process pools and is
    written by `json` without a copy.
    """

    __slots__ = ()

    def _read_only(self, *_args: object, **_kwargs: object) -> NoReturn:
        raise TypeError("packet meta is read-only; derive a packet with packet.evolve(meta=...)")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[type[FrozenMeta], tuple[dict[str, Any]]]:
        return (FrozenMeta, (dict(self),))


EMPTY_META = FrozenMeta()
_HEX = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class PayloadRef:
    """A portable handle to a blob that lives outside the packet.

    `uri` uses the scheme that says where the bytes are: `file:///abs/path`, `shm://name`,
    or any URI a downstream node can fetch. `sha256` lets a reader verify what it fetched.
    """

    uri: str
    content_type: str
    size: int
    sha256: str

    def __post_init__(self) -> None:
        if not (isinstance(self.uri, str) and self.uri):
            raise ValueError("payload_ref.uri must be a non-empty string")
        if not isinstance(self.content_type, str):
            raise ValueError("payload_ref.content_type must be a string such as image/jpeg")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise ValueError("payload_ref.size must be a whole number of bytes >= 0")
        sha = self.sha256
        if not (isinstance(sha, str) and len(sha) == 64 and _HEX.issuperset(sha)):
            raise ValueError("payload_ref.sha256 must be 64 hex digits")

    @property
    def scheme(self) -> str:
        """`file`, `shm`, `http`, ...: the part of `uri` before `:`."""
        return self.uri.split(":", 1)[0].lower()


class _IdSource:
    """Process-unique packet ids: a random prefix and a counter, re-seeded in forked children.

    `StreamPacket.new` reads `prefix` and `counter` from here on every call, so a re-seed
    (after fork) takes effect at once."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix = os.urandom(6).hex()
        self.counter = itertools.count()

    def next_id(self) -> str:
        return f"{self.prefix}-{next(self.counter)}"

    def next_ids(self, n: int) -> list[str]:
        """The next `n` ids, exactly as `n` calls of `next_id` would give them.

        `islice` takes the numbers from the counter in one C call, so another thread cannot
        take one in between and they come in one run (checked: else each is formatted
        alone). A run is written by blocks of a thousand: the id of 12345 is the shared
        `"<prefix>-12"` plus the ready-made `"345"`, one concatenation instead of formatting
        an int, a third less per id."""
        prefix = self.prefix
        numbers = list(islice(self.counter, n))
        if not numbers or numbers[-1] - numbers[0] != n - 1:
            return [f"{prefix}-{number}" for number in numbers]
        ids: list[str] = []
        number, stop = numbers[0], numbers[0] + n
        while number < stop:
            high, low = divmod(number, 1000)
            upto = min(stop - high * 1000, 1000)
            if high:
                ids += map(f"{prefix}-{high}".__add__, _three_digits()[low:upto])
            else:  # below 1000: no leading zeros
                ids += [f"{prefix}-{each}" for each in range(low, upto)]
            number = high * 1000 + upto
        return ids


@functools.cache
def _three_digits() -> tuple[str, ...]:
    """ "000" to "999", made on first use (not at import)."""
    return tuple(f"{low:03d}" for low in range(1000))


_ids = _IdSource()
_MANY = 8
"""From this many packets on, `new_many` builds them in one C loop (below it, one by one is
cheaper: measured on CPython 3.11)."""
_tuple_new = tuple.__new__
_time = time.time
os.register_at_fork(after_in_child=_ids.reseed)


class _Keep:
    """The default of `evolve`'s parameters: keep the field as it is."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "KEEP"


_KEEP: Any = _Keep()


def new_packet_id() -> str:
    """A packet id unique across processes and restarts (48 random bits + a counter)."""
    return _ids.next_id()


class StreamPacket(NamedTuple):
    """One unit of data on an edge of the graph.

    Build packets with `StreamPacket.new(...)`, which fills `packet_id` and `ts` and freezes
    `meta`. Fields cannot be reassigned; the payload object itself is shared by every node a
    packet fans out to, so nodes must not mutate it: derive a new packet with `evolve`.
    """

    packet_id: str
    """Unique per packet, across processes and restarts."""
    ts: float
    """When the packet was created: seconds since the Unix epoch, UTC."""
    kind: str
    """What the packet carries: frame, detection, event, sensor, audio, telemetry, ..."""
    source_id: str
    """The stream this packet belongs to; `seq` counts within it."""
    seq: int
    """Position in the stream of `source_id`, from 0."""
    payload: Any = None
    """The data. JSON for portable streams; any object inside the process."""
    meta: FrozenMeta = EMPTY_META
    """JSON-serialisable annotations. `meta["idempotency_key"]` overrides the dedup key."""
    payload_ref: PayloadRef | None = None
    """Where the payload's bytes live, for payloads too large to carry inline."""

    @staticmethod
    def new(
        kind: str,
        source_id: str,
        seq: int,
        payload: Any = None,
        meta: dict[str, Any] | None = None,
        payload_ref: PayloadRef | None = None,
        ts: float | None = None,
    ) -> StreamPacket:
        """A new packet with a fresh id, `ts` now unless given, and a frozen copy of `meta`."""
        # The hot path of every source. tuple.__new__ directly skips the generated
        # NamedTuple.__new__ (a third less time); a staticmethod skips binding the class.
        return _tuple_new(
            StreamPacket,
            (
                f"{_ids.prefix}-{next(_ids.counter)}",
                _time() if ts is None else ts,
                kind,
                source_id,
                seq,
                payload,
                EMPTY_META if not meta else FrozenMeta(meta),
                payload_ref,
            ),
        )

    @staticmethod
    def new_many(
        kind: str,
        source_id: str,
        seqs: Sequence[int],
        payloads: Sequence[Any],
        meta: dict[str, Any] | None = None,
        ts: float | None = None,
    ) -> list[StreamPacket]:
        """The packets `new` gives for each `seq` of `seqs` with the payload at the same
        place in `payloads`, made together: fresh ids, one `ts` for all (now unless given:
        they are created at the same moment), and one frozen copy of `meta` they share. For a
        source that makes many packets at a time (`synthetic`): about half of `new`'s cost
        per packet. Since plugin API 1.2."""
        if len(payloads) != len(seqs):
            raise ValueError(
                f"new_many got {len(seqs)} seqs and {len(payloads)} payloads; give one "
                "payload per seq"
            )
        when = _time() if ts is None else ts
        frozen = EMPTY_META if not meta else FrozenMeta(meta)
        if len(seqs) < _MANY:
            # A paced source makes one packet per wake-up: the C path below costs ~3 us to
            # set up, four times the tuple it builds; one at a time, as `new` does, instead.
            prefix, counter = _ids.prefix, _ids.counter
            made = []
            for seq, payload in zip(seqs, payloads, strict=True):
                made.append(
                    _tuple_new(
                        StreamPacket,
                        (
                            f"{prefix}-{next(counter)}",
                            when,
                            kind,
                            source_id,
                            seq,
                            payload,
                            frozen,
                            None,
                        ),
                    )
                )
            return made
        # Each packet is one C call (`map` over `zip`: no bytecode per packet); the ids come
        # from the counter `new` uses.
        fields = zip(
            _ids.next_ids(len(seqs)),
            repeat(when),
            repeat(kind),
            repeat(source_id),
            seqs,
            payloads,
            repeat(frozen),
            repeat(None),
            strict=False,  # the repeats are endless; ids, seqs and payloads are as long
        )
        return list(map(_tuple_new, repeat(StreamPacket), fields))

    @property
    def idempotency_key(self) -> str:
        """The dedup key: `meta["idempotency_key"]` when set, else `"<source_id>:<seq>"`."""
        key = self.meta.get("idempotency_key")
        return key if isinstance(key, str) else f"{self.source_id}:{self.seq}"

    def evolve(
        self,
        *,
        packet_id: str = _KEEP,
        ts: float = _KEEP,
        kind: str = _KEEP,
        source_id: str = _KEEP,
        seq: int = _KEEP,
        payload: Any = _KEEP,
        meta: dict[str, Any] | None = _KEEP,
        payload_ref: PayloadRef | None = _KEEP,
    ) -> StreamPacket:
        """A copy with the fields given changed. `meta` given as a dict is frozen; `meta=None`
        or an empty dict gives the shared empty `FrozenMeta`.

        The packet id is kept unless given: a transform that changes a packet passes the same
        logical packet on, and its idempotency key stays that of the source packet. A name
        that is not a field raises `TypeError`.
        """
        # The hot path of every transform: one tuple built from the old fields, no
        # NamedTuple._replace (a dict of changes, map, _make and a check): 2-3x faster.
        keep = _KEEP  # a local: read eight times
        old_id, old_ts, old_kind, old_source, old_seq, old_payload, old_meta, old_ref = self
        if meta is keep:
            meta = old_meta
        elif meta.__class__ is not FrozenMeta:
            meta = FrozenMeta(meta) if meta else EMPTY_META
        return _tuple_new(
            StreamPacket,
            (
                old_id if packet_id is keep else packet_id,
                old_ts if ts is keep else ts,
                old_kind if kind is keep else kind,
                old_source if source_id is keep else source_id,
                old_seq if seq is keep else seq,
                old_payload if payload is keep else payload,
                meta,
                old_ref if payload_ref is keep else payload_ref,
            ),
        )

    def with_payload(self, payload: Any) -> StreamPacket:
        """`evolve(payload=payload)`, for the commonest derivation at the least cost: a map
        stage's new payload, every other field kept. Since plugin API 1.1."""
        packet_id, ts, kind, source_id, seq, _, meta, payload_ref = self
        return _tuple_new(
            StreamPacket, (packet_id, ts, kind, source_id, seq, payload, meta, payload_ref)
        )
