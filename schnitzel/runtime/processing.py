"""Calling a plugin on a micro-batch: the one place that decides how.

`choose_call` looks at a plugin once (when a node installs it) and returns the coroutine
function the node's worker awaits per batch: inline on the event loop, split across the
node's threads (a blocking plugin), or awaited at once in chunks (an async plugin), through
its batch method when it has one. Below it, one plain function per way a plugin can be
written; each returns an `Outcome` (what passes on, what was filtered, which packets failed),
so the worker counts and applies the error policy in one place. Plain functions, so the same
code runs inline and in a node's thread pool.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, Protocol

from schnitzel.contract.packet import StreamPacket
from schnitzel.errors import RuntimeStartError
from schnitzel.registry.plugin import Plugin, Processor, Sink, Source

__all__ = [
    "BatchCall",
    "Failure",
    "InlineCall",
    "Outcome",
    "Routed",
    "add_result",
    "checked_outputs",
    "choose_call",
    "deliver_each",
    "process_each",
    "run_batch_method",
    "takes_concurrency",
]

Failure = tuple[StreamPacket, Exception]

PLUGIN_ERRORS = (Exception, SystemExit)
"""What a plugin's call may raise that fails its packets, not the run: a plugin calling
`sys.exit()` ends neither the process nor the run (KeyboardInterrupt still does)."""


def as_failure(exc: BaseException) -> Exception:
    """The error a packet fails with: `exc`, or for a `sys.exit()` one that says so."""
    if isinstance(exc, Exception):
        return exc
    code = getattr(exc, "code", None)
    return RuntimeError(f"the plugin called sys.exit({code!r}): a plugin cannot end the run")


class Routed(NamedTuple):
    """A packet a plugin with several output ports sends to one named port."""

    port: str
    packet: StreamPacket


class Outcome:
    """What a plugin made of a batch."""

    __slots__ = ("failures", "filtered", "outputs", "routed")

    def __init__(self) -> None:
        self.outputs: list[Any] = []
        self.filtered = 0
        self.failures: list[Failure] = []
        self.routed = False
        """True when some output is a Routed packet (sent to a named port)."""

    def merge(self, other: Outcome) -> None:
        self.outputs.extend(other.outputs)
        self.filtered += other.filtered
        self.failures.extend(other.failures)
        self.routed = self.routed or other.routed


def process_each(process: Callable[[StreamPacket], Any], batch: list[StreamPacket]) -> Outcome:
    """Call `process` per packet; a raise fails only that packet."""
    outcome = Outcome()
    failures = outcome.failures
    append = outcome.outputs.append
    for packet in batch:
        try:
            result = process(packet)
        except PLUGIN_ERRORS as exc:
            failures.append((packet, as_failure(exc)))
            continue
        if result.__class__ is StreamPacket:  # the common case, kept inline
            append(result)
        else:
            add_result(outcome, packet, result)
    return outcome


def add_result(outcome: Outcome, packet: StreamPacket, result: Any) -> None:
    """Count what one `process(packet)` call returned: passed on, filtered or failed."""
    if result is None:
        outcome.filtered += 1
    elif result.__class__ is StreamPacket:
        outcome.outputs.append(result)
    else:
        try:
            items = checked_outputs(result)
        except Exception as exc:  # not the contract, or an iterable that raised midway
            outcome.failures.append((packet, exc))
            return
        if not items:
            outcome.filtered += 1
        outcome.outputs.extend(items)
        outcome.routed = outcome.routed or any(i.__class__ is Routed for i in items)


def checked_outputs(result: Any) -> list[Any]:
    """What a `process` call returned besides a packet or None: a Routed packet or an iterable
    of packets. Anything else is the plugin's mistake, reported on the input packet."""
    if result.__class__ is Routed:
        _check_routed(result)
        return [result]
    if isinstance(result, str | bytes | dict) or not hasattr(result, "__iter__"):
        raise TypeError(_BAD_RETURN.format(type(result).__name__))
    items = list(result)
    for item in items:
        if item.__class__ is Routed:
            _check_routed(item)
        elif item.__class__ is not StreamPacket:
            raise TypeError(_BAD_RETURN.format(f"an iterable holding {type(item).__name__}"))
    return items


def _check_routed(routed: Routed) -> None:
    """A Routed must name its port with a str and hold a packet: anything else would fail
    only where it is sent (a dict in a durable inbox), after the node counted it as passed on."""
    if routed.port.__class__ is not str:
        raise TypeError(
            _BAD_RETURN.format(f"a Routed to port of type {type(routed.port).__name__}")
        )
    if routed.packet.__class__ is not StreamPacket:
        raise TypeError(_BAD_RETURN.format(f"a Routed holding {type(routed.packet).__name__}"))


_BAD_RETURN = (
    "process() returned {}; return a StreamPacket, None, a Routed(port, packet) or an "
    "iterable of those"
)


def deliver_each(deliver: Callable[[StreamPacket], Any], batch: list[StreamPacket]) -> Outcome:
    """Call `deliver` per packet; a raise fails only that packet."""
    outcome = Outcome()
    for packet in batch:
        try:
            deliver(packet)
        except PLUGIN_ERRORS as exc:
            outcome.failures.append((packet, as_failure(exc)))
    return outcome


def run_batch_method(plugin: Processor | Sink, batch: list[StreamPacket]) -> Outcome:
    """The plugin's all-or-nothing batch method, falling back to one packet at a time when it
    raises so that the error lands on the packet that caused it."""
    if isinstance(plugin, Sink):
        try:
            plugin.deliver_batch(batch)
        except PLUGIN_ERRORS:
            return deliver_each(plugin.deliver, batch)
        return Outcome()
    given = batch.copy()  # the plugin may change the list it is given: keep the inputs
    try:
        outputs = plugin.process_batch(given)
    except PLUGIN_ERRORS:
        return process_each(plugin.process, batch)
    # The inputs came from an inbox, already checked: returned unchanged they are trusted;
    # anything else is checked.
    if not (outputs is given and _unchanged(given, batch)) and (
        type(outputs) is not list or not all(p.__class__ is StreamPacket for p in outputs)
    ):
        # not the contract (a generator, a tuple, Routed or None items, junk put into the
        # given list): one by one through process(), so a bad item fails on this node
        # instead of on the next
        return process_each(plugin.process, batch)
    outcome = Outcome()
    outcome.outputs = outputs
    outcome.filtered = max(len(batch) - len(outputs), 0)
    return outcome


def _unchanged(given: list[StreamPacket], batch: list[StreamPacket]) -> bool:
    """Whether `given` still holds exactly `batch`'s packets: a list comparison, in C, that
    short-cuts on identity (a few ns a packet). A packet replaced by another is compared
    field by field, which may raise (a numpy payload): then it changed."""
    try:
        return given == batch
    except Exception:
        return False


BatchCall = Callable[[list[StreamPacket]], Coroutine[Any, Any, Outcome]]
"""How a node hands a batch to its plugin (`choose_call`)."""


class Concurrency(Protocol):
    """Where a call reads how many calls at once it may run (a live throttle)."""

    concurrency: int


def takes_concurrency(kind: str, cls: type[Plugin]) -> bool:
    """True when `concurrency` means something for a plugin class on a node of `kind`."""
    if issubclass(cls, Source) or kind == "delay":
        return False
    method = cls.deliver if issubclass(cls, Sink) else cls.process  # type: ignore[attr-defined]
    return cls.blocking or inspect.iscoroutinefunction(method)


def choose_call(
    node_id: str, plugin: Plugin, pool: ThreadPoolExecutor | None, limits: Concurrency
) -> BatchCall:
    """How a node hands a batch to `plugin`, decided once when the plugin is installed:
    in `pool` when it blocks, awaited in up to `limits.concurrency` chunks when async."""
    if isinstance(plugin, Source):
        return _never
    method: Callable[[StreamPacket], Any]
    each: Callable[[Callable[[StreamPacket], Any], list[StreamPacket]], Outcome]
    if isinstance(plugin, Sink):
        method, each, batch_name = plugin.deliver, deliver_each, "deliver_batch"
    elif isinstance(plugin, Processor):
        method, each, batch_name = plugin.process, process_each, "process_batch"
    else:
        raise TypeError(f"node {node_id!r}: {type(plugin).__name__} is not a node plugin")
    has_batch = getattr(type(plugin), batch_name) is not getattr(
        Sink if isinstance(plugin, Sink) else Processor, batch_name
    )
    if (
        has_batch
        and inspect.iscoroutinefunction(getattr(plugin, batch_name))
        != (inspect.iscoroutinefunction(method))
    ) or (has_batch and isinstance(plugin, Processor) and _is_async(plugin.process_batch)):
        single = "deliver" if isinstance(plugin, Sink) else "process"
        raise RuntimeStartError(
            f"node {node_id!r}: plugin {plugin.name!r} has {_how(getattr(plugin, batch_name))}"
            f" {batch_name}() but {_how(method)} {single}(); make both plain or both "
            "async (process_batch is always plain); update the plugin's pack"
        )
    if inspect.iscoroutinefunction(method):
        each_awaited = _each_awaited(method, isinstance(plugin, Sink))
        if isinstance(plugin, Sink) and has_batch:
            each_awaited = _batch_awaited(plugin, each_awaited)
        return _at_once(limits, each_awaited)

    def sync_call(batch: list[StreamPacket]) -> Outcome:
        return run_batch_method(plugin, batch) if has_batch else each(method, batch)

    if pool is None:
        return InlineCall(sync_call)
    return _in_pool(limits, pool, sync_call)


class InlineCall:
    """A plain, non-blocking plugin's batch call, run on the event loop: awaitable as a
    `BatchCall`, and `plain` to call it without building a coroutine (the worker's fast
    path, once per batch)."""

    __slots__ = ("plain",)

    def __init__(self, plain: Callable[[list[StreamPacket]], Outcome]) -> None:
        self.plain = plain

    async def __call__(self, batch: list[StreamPacket]) -> Outcome:
        return self.plain(batch)


def _is_async(method: Any) -> bool:
    return inspect.iscoroutinefunction(method)


def _how(method: Any) -> str:
    return "an async" if _is_async(method) else "a plain"


async def _never(batch: list[StreamPacket]) -> Outcome:
    raise AssertionError("a source has no inbox to process")


def _each_awaited(method: Callable[[StreamPacket], Any], is_sink: bool) -> BatchCall:
    async def call(batch: list[StreamPacket]) -> Outcome:
        outcome = Outcome()
        for packet in batch:
            try:
                result = await method(packet)
            except PLUGIN_ERRORS as exc:
                outcome.failures.append((packet, as_failure(exc)))
                continue
            if not is_sink:
                add_result(outcome, packet, result)
        return outcome

    return call


def _batch_awaited(plugin: Sink, each: BatchCall) -> BatchCall:
    """An async sink's all-or-nothing `deliver_batch`, falling back to one packet at a time
    when it raises so that the error lands on the packet that caused it."""

    async def call(batch: list[StreamPacket]) -> Outcome:
        try:
            await plugin.deliver_batch(batch)  # type: ignore[misc]
        except PLUGIN_ERRORS:
            return await each(batch)
        return Outcome()

    return call


def _in_pool(
    limits: Concurrency, pool: ThreadPoolExecutor, call: Callable[[list[StreamPacket]], Outcome]
) -> BatchCall:
    """Split a batch into up to `limits.concurrency` chunks run at once in the node's
    threads; results keep input order."""

    async def run(batch: list[StreamPacket]) -> Outcome:
        loop = asyncio.get_running_loop()
        concurrency = limits.concurrency
        if concurrency == 1 or len(batch) == 1:
            return await loop.run_in_executor(pool, call, batch)
        outcomes = await asyncio.gather(
            *(loop.run_in_executor(pool, call, chunk) for chunk in _chunks(batch, concurrency))
        )
        return _merged(outcomes)

    return run


def _at_once(limits: Concurrency, call: BatchCall) -> BatchCall:
    """An async plugin's batch split into up to `limits.concurrency` chunks awaited at once
    (each chunk in order); results keep input order."""

    async def run(batch: list[StreamPacket]) -> Outcome:
        concurrency = limits.concurrency
        if concurrency == 1 or len(batch) == 1:
            return await call(batch)
        return _merged(await asyncio.gather(*(call(c) for c in _chunks(batch, concurrency))))

    return run


def _chunks(batch: list[StreamPacket], parts: int) -> list[list[StreamPacket]]:
    size = -(-len(batch) // parts)
    return [batch[i : i + size] for i in range(0, len(batch), size)]


def _merged(outcomes: list[Outcome]) -> Outcome:
    total = outcomes[0]
    for outcome in outcomes[1:]:
        total.merge(outcome)
    return total
