"""What a plugin declares: its node kind, config model, ports, packet kinds and profiles.

The validator reads only these declarations, so a graph is checked without running anything.
A plugin class subclasses one of `Source`, `Transform`, `Compute`, `Policy`, `Sink` or
`Delay` and sets class attributes; see docs/plugins.md for a worked example.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import BaseModel, ConfigDict

from schnitzel.contract.kinds import PayloadProfile
from schnitzel.registry.apiversion import PLUGIN_API_VERSION
from schnitzel.registry.trouble import Trouble
from schnitzel.spec.model import NodeKind

if TYPE_CHECKING:
    import logging

    from schnitzel.contract.packet import StreamPacket
    from schnitzel.errors import BadRecord

__all__ = [
    "ANY_KIND",
    "SAME_AS_INPUT",
    "CheckContext",
    "Compute",
    "Delay",
    "EnvironmentProblem",
    "KindSet",
    "NodeContext",
    "Plugin",
    "PluginConfig",
    "PluginPack",
    "PluginRef",
    "Policy",
    "Processor",
    "SameAsInput",
    "Sink",
    "Source",
    "StreamShape",
    "Transform",
    "cannot_run",
]

KindSet = frozenset[str] | None
"""A set of packet kinds; `None` (ANY_KIND) means any kind, not known before run time."""

ANY_KIND: Final[KindSet] = None


class SameAsInput:
    """Marks an output that carries what came in (kinds or profile of the inputs)."""

    _instance: ClassVar[SameAsInput | None] = None

    def __new__(cls) -> SameAsInput:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "SAME_AS_INPUT"


SAME_AS_INPUT: Final = SameAsInput()


class PluginConfig(BaseModel):
    """Base of plugin config models: unknown keys are refused, values are immutable.

    Validators are built on first use (`defer_build`), so installed plugins a graph does not
    use cost nothing at start-up.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


@dataclass(frozen=True)
class StreamShape:
    """What flows on an edge, as far as the validator can know before running."""

    kinds: KindSet
    profile: PayloadProfile


@dataclass(frozen=True)
class CheckContext:
    """What `Plugin.check_environment` may look at: where the graph file lives."""

    graph_dir: Path

    def resolve(self, path: str) -> Path:
        """A path from a graph file, resolved against the graph file's directory."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.graph_dir / candidate


@dataclass(frozen=True)
class EnvironmentProblem:
    """Something outside the graph file that will stop a node: a missing input file, ..."""

    message: str
    hint: str
    config_key: str | None = None
    severity: str = "error"


def _no_event(level: str, message: str) -> None:
    """Where events go when no runtime listens (a plugin built by a test)."""


def _no_refs() -> frozenset[str]:
    """What is held when no runtime runs the plugin (a plugin built by a test): nothing."""
    return frozenset()


@dataclass(frozen=True)
class NodeContext:
    """What a running plugin knows about its place: its node id, where the graph file lives,
    the state directory, a logger named after the node, and whether its inbox is durable."""

    node_id: str
    graph_dir: Path
    state_dir: Path
    logger: logging.Logger = field(repr=False)
    durable: bool = False
    """The node's inbox is on disk: a packet the plugin fails on is lost to the error policy,
    while one it keeps retrying stays safe in the store. A sink delivering to a backend that
    can recover (HTTP) should retry until delivered rather than fail."""
    max_concurrency: int = 1
    """The most calls at once the node is given when it starts (the top of its
    `limits.concurrency`, else its `concurrency`): size connection pools for it. Without
    `limits.concurrency` a throttle may raise the node's concurrency further (to 256), unless
    the plugin declares `max_calls_at_once`: then this is exactly the highest value a throttle
    can set (the top of `limits.concurrency`, else 256, capped by `max_calls_at_once`)."""
    stopping: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    """Set when the run stops: a source that waits for input (follows a file, reads a
    device) waits on it (`stopping.wait(timeout)`) and returns once it is set."""
    event: Callable[[str, str], None] = field(default=_no_event, repr=False)
    """`event(level, message)`: tell the operator something that happened to this node (level
    info, warning or error), in the console's events, `ctl events` and the log. Safe to call
    from the node's threads."""
    trouble: Trouble = field(default_factory=Trouble, repr=False, compare=False)
    """What `report_trouble` recorded; the runtime reads it (registry/trouble.py)."""
    held_refs: Callable[[], frozenset[str]] = field(default=_no_refs, repr=False, compare=False)
    """The runtime's answer to `refs_held()`."""
    run_id: str = ""
    """The run (one `Runtime`) the node belongs to: the same for every node of it and for a
    plugin swapped or reloaded in, another for another `Runtime` in the same process. Key
    what a run may share between its plugins on it (a lock a swapped-in plugin takes while
    the old one still holds it)."""

    def resolve(self, path: str) -> Path:
        """A path from the node's config, resolved against the graph file's directory."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.graph_dir / candidate

    def report_trouble(self, reason: str) -> None:
        """Tell the operator about a problem the plugin handles itself: call it each time it
        retries or waits (`connection refused`, `HTTP 503 Service Unavailable; circuit
        open`). Keep `reason` short, in words, and the same while the problem is the same:
        repeats are counted as retries, and a new reason is news. The runtime shows it in the
        node's health reason, its recent errors, the event log and `ctl events`, at most a
        few times a minute however often it is called. Cheap and thread-safe: no I/O."""
        self.trouble.report(reason)

    def refs_held(self) -> frozenset[str]:
        """The blob URIs packets not yet delivered still point at, anywhere in the graph:
        what a blob store's retention must keep. A packet points at the blob its
        `payload_ref` names and, when it has one, at every ref object (`{"uri": ...,
        "sha256": ...}`) in its payload. Counted in memory inboxes, in the batches nodes
        hold, and in durable inboxes (queued, unconfirmed or parked rows, also those replayed
        from an earlier run). Not counted: what the calling node's own call is producing;
        keep those blobs yourself until the call returns. Thread-safe; from a node's thread
        it waits for one step of the event loop (`TimeoutError` after 30 s: the run stopped).
        Cost: a scan of the memory inboxes, so ask once per collection, not per blob."""
        return self.held_refs()

    def report_recovered(self) -> None:
        """The problem reported with `report_trouble` is over (a request went through).
        Cheap when there was none, so call it after every success."""
        self.trouble.recovered()


class Plugin:
    """Base of every plugin. Subclass one of the node-kind bases below, not this one.

    The runtime makes one instance per node: `Plugin(config, context)`, then awaits `open()`
    before the first packet and `close()` after the last. Processing methods are those of
    the node-kind base (`Source.packets`, `Transform.process`, `Sink.deliver`); each may be a
    plain or an `async def` method.
    """

    name: ClassVar[str]
    """The name graphs use in `plugin:`; [a-z0-9_-]. Unique per node kind."""
    node_kind: ClassVar[NodeKind]
    """Set by the node-kind base class."""
    api_version: ClassVar[str] = PLUGIN_API_VERSION
    """The plugin API version the plugin was written against (MAJOR.MINOR)."""
    Config: ClassVar[type[PluginConfig]] = PluginConfig
    """The pydantic model of the node's `config:`."""
    inputs: ClassVar[tuple[str, ...]] = ("in",)
    """Input port names; edges name one as `node.port`, the first is the default."""
    outputs: ClassVar[tuple[str, ...]] = ("out",)
    """Output port names; the first is the default."""
    accepts: ClassVar[KindSet] = ANY_KIND
    """Packet kinds the plugin can consume."""
    requires_portable: ClassVar[bool] = False
    """True when input leaves the process (network, disk): only portable payloads may come in."""
    emits: ClassVar[KindSet | SameAsInput] = SAME_AS_INPUT
    """Packet kinds the plugin produces."""
    emits_profile: ClassVar[PayloadProfile | SameAsInput] = SAME_AS_INPUT
    """Payload profile of what the plugin produces."""
    blocking: ClassVar[bool] = False
    """True when the plain (non-async) processing methods block (file or device I/O, heavy
    computation): the runtime then calls them in the node's own thread pool, `concurrency`
    calls at a time, so they never stall the event loop."""
    max_calls_at_once: ClassVar[int | None] = None
    """The most calls the plugin takes at once (a tracker that must see frames in order: 1);
    None: as many as the node's `concurrency` says. The runtime never runs more: a graph whose
    `concurrency` or `limits.concurrency` goes above it is refused at validation, and
    throttles (`ctl throttle`, the console, the controller) stop at it. Declare it when
    correctness rests on `context.max_concurrency`: with it, that is the highest value a
    throttle can set."""
    max_batch: int | None = None
    """The most packets one call is given (times the node's `concurrency`, which splits a
    batch between calls); None: up to the runtime's 256. Set it (on the class, or on the
    instance in `open`) when each packet takes long, as inference does: the node then shows
    progress between small batches, and what waits stays in the inbox, where its bounds and
    overflow apply, instead of in a call."""

    def __init__(self, config: Any, context: NodeContext) -> None:
        self.config = config
        self.context = context

    async def open(self) -> None:
        """Acquire resources (files, connections) before the first packet. Raise to refuse
        to start; the message reaches the operator."""

    async def close(self) -> None:
        """Release resources after the last packet; called even when the run failed."""

    def export_state(self) -> Any:
        """Optional: the state a hot swap hands to the plugin replacing this one (a dedup
        window, a counter, a controller's integral), as plain data. Called between two
        batches, after the last packet this instance handles; implement it together with
        `import_state` (docs/plugins.md, "Hot swap")."""
        raise NotImplementedError

    def import_state(self, state: Any) -> None:
        """Optional: take the state `export_state` of the replaced plugin returned, before
        the first packet. Raise to refuse it (the swap is then refused, nothing changes).
        Called only when both the old and the new plugin implement the hand-over."""
        raise NotImplementedError

    @classmethod
    def hands_over_state(cls) -> tuple[bool, bool]:
        """Whether the class implements (export_state, import_state)."""
        return cls.export_state is not Plugin.export_state, (
            cls.import_state is not Plugin.import_state
        )

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @classmethod
    def output_ports(cls, config: Any) -> tuple[str, ...]:
        """The output ports of a node with this config; default `outputs`. Override when the
        ports depend on the config (`route` names its ports in `routes`), and give the
        instance the same tuple as `self.outputs` (the runtime connects those)."""
        return cls.outputs

    @classmethod
    def output_shape(cls, config: Any, incoming: StreamShape | None) -> StreamShape:
        """What the node emits given its config and what reaches it (None for sources).

        The default follows `emits` and `emits_profile`. Override when the output depends on
        the config, as `synthetic` does with its `kind` option.
        """
        if isinstance(cls.emits, SameAsInput):
            kinds = incoming.kinds if incoming is not None else ANY_KIND
        else:
            kinds = cls.emits
        if isinstance(cls.emits_profile, SameAsInput):
            profile = incoming.profile if incoming is not None else PayloadProfile.INPROC_ANY
        else:
            profile = cls.emits_profile
        return StreamShape(kinds, profile)

    @classmethod
    def check_environment(cls, config: Any, context: CheckContext) -> list[EnvironmentProblem]:
        """Problems outside the graph file this node will hit (missing files, ...). Cheap."""
        return []


class Source(Plugin):
    """Produces packets; has no inputs."""

    node_kind: ClassVar[NodeKind] = "source"
    inputs: ClassVar[tuple[str, ...]] = ()
    reports_bad_records: ClassVar[bool] = False
    """True when `packets()` yields `BadRecord`s for input it cannot turn into packets: the
    node may then use `on_error: dead_letter` (docs/plugins.md, "Bad input")."""
    checkpoints_promptly: ClassVar[bool] = False
    """True when someone waits for `checkpoint` (a client for its answer): it is then also
    called as soon as a put into a durable inbox returned or a node's batch settled, not
    only at the next 0.1 s poll, so it may be called far more often. False keeps it to a few
    times a second."""

    def packets(
        self,
    ) -> Iterator[StreamPacket | BadRecord | None] | AsyncIterator[StreamPacket | BadRecord]:
        """The packets of this source, in order: a generator or an async generator.

        The runtime pulls from it only as fast as the graph accepts (backpressure), paced to
        `rate_hz()`; the source ends when the iterator does. A plain generator that blocks
        (reads a device or a file) must set `blocking = True`. Yield a `BadRecord` (with
        `reports_bad_records = True`) for a record that cannot become a packet, and go on:
        the node's `on_error` handles it. A blocking source about to wait for input yields
        None first: the runtime then hands on what it has pulled so far instead of waiting
        for a full batch. An exception raised here ends the source.
        """
        raise NotImplementedError(f"source plugin {self.name!r} does not implement packets()")

    def rate_hz(self) -> float | None:
        """Packets per second the runtime paces this source to; None: as fast as accepted.
        Operators change it live with `throttle`."""
        return None

    def checkpoint(self, upto: StreamPacket | BadRecord) -> None:
        """Optional: persist where to resume. Every packet this source emitted up to and
        including `upto` is now safe: delivered, filtered, dropped by the graph's policy, or
        committed to a durable inbox. `upto` is the very object `packets()` yielded: a
        `BadRecord` once the error policy has dealt with it (skipped, or its dead letter
        safe), so a bad record never blocks a resume. Persist nothing before the runtime says
        so, or a crash between the two loses data (docs/contracts/delivery.md).

        Called on a thread of the node's pool when `blocking`, else on the event loop; at most
        a few times a second (unless `checkpoints_promptly`) and once more at the end of a run
        that drained.
        """


class Processor(Plugin):
    """Base of the plugins that receive packets and pass packets on."""

    def process(self, packet: StreamPacket) -> StreamPacket | Iterable[StreamPacket] | None:
        """Handle one packet: return it (or a derived one) to pass it on, None to filter it
        out, or an iterable of packets. Raise to report an error on this packet; the node's
        `on_error` policy decides what happens next."""
        raise NotImplementedError(f"plugin {self.name!r} does not implement process()")

    def process_batch(self, packets: list[StreamPacket]) -> list[StreamPacket]:
        """Optional fast path: handle a whole micro-batch and return what passes on.

        Override only when batching saves work. It must be all-or-nothing: if it raises, the
        runtime runs the batch again packet by packet through `process` to pin the error on
        a packet. Inputs that produced no output are counted as filtered.
        """
        raise NotImplementedError

    tick_interval_s: float | None = None
    """Seconds between calls of `tick` (None, the default: never). An instance may set it
    from its config in `__init__`."""

    def tick(self, now: float) -> Iterable[Any]:
        """Optional: what time alone releases (a window whose watermark passed while no packet
        came). Called every `tick_interval_s` on the event loop between two batches (never
        while a paused node is paused), with the wall-clock time (`time.time()`); return
        packets or `Routed` packets to emit, or nothing."""
        return ()

    def flush(self) -> Iterable[Any]:
        """Optional: what the plugin still holds at the end of a run (open windows). Called
        once, on the event loop, after everything upstream was processed, when the run ends
        with a drain (sources exhausted, `--max-packets`, `--duration`, a first signal); not
        after a forced stop or a drain timeout. Return packets or `Routed` packets to emit."""
        return ()


class Transform(Processor):
    """Turns each packet into zero or more packets."""

    node_kind: ClassVar[NodeKind] = "transform"


class Compute(Processor):
    """Heavy work on packets (model inference); runs in the node's thread pool."""

    node_kind: ClassVar[NodeKind] = "compute"
    blocking: ClassVar[bool] = True


class Policy(Processor):
    """Decides what passes (dedup, rate limits, routing); hot-swappable by operators."""

    node_kind: ClassVar[NodeKind] = "policy"


class Sink(Plugin):
    """Consumes packets and delivers them somewhere; has no outputs."""

    node_kind: ClassVar[NodeKind] = "sink"
    outputs: ClassVar[tuple[str, ...]] = ()

    def deliver(self, packet: StreamPacket) -> Awaitable[None] | None:
        """Deliver one packet; return when it is done (for a network sink: confirmed).
        Raise to report an error on this packet (the node's `on_error` policy applies).
        May be `async def`."""
        raise NotImplementedError(f"sink plugin {self.name!r} does not implement deliver()")

    def deliver_batch(self, packets: list[StreamPacket]) -> Awaitable[None] | None:
        """Optional fast path: deliver a micro-batch, all-or-nothing. If it raises, the
        runtime delivers the batch again packet by packet to pin the error on a packet.
        May be `async def` (then `deliver` must be too)."""
        raise NotImplementedError


class Delay(Processor):
    """Breaks a feedback cycle: emits an initial value first, then what it receives."""

    node_kind: ClassVar[NodeKind] = "delay"

    def initial_packets(self) -> Iterable[StreamPacket]:
        """What the node emits at start, before any input: the value that starts the loop."""
        return ()

    def process(self, packet: StreamPacket) -> StreamPacket | Iterable[StreamPacket] | None:
        return packet


_RUN_METHODS: tuple[tuple[type[Plugin], str, str], ...] = (
    (Source, "packets", ""),
    (Sink, "deliver", ", packet"),
    (Processor, "process", ", packet"),
)
"""Per base class, the method the runtime calls on every plugin of it, and its arguments."""


def cannot_run(cls: type[Plugin]) -> str | None:
    """Why a plugin class cannot run: it does not implement the method its kind is called
    through (the base class's, which only raises, stands in); None when it can. The
    validator reports it, and the runtime refuses to start such a node, in these words."""
    for base, method, args in _RUN_METHODS:
        if issubclass(cls, base):
            if getattr(cls, method) is not getattr(base, method):
                return None
            return (
                f"plugin {cls.name!r} declares itself but does not implement {method}(), so it "
                f"cannot run: its class needs `def {method}(self{args})` "
                "(docs/plugins.md#at-run-time); install a release of its pack that has it"
            )
    return None


@dataclass(frozen=True)
class PluginRef:
    """A plugin a pack names without importing it: `PluginRef("video_file", "source",
    "mypack.video:VideoFile")`.

    The registry imports `target` (`module:Class`) only when a graph uses the plugin (or
    `schnitzel plugins` lists them all), so a pack of many plugins, or of plugins whose
    modules import heavy libraries, costs nothing to validate a graph that does not use them.
    The class must declare the same `name` and `node_kind`; it is checked as a class in
    `plugins` is, when it is imported. Since plugin API 1.1.
    """

    name: str
    node_kind: NodeKind
    target: str
    """`module:Class`, imported on first use."""


@dataclass(frozen=True)
class PluginPack:
    """What a `schnitzel.plugins` entry point names: a pack of plugin classes.

    In a pack's pyproject.toml::

        [project.entry-points."schnitzel.plugins"]
        mypack = "mypack.plugins:PACK"

    `plugins` holds classes, or `PluginRef`s that name a class to import on first use.
    """

    name: str
    plugins: tuple[type[Plugin] | PluginRef, ...]
    description: str = ""
