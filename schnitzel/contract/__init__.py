"""The packet contract (DESIGN 3.1): StreamPacket, PayloadRef, kinds, profiles, JSON codec."""

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
