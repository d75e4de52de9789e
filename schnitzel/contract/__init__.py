"""The packet contract (DESIGN 3.1): StreamPacket, PayloadRef, kinds, profiles, JSON codec.

Names are imported on first use: a client that needs only the run report's types
(`schnitzel ctl status`) does not load the codec and msgspec with them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schnitzel.contract.codec import (
        decode_packet,
        encode_packet,
        is_encoded_packet,
        packet_from_dict,
        packet_profile,
        packet_to_dict,
    )
    from schnitzel.contract.kinds import WELL_KNOWN_KINDS, PayloadProfile, weakest_profile
    from schnitzel.contract.packet import FrozenMeta, PayloadRef, StreamPacket, new_packet_id

__all__ = [
    "WELL_KNOWN_KINDS",
    "FrozenMeta",
    "PayloadProfile",
    "PayloadRef",
    "StreamPacket",
    "decode_packet",
    "encode_packet",
    "is_encoded_packet",
    "new_packet_id",
    "packet_from_dict",
    "packet_profile",
    "packet_to_dict",
    "weakest_profile",
]

_EXPORTS = {
    "decode_packet": "codec",
    "encode_packet": "codec",
    "is_encoded_packet": "codec",
    "packet_from_dict": "codec",
    "packet_profile": "codec",
    "packet_to_dict": "codec",
    "WELL_KNOWN_KINDS": "kinds",
    "PayloadProfile": "kinds",
    "weakest_profile": "kinds",
    "FrozenMeta": "packet",
    "PayloadRef": "packet",
    "StreamPacket": "packet",
    "new_packet_id": "packet",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'schnitzel.contract' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"schnitzel.contract.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
