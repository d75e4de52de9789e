"""The graph file (version 2, DESIGN 3.2) as pydantic models.

These models check the shape of each part. Rules that span parts (ids, edges, plugins,
kinds, cycles) live in `schnitzel.validate`, which validates nodes and edges one by one so
that one bad node does not hide the problems of the others.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = [
    "EDGE_ENDPOINT_PATTERN",
    "GRAPH_VERSION",
    "NODE_ID_PATTERN",
    "ControllerSpec",
    "DurableSpec",
    "EdgeSpec",
    "GraphSpec",
    "InboxSpec",
    "LimitsSpec",
    "NodeKind",
    "NodeSpec",
    "OnError",
    "Overflow",
    "RuntimeSpec",
]

GRAPH_VERSION = 2
NODE_ID_PATTERN = r"^[a-z0-9_-]{1,64}$"
EDGE_ENDPOINT_PATTERN = r"^[a-z0-9_-]{1,64}(\.[a-z0-9_-]{1,64})?$"

NodeKind = Literal["source", "transform", "compute", "policy", "sink", "delay"]
"""What a node does in the graph. `delay` breaks feedback cycles with an initial value."""

Overflow = Literal["block", "drop_new", "drop_oldest"]
"""What a full inbox does with the next packet.

- `block`: the sender waits (backpressure reaches the source). Nothing is lost; throughput
  falls to the pace of the slowest node.
- `drop_new`: the arriving packet is dropped and counted. Keeps the oldest data.
- `drop_oldest`: the oldest queued packet is dropped and counted. Keeps the freshest data.
"""


OnError = Literal["skip", "dead_letter", "stop", "park"]
"""What a node does with a packet its plugin failed on. Every error is counted and kept
with its packet id whichever is chosen. The default is `park` for a node with a durable
inbox and `skip` for any other.

- `skip`: go on with the next packet (the failed one goes no further).
- `park`: keep the failed packet in the node's durable store, apart from the backlog, until an
  operator requeues or drops it (`schnitzel ctl parked`). Durable inboxes only.
- `dead_letter`: send the failed packet, with `meta.error` saying why, to a named sink.
- `stop`: stop the sources and drain the graph; the run ends with status error.
"""


class _Strict(BaseModel):
    # defer_build: a model's validator is built when first used, not at import (CLI start-up).
    # Defaults are plain values, not `default_factory=dict`: pydantic copies mutable defaults
    # per instance, and inspecting a builtin factory's signature costs ~9 ms of start-up.
    # Defaults that are models are made with `model_construct()` (the defaults, unvalidated):
    # calling the model would build its validator at import and undo defer_build.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class DurableSpec(_Strict):
    """A disk-backed inbox: packets are accepted only once committed to SQLite."""

    path: str = Field(min_length=1, description="SQLite file; relative to the graph file.")
    max_bytes: StrictInt = Field(
        default=1 << 30,
        gt=0,
        description="Size limit of the stored packets; over it the inbox's overflow applies.",
    )
    max_packets: StrictInt | None = Field(
        default=None,
        gt=0,
        description="Packet limit (none by default); over it the inbox's overflow applies.",
    )
    sync: Literal["full", "normal"] = Field(
        default="full",
        description="full: a committed packet survives a power loss; normal: it survives a "
        "crash of the process (kill -9) but the last commits may be lost with the power.",
    )
    max_parked: StrictInt = Field(
        default=10_000,
        gt=0,
        description="Most packets parked by `on_error: park`; over it the oldest parked "
        "are dropped and counted (parked_overflow).",
    )
    max_parked_bytes: StrictInt = Field(
        default=64 << 20,
        gt=0,
        description="Most bytes parked; over it the oldest parked are dropped and counted.",
    )
    process: StrictBool = Field(
        default=False,
        description="true: the store runs in a process of its own (SQLite never waits for the "
        "event loop's GIL: 1.1-1.3x the durable throughput on idle cores, 0.6-0.8x when other "
        "processes keep them busy; one process and about 17 MB more); false: on a thread.",
    )


class InboxSpec(_Strict):
    """A node's bounded inbox."""

    max: StrictInt = Field(default=1024, ge=1, le=10_000_000, description="Packets held in memory.")
    overflow: Overflow = Field(default="block", description="block | drop_new | drop_oldest")
    max_bytes: StrictInt | None = Field(
        default=None,
        ge=1,
        description="Payload bytes held in memory (frames: width x height x 3 each); over it "
        "the overflow applies. Null: bounded in packets only.",
    )
    durable: DurableSpec | None = Field(default=None, description="Back the inbox with disk.")

    @model_validator(mode="after")
    def _bytes_bound_memory_only(self) -> InboxSpec:
        if self.max_bytes is not None and self.durable is not None:
            raise ValueError(
                "max_bytes bounds an in-memory inbox; a durable inbox is bounded on disk by "
                "durable.max_bytes: move the limit there"
            )
        return self


class LimitsSpec(_Strict):
    """How far operators and the controller may turn a node's knobs while it runs, as
    `[lowest, highest]`. A knob not listed may be set anywhere the runtime allows."""

    rate_hz: tuple[float, float] | None = Field(
        default=None, description="A source's packets per second, e.g. [1, 200]."
    )
    sample_every: tuple[StrictInt, StrictInt] | None = Field(
        default=None, description="Keep 1 of every N packets arriving, e.g. [1, 10]."
    )
    concurrency: tuple[StrictInt, StrictInt] | None = Field(
        default=None, description="Calls at once (blocking or async plugins), e.g. [1, 8]."
    )

    @field_validator("rate_hz", "sample_every", "concurrency")
    @classmethod
    def _ordered_and_positive(cls, value: tuple[float, float] | None) -> Any:
        if value is None:
            return value
        low, high = value
        if not low > 0:
            raise ValueError(f"the lowest value must be above 0, not {low}")
        if low > high:
            raise ValueError(f"give [lowest, highest]: {low} is above {high}")
        return value


class NodeSpec(_Strict):
    """One node of the graph."""

    id: Annotated[str, Field(pattern=NODE_ID_PATTERN, description="Unique, [a-z0-9_-].")]
    kind: NodeKind
    plugin: str = Field(
        min_length=1, description="A registered plugin name, or module:Class (allowlisted)."
    )
    config: dict[str, Any] = Field(
        default={}, description="Checked against the plugin's config model."
    )
    inbox: InboxSpec = Field(default=InboxSpec.model_construct())
    concurrency: StrictInt = Field(
        default=1,
        ge=1,
        le=256,
        description="Calls at once for a blocking plugin (compute, file I/O) in its threads.",
    )
    on_error: OnError = Field(
        default="skip",
        description="When the plugin fails on a packet: skip (count it and go on), "
        "dead_letter (send it to the sink named in `dead_letter`), stop (drain and stop), "
        "park (keep it in the durable store for an operator; the default with a durable "
        "inbox, skip otherwise).",
    )
    dead_letter: str | None = Field(
        default=None,
        pattern=NODE_ID_PATTERN,
        description="The sink failed packets go to, with `on_error: dead_letter`.",
    )
    limits: LimitsSpec = Field(
        default=LimitsSpec.model_construct(),
        description="Bounds for live throttles (rate_hz, sample_every, concurrency).",
    )

    @model_validator(mode="before")
    @classmethod
    def _park_by_default_when_durable(cls, data: Any) -> Any:
        # A refused packet on a durable node is kept (parked), not discarded, unless the
        # graph says otherwise: DESIGN 3.3, nothing is dropped unless the graph says so.
        if isinstance(data, dict) and "on_error" not in data:
            inbox = data.get("inbox")
            durable = inbox.get("durable") if isinstance(inbox, dict) else None
            if isinstance(inbox, InboxSpec):
                durable = inbox.durable
            if durable is not None and data.get("kind") != "source":
                return {**data, "on_error": "park"}
        return data

    @field_validator("config", "inbox", "limits", mode="before")
    @classmethod
    def _empty_means_default(cls, value: Any) -> Any:
        # `config:` with nothing after it is YAML null; an operator means "no settings".
        return {} if value is None else value

    @model_validator(mode="after")
    def _limits_fit_the_node(self) -> NodeSpec:
        limits = self.limits
        if limits.rate_hz is not None and self.kind != "source":
            raise ValueError("limits.rate_hz applies to sources only (a source's pace)")
        if self.kind == "delay" and (limits.sample_every or limits.concurrency):
            raise ValueError("a delay node has no throttles: it keeps its loop going")
        if self.kind == "source" and (limits.sample_every or limits.concurrency):
            raise ValueError("a source is throttled by limits.rate_hz only")
        if limits.concurrency is not None:
            low, high = limits.concurrency
            if not low <= self.concurrency <= high:
                raise ValueError(
                    f"concurrency {self.concurrency} is outside limits.concurrency [{low}, {high}]"
                )
        return self


class EdgeSpec(_Strict):
    """A directed edge; either end may name a port as `node.port`."""

    source: str = Field(alias="from", pattern=EDGE_ENDPOINT_PATTERN)
    target: str = Field(alias="to", pattern=EDGE_ENDPOINT_PATTERN)


class ControllerSpec(_Strict):
    """The controller: watches the metrics and proposes throttle changes (docs/control.md).

    `controller: suggest` is short for `controller: {mode: suggest}`."""

    mode: Literal["off", "suggest", "auto"] = Field(
        default="off",
        description="off; suggest (operators approve or reject); auto (applied at once, "
        "within the limits)",
    )
    window_s: float = Field(
        default=10.0, gt=0, le=3600, description="How long pressure must last to act on it."
    )
    cooldown_s: float = Field(
        default=30.0, ge=0, le=86400, description="Quiet time for a node after any change."
    )
    verify_s: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="After a change: how long until it is judged (rolled back when worse).",
    )
    max_step: float = Field(
        default=0.5, gt=0, le=1, description="Largest change at once, as a fraction."
    )
    fill_threshold: float = Field(
        default=0.8, gt=0, le=1, description="Inbox fill that counts as pressure."
    )

    @model_validator(mode="before")
    @classmethod
    def _mode_alone(cls, value: Any) -> Any:
        return {"mode": value} if isinstance(value, str) else value


class RuntimeSpec(_Strict):
    """Graph-wide settings."""

    allow_modules: list[Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*$")]] = Field(
        default=[],
        description=(
            "Python modules (and their submodules) whose classes nodes may name as "
            "module:Class. Added to the SCHNITZEL_ALLOW_MODULES environment variable."
        ),
    )
    controller: ControllerSpec = Field(
        default=ControllerSpec.model_construct(),
        description="off | suggest | auto, or a mapping with mode and guardrails.",
    )


class GraphSpec(_Strict):
    """A whole graph file."""

    version: Literal[2] = Field(description="The graph file format; this runtime reads 2.")
    nodes: list[NodeSpec] = Field(min_length=1)
    edges: list[EdgeSpec] = Field(default=[])
    runtime: RuntimeSpec = Field(default=RuntimeSpec.model_construct())

    @field_validator("edges", "runtime", mode="before")
    @classmethod
    def _empty_means_default(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return [] if info.field_name == "edges" else {}
        return value
