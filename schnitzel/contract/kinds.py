"""Packet kinds and payload profiles: the vocabulary shared by plugins and the validator."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["WELL_KNOWN_KINDS", "PayloadProfile", "weakest_profile"]

WELL_KNOWN_KINDS: frozenset[str] = frozenset(
    {"frame", "detection", "event", "sensor", "audio", "telemetry"}
)
"""Kinds the built-in packs use. Any other lowercase name is allowed; these are conventions."""


class PayloadProfile(StrEnum):
    """What a payload can cross.

    Anything that crosses a durable inbox or a network sink must be portable; the validator
    refuses a graph that routes an `inproc_any` stream into one.
    """

    INPROC_ANY = "inproc_any"
    """Any Python object (a numpy frame, a model handle). Lives only inside this process."""

    JSON_PORTABLE = "json_portable"
    """The payload is plain JSON (dicts, lists, str, int, finite float, bool, None)."""

    REF_PORTABLE = "ref_portable"
    """The bytes live elsewhere (file, shared memory, URI); the packet carries a `payload_ref`."""

    @property
    def portable(self) -> bool:
        """True when packets of this profile may be written to disk or sent over a network."""
        return self is not PayloadProfile.INPROC_ANY


def weakest_profile(profiles: list[PayloadProfile]) -> PayloadProfile:
    """The profile a merge of streams guarantees: portable only if every input is."""
    if not profiles or any(p is PayloadProfile.INPROC_ANY for p in profiles):
        return PayloadProfile.INPROC_ANY
    if all(p is PayloadProfile.REF_PORTABLE for p in profiles):
        return PayloadProfile.REF_PORTABLE
    return PayloadProfile.JSON_PORTABLE
