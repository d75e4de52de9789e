"""What the sensors pack's plugins emit: packets of the kind their `kind` option names, with
JSON-portable payloads."""

from __future__ import annotations

from typing import Any

from schnitzel import PayloadProfile, StreamShape


class KindFromConfig:
    """Put before the SDK base (`class Serial(KindFromConfig, Source)`): the node's output
    shape is its config's `kind`, JSON-portable."""

    @classmethod
    def output_shape(cls, config: Any, incoming: StreamShape | None) -> StreamShape:
        return StreamShape(frozenset({config.kind}), PayloadProfile.JSON_PORTABLE)
