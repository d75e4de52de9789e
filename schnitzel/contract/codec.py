"""The portable JSON encoding of a StreamPacket (docs/contracts/stream_packet.md).

    {"v": 1, "packet_id": "...", "ts": "2026-11-24T00:12:41.123456Z", "kind": "sensor",
     "source_id": "cam", "seq": 3, "payload": {...}, "meta": {...},
     "payload_ref": {"uri": ..., "content_type": ..., "size": ..., "sha256": ...}}

`payload_ref` is present only when set. `ts` is RFC 3339 UTC with microseconds; a decoder also
accepts a number of seconds since the epoch.

Two JSON codecs, one encoding. msgspec writes and reads plain JSON values (dicts with string
keys, lists, tuples, strings, finite floats, ints, booleans, None) several times faster than
the standard library; anything else, and anything msgspec would write or read differently
(NaN, which it writes as null; a subclass of a plain type; an object with a portable view;
a number out of a float's range, or an escaped lone surrogate, which it refuses to read),
takes the standard library path, so both produce the same values and the same refusals.

A payload object that is not JSON itself may offer a **portable view**: a method
`portable_view()` returning plain JSON. The encoder writes that view, so an object that keeps
in-process data (a detection result with its frame's pixels attached) crosses a durable inbox
or a network sink as JSON, without them; what comes back out of the store is the plain view.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import msgspec

from schnitzel.contract.kinds import PayloadProfile
from schnitzel.contract.packet import EMPTY_META, FrozenMeta, PayloadRef, StreamPacket
from schnitzel.errors import PacketDecodeError, PacketNotPortable

__all__ = [
    "ENCODING_VERSION",
    "decode_packet",
    "encode_packet",
    "encode_packet_bytes",
    "is_encoded_packet",
    "packet_from_dict",
    "packet_profile",
    "packet_to_dict",
]

ENCODING_VERSION = 1
_REQUIRED = ("packet_id", "ts", "kind", "source_id", "seq")
# datetime's range (years 1 to 9999): a ts outside it cannot be written as RFC 3339.
_TS_MIN, _TS_MAX = -62_135_596_800.0, 253_402_300_799.0
_KNOWN = frozenset((*_REQUIRED, "v", "payload", "meta", "payload_ref"))


def _portable_view(obj: Any) -> Any:
    """The JSON encoder's hook for objects it cannot write: their `portable_view()`, if any."""
    view = getattr(type(obj), "portable_view", None)
    if view is None:
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
    return view(obj)


_encoder = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_portable_view
)
_fast_encode = msgspec.json.Encoder().encode
_fast_decode = msgspec.json.Decoder().decode
_SCALARS = frozenset((str, int, bool, type(None)))
_isfinite = math.isfinite


def _plain(value: Any) -> bool:
    """True when `value` holds only plain JSON values (exact types, string keys, finite
    floats): what msgspec writes exactly as the standard library would. Leaves are checked
    inline, not by a call each: this runs for every packet a durable inbox takes in. `value`
    is `Any`, not `object`, so that no `cast` (a call, and a generic alias built) runs per value."""
    kind = type(value)
    if kind is dict or kind is FrozenMeta:
        for key, item in value.items():
            if type(key) is not str:
                return False
            of = type(item)
            if of in _SCALARS:
                continue
            if of is float:
                if not _isfinite(item):
                    return False
            elif not _plain(item):
                return False
        return True
    if kind in _SCALARS:
        return True
    if kind is float:
        return _isfinite(value)
    if kind is list or kind is tuple:
        for item in value:
            of = type(item)
            if of in _SCALARS:
                continue
            if of is float:
                if not _isfinite(item):
                    return False
            elif not _plain(item):
                return False
        return True
    return False


# (whole second, its text): consecutive packets share seconds. One tuple, swapped whole, so a
# thread never reads the second of one entry with the text of another.
_second_cache: tuple[int, str] = (-1, "")


def format_ts(ts: float) -> str:
    """RFC 3339 UTC with microseconds and a `Z`, as written in the portable encoding."""
    global _second_cache  # noqa: PLW0603 - see the comment on _second_cache
    second = math.floor(ts)
    micros = round((ts - second) * 1_000_000)
    if micros == 1_000_000:
        second, micros = second + 1, 0
    cached_second, text = _second_cache
    if cached_second != second:
        # strftime is the slow part of encoding; it runs once per second of packet time.
        # isoformat, not strftime: %Y does not zero-pad years before 1000 on Linux.
        text = datetime.fromtimestamp(second, UTC).replace(tzinfo=None).isoformat()
        _second_cache = (second, text)
    return f"{text}.{micros:06d}Z"


def parse_ts(value: object) -> float:
    """Seconds since the epoch from an RFC 3339 string (`Z` or offset) or a number."""
    if isinstance(value, bool):
        raise ValueError("ts must be an RFC 3339 string or a number, not a boolean")
    if isinstance(value, int | float):
        if not _TS_MIN <= value <= _TS_MAX:
            raise ValueError(f"ts {value!r} is outside the years 1 to 9999")
        return float(value)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(f"ts {value!r} has no UTC offset; write it with Z or +00:00")
        return parsed.timestamp()
    raise ValueError(f"ts must be an RFC 3339 string or a number, not {type(value).__name__}")


def packet_to_dict(packet: StreamPacket) -> dict[str, Any]:
    """The packet as a JSON-ready dict (the payload is not checked here; see `encode_packet`)."""
    out: dict[str, Any] = {
        "v": ENCODING_VERSION,
        "packet_id": packet.packet_id,
        "ts": format_ts(packet.ts),
        "kind": packet.kind,
        "source_id": packet.source_id,
        "seq": packet.seq,
        "payload": packet.payload,
        "meta": packet.meta,
    }
    ref = packet.payload_ref
    if ref is not None:
        out["payload_ref"] = {
            "uri": ref.uri,
            "content_type": ref.content_type,
            "size": ref.size,
            "sha256": ref.sha256,
        }
    return out


def field_problem(packet: StreamPacket) -> str | None:
    """What makes a packet's fields unfit for the portable encoding, or None.

    Encoding checks this too, so a packet written to disk can always be read back.
    """
    for name in ("packet_id", "kind", "source_id"):
        value = getattr(packet, name)
        if not isinstance(value, str) or not value:
            return f"{name} must be a non-empty string (got {value!r})"
    seq = packet.seq
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        return f"seq must be a whole number >= 0 (got {seq!r})"
    if not isinstance(packet.meta, dict):
        return f"meta must be a mapping (got {type(packet.meta).__name__})"
    if packet.payload_ref is not None and not isinstance(packet.payload_ref, PayloadRef):
        return f"payload_ref must be a PayloadRef (got {type(packet.payload_ref).__name__})"
    return None


def encode_packet(packet: StreamPacket) -> str:
    """One line of JSON (no newline inside). Raises PacketNotPortable for non-JSON payloads."""
    fast = _fast_or_none(packet)
    return fast.decode() if fast is not None else _json_text(packet, _portable_dict(packet))


def encode_packet_bytes(packet: StreamPacket) -> bytes:
    """`encode_packet` as UTF-8 bytes, what a store writes. Raises PacketNotPortable for
    non-JSON payloads, UnicodeEncodeError for a string no UTF-8 can hold (a lone surrogate)."""
    fast = _fast_or_none(packet)
    return fast if fast is not None else _json_text(packet, _portable_dict(packet)).encode()


def _fast_or_none(packet: StreamPacket) -> bytes | None:
    try:
        return _fast(packet)
    except RecursionError:  # nested deeper than the check recurses: the other path says so
        return None


def _fast(packet: StreamPacket) -> bytes | None:
    """msgspec's encoding of a packet of plain values, or None: then the standard library
    writes it, or says what is wrong with it. The checks of `field_problem`, on exact types
    (anything else takes the other path), in one function: it runs for every packet a
    durable inbox takes in."""
    packet_id, kind, source_id, seq = packet.packet_id, packet.kind, packet.source_id, packet.seq
    meta, payload = packet.meta, packet.payload
    if not (
        type(packet_id) is str
        and packet_id
        and type(kind) is str
        and kind
        and type(source_id) is str
        and source_id
        and type(seq) is int
        and seq >= 0
        and (type(meta) is FrozenMeta or type(meta) is dict)
        and (not meta or _plain(meta))
        and _plain(payload)
        and packet.payload_ref is None
    ):
        return None
    try:
        return _fast_encode(
            {
                "v": ENCODING_VERSION,
                "packet_id": packet_id,
                "ts": format_ts(packet.ts),
                "kind": kind,
                "source_id": source_id,
                "seq": seq,
                "payload": payload,
                "meta": meta,
            }
        )
    except (TypeError, ValueError, OverflowError, OSError):
        return None  # a ts out of range, a lone surrogate: the other path says so


def _portable_dict(packet: StreamPacket) -> dict[str, Any]:
    problem = field_problem(packet)
    if problem is not None:
        raise PacketNotPortable(f"packet {packet.packet_id!r} cannot be written: {problem}")
    try:
        return packet_to_dict(packet)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise PacketNotPortable(
            f"packet {packet.packet_id} ({packet.kind} from {packet.source_id!r}, seq "
            f"{packet.seq}) has a ts ({packet.ts!r}) that cannot be written as an RFC 3339 "
            "time: it must be seconds since the epoch within the years 1 to 9999"
        ) from exc


def _json_text(packet: StreamPacket, as_dict: dict[str, Any]) -> str:
    try:
        return _encoder.encode(as_dict)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise PacketNotPortable(
            f"packet {packet.packet_id} ({packet.kind} from {packet.source_id!r}, seq "
            f"{packet.seq}) cannot be written as JSON: {exc}. Make its payload and meta plain "
            "JSON (finite numbers, string keys), or store the payload's bytes elsewhere and "
            "set payload_ref, before it reaches a durable inbox or a network sink"
        ) from exc


def packet_profile(packet: StreamPacket) -> PayloadProfile:
    """The most portable profile this packet satisfies (tries to encode it)."""
    try:
        encode_packet(packet)
    except PacketNotPortable:
        return PayloadProfile.INPROC_ANY
    if packet.payload_ref is not None:
        return PayloadProfile.REF_PORTABLE
    return PayloadProfile.JSON_PORTABLE


def is_encoded_packet(obj: object) -> bool:
    """True when a decoded JSON object is a packet written by `encode_packet`."""
    return (
        isinstance(obj, dict)
        and type(obj.get("v")) is int
        and obj["v"] == ENCODING_VERSION
        and all(key in obj for key in _REQUIRED)
    )


def packet_from_dict(obj: dict[str, Any]) -> StreamPacket:
    """Restore a packet from its portable dict form, checking every field."""
    if not is_encoded_packet(obj):
        missing = [key for key in ("v", *_REQUIRED) if key not in obj]
        raise PacketDecodeError(
            f"not an encoded packet (version {ENCODING_VERSION}): missing {', '.join(missing)}"
            if missing
            else f"unsupported packet encoding version {obj.get('v')!r}; "
            f"this runtime reads version {ENCODING_VERSION}"
        )
    unknown = sorted(set(obj) - _KNOWN)
    if unknown:
        raise PacketDecodeError(f"encoded packet has unknown keys: {', '.join(unknown)}")
    where = f"encoded packet {obj['packet_id']!r}"
    meta = obj.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise PacketDecodeError(f"{where}: meta must be an object")
    try:
        packet = StreamPacket(
            obj["packet_id"],
            parse_ts(obj["ts"]),
            obj["kind"],
            obj["source_id"],
            obj["seq"],
            obj.get("payload"),
            FrozenMeta(meta) if meta else EMPTY_META,
            _ref_from_dict(obj.get("payload_ref")),
        )
    except ValueError as exc:
        raise PacketDecodeError(f"{where}: {exc}") from exc
    problem = field_problem(packet)
    if problem is not None:
        raise PacketDecodeError(f"{where}: {problem}")
    return packet


def _ref_from_dict(raw: object) -> PayloadRef | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("payload_ref must be an object")
    missing = [k for k in ("uri", "content_type", "size", "sha256") if k not in raw]
    if missing:
        raise ValueError(f"payload_ref is missing {', '.join(missing)}")
    return PayloadRef(raw["uri"], raw["content_type"], raw["size"], raw["sha256"])


def decode_packet(line: str | bytes) -> StreamPacket:
    """Inverse of `encode_packet`. Raises PacketDecodeError naming what is wrong."""
    try:
        obj = _fast_decode(line)
    # the standard library reads it, or names what is wrong; a str holding a lone surrogate
    # (as encode_packet writes one) cannot become the UTF-8 msgspec reads
    except (msgspec.DecodeError, UnicodeEncodeError):
        try:
            obj = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PacketDecodeError(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise PacketDecodeError(f"an encoded packet is a JSON object, not {type(obj).__name__}")
    return packet_from_dict(obj)
