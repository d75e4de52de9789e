"""`fuse`: joins packets of two or more streams by time. Each packet of the primary stream (a
camera event) comes out with the partner streams' readings nearest to its time, or linearly
interpolated at it (IMU, temperature), within a tolerance.

Streams are told apart by `source_id` and/or `kind` (a node has one inbox: edges into it
merge). The matching is `fusion.py`; docs/processing-windows.md describes the options.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_validator

from schnitzel import (
    NodeContext,
    PayloadProfile,
    PluginConfig,
    StreamPacket,
    StreamShape,
    Transform,
)
from schnitzel_plugins.processing.fields import FIELD_PATTERN, number_reader, value_reader
from schnitzel_plugins.processing.fusion import PartnerBuffer
from schnitzel_plugins.processing.handover import own_state, tagged

__all__ = ["Fuse", "FuseConfig", "PartnerConfig", "StreamMatch"]

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class StreamMatch(BaseModel):
    """Which packets belong to a stream: by source_id, kind, or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_id: str | None = Field(default=None, min_length=1, description="Packets of this source.")
    kind: str | None = Field(default=None, min_length=1, description="Packets of this kind.")

    @model_validator(mode="after")
    def _says_something(self) -> StreamMatch:
        if self.source_id is None and self.kind is None:
            raise ValueError("name the stream by source_id, kind or both")
        return self

    def matches(self, packet: StreamPacket) -> bool:
        return (self.source_id is None or packet.source_id == self.source_id) and (
            self.kind is None or packet.kind == self.kind
        )


class PartnerConfig(StreamMatch):
    """A partner stream: which packets, what to take from them, and how."""

    name: str = Field(
        pattern=NAME_PATTERN, description="Payload field of the output holding this partner."
    )
    fields: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Payload fields taken (dotted paths; numbers for interpolate); null: the "
        "whole payload (nearest only).",
    )
    strategy: Literal["nearest", "interpolate"] = Field(
        default="nearest", description="nearest reading, or linear interpolation at the time."
    )

    @model_validator(mode="after")
    def _fields_fit_strategy(self) -> PartnerConfig:
        if self.strategy == "interpolate" and self.fields is None:
            raise ValueError(f"partner {self.name!r}: interpolate needs `fields` (numbers)")
        for name in self.fields or ():
            if not re.match(FIELD_PATTERN, name):
                raise ValueError(f"partner {self.name!r}: {name!r} is not a payload field path")
        return self


class FuseConfig(PluginConfig):
    """Options of the fuse node."""

    primary: StreamMatch = Field(description="The stream each output packet comes from.")
    partners: list[PartnerConfig] = Field(
        min_length=1, description="The streams joined to it by time."
    )
    tolerance_s: StrictFloat = Field(
        default=0.3, gt=0, description="Farthest a partner reading may be from the primary's ts."
    )
    on_missing: Literal["emit", "wait"] = Field(
        default="wait",
        description="A partner without a reading at or after the primary's time yet: emit "
        "now with what there is, or wait for it up to wait_s.",
    )
    wait_s: StrictFloat = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="wait: longest a primary packet is held (wall clock) for its partners.",
    )
    max_readings: StrictInt = Field(
        default=1000, ge=2, description="Readings kept per partner (the oldest dropped first)."
    )
    max_waiting: StrictInt = Field(
        default=1000,
        ge=1,
        description="Primary packets held at most; over it the oldest goes out with what there is.",
    )

    @model_validator(mode="after")
    def _distinct_streams(self) -> FuseConfig:
        names = [p.name for p in self.partners]
        if len(set(names)) != len(names):
            raise ValueError("two partners share a name")
        return self


class Fuse(Transform):
    """Joins each primary packet with partner readings nearest its time, or interpolated."""

    name: ClassVar[str] = "fuse"
    Config: ClassVar[type[PluginConfig]] = FuseConfig

    @classmethod
    def output_shape(cls, config: Any, incoming: StreamShape | None) -> StreamShape:
        """The primary's packets (its kind when the config names it), enriched with plain
        JSON from the partners: the profile of what comes in."""
        profile = incoming.profile if incoming is not None else PayloadProfile.INPROC_ANY
        if config.primary.kind is not None:
            return StreamShape(frozenset({config.primary.kind}), profile)
        return StreamShape(incoming.kinds if incoming is not None else None, profile)

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self._partners = [
            PartnerBuffer(p.name, p.strategy, config.tolerance_s, config.max_readings)
            for p in config.partners
        ]
        self._readers = [
            [
                (f, number_reader(f) if p.strategy == "interpolate" else value_reader(f))
                for f in p.fields
            ]
            if p.fields is not None
            else None
            for p in config.partners
        ]
        self._waiting: deque[tuple[StreamPacket, float]] = deque()
        self._wait = config.on_missing == "wait"
        self.fused = 0
        self.incomplete = 0
        self.released_early = 0
        if self._wait:
            self.tick_interval_s = max(0.01, min(0.1, config.wait_s / 4))

    def process(self, packet: StreamPacket) -> list[StreamPacket]:
        config = self.config
        if config.primary.matches(packet):
            if not isinstance(packet.payload, dict):
                raise ValueError("fuse needs a JSON object payload on the primary stream")
            self._waiting.append((packet, time.monotonic()))
            out = []
            if len(self._waiting) > config.max_waiting:
                self.released_early += 1
                out.append(self._fuse(self._waiting.popleft()[0]))
            return out + self._release(time.monotonic())
        for partner, spec, readers in zip(
            self._partners, config.partners, self._readers, strict=True
        ):
            if spec.matches(packet):
                partner.add(packet.ts, self._values(packet, readers))
                return self._release(time.monotonic())
        raise ValueError(
            f"packet of source {packet.source_id!r}, kind {packet.kind!r} belongs to no "
            "stream of this fuse node (primary or partners); check their source_id and kind"
        )

    @staticmethod
    def _values(packet: StreamPacket, readers: list[tuple[str, Any]] | None) -> dict[str, Any]:
        if readers is None:
            payload = packet.payload
            return payload if isinstance(payload, dict) else {"value": payload}
        return {name: read(packet) for name, read in readers}

    def _release(self, now: float) -> list[StreamPacket]:
        """The waiting primaries, oldest first, whose partners are ready (or, waiting, whose
        time is up); with `on_missing: emit` all of them."""
        out = []
        waiting = self._waiting
        limit = self.config.wait_s
        while waiting:
            packet, since = waiting[0]
            ready = all(p.ready(packet.ts) for p in self._partners)
            if self._wait and not ready and now - since < limit:
                break
            waiting.popleft()
            out.append(self._fuse(packet))
        return out

    def _fuse(self, packet: StreamPacket) -> StreamPacket:
        payload = dict(packet.payload)
        missing = []
        t = packet.ts
        for partner in self._partners:
            match = partner.match(t)
            if match is None:
                payload[partner.name] = None
                missing.append(partner.name)
            else:
                payload[partner.name] = match.as_payload()
            partner.forget_before(t)
        if missing:
            self.incomplete += 1
        else:
            self.fused += 1
        return packet.evolve(payload=payload, meta={**packet.meta, "fused_missing": missing})

    def tick(self, now: float) -> Iterable[Any]:
        """Primaries whose wait is over."""
        return self._release(time.monotonic())

    def flush(self) -> Iterable[Any]:
        """Every waiting primary, with what there is, at the end of the run."""
        return self._release(float("inf"))

    def stats(self) -> dict[str, Any]:
        return {
            "fused": self.fused,
            "incomplete": self.incomplete,
            "waiting": len(self._waiting),
            "released_early": self.released_early,
            "readings": {p.name: len(p.times) for p in self._partners},
            "dropped_readings": {p.name: p.dropped for p in self._partners},
        }

    def export_state(self) -> Any:
        """The partner buffers and the waiting primaries, handed over as they are."""
        return tagged(
            self.name, {"version": 1, "partners": self._partners, "waiting": self._waiting}
        )

    def import_state(self, state: Any) -> None:
        """Take over the buffers of partners with the same name and fields; others start
        empty. The waiting primaries are kept. Another plugin's state (a window's) is not
        taken: the fuse starts empty and says so."""
        mine = own_state(self.name, state, self.context)
        if mine is None:
            return
        state = mine
        old = {p.name: p for p in state["partners"]}
        for index, (partner, spec) in enumerate(
            zip(self._partners, self.config.partners, strict=True)
        ):
            kept = old.get(partner.name)
            if kept is None:
                continue
            kept.strategy, kept.tolerance_s = partner.strategy, partner.tolerance_s
            kept.max_readings = partner.max_readings
            if spec.strategy == "interpolate" and kept.readings:
                wanted = set(spec.fields or ())
                if set(kept.readings[-1]) != wanted:
                    raise ValueError(
                        f"partner {partner.name!r} changes its fields; its readings cannot be "
                        "interpolated: keep the fields, or rename the partner to start it empty"
                    )
            self._partners[index] = kept
        self._waiting = state["waiting"]
