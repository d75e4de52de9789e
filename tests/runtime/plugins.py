"""Plugins the runtime tests run through `module:Class` (allowlisted per graph).

Each does one thing a test needs to provoke: fail on chosen packets, be slow, block a
thread, record what reached it, refuse to open. Records are kept per node id in `RECORDS`.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from schnitzel import BadRecord, PluginConfig, Routed, Sink, Source, StreamPacket, Transform
from schnitzel.contract.kinds import PayloadProfile
from schnitzel.registry.plugin import Compute, NodeContext

RECORDS: dict[str, list[StreamPacket]] = defaultdict(list)
"""What each Recorder node received, in order."""
GATES: dict[str, threading.Event] = defaultdict(threading.Event)
"""Per node id: a Gated sink waits for its gate before delivering anything."""
DOWN: set[str] = set()
"""Node ids whose Backend sink is down: it keeps retrying until the id is removed."""
MOST_AT_ONCE: dict[str, int] = defaultdict(int)
TICKS: dict[str, int] = defaultdict(int)
"""Per Ticking node id: how often the runtime called its `tick`."""
"""Per Recorder node id: the most deliveries it had in progress at the same time."""
_AT_ONCE: dict[str, int] = defaultdict(int)


class FailEvery(PluginConfig):
    every: int = Field(default=0, ge=0, description="Fail on packets whose seq % every == 0.")
    delay_s: float = Field(default=0.0, ge=0)


class Flaky(Transform):
    """Raises on packets whose seq is a multiple of `every` (0: never)."""

    name: ClassVar[str] = "flaky"
    Config: ClassVar[type[PluginConfig]] = FailEvery

    def process(self, packet: StreamPacket) -> StreamPacket:
        every = self.config.every
        if every and packet.seq % every == 0:
            raise ValueError(f"seq {packet.seq} is a multiple of {every}")
        return packet


class Recorder(Sink):
    """Keeps every packet it receives in RECORDS[node id]; optionally slow (async)."""

    name: ClassVar[str] = "recorder"
    Config: ClassVar[type[PluginConfig]] = FailEvery

    async def deliver(self, packet: StreamPacket) -> None:
        node_id = self.context.node_id
        if self.config.delay_s:
            _AT_ONCE[node_id] += 1
            MOST_AT_ONCE[node_id] = max(MOST_AT_ONCE[node_id], _AT_ONCE[node_id])
            try:
                await asyncio.sleep(self.config.delay_s)
            finally:
                _AT_ONCE[node_id] -= 1
        every = self.config.every
        if every and packet.seq % every == 0:
            raise ValueError(f"refused seq {packet.seq}")
        RECORDS[self.context.node_id].append(packet)


class Gated(Sink):
    """Delivers nothing until GATES[node id] is set (blocks its thread: a stalled backend)."""

    name: ClassVar[str] = "gated"
    blocking: ClassVar[bool] = True

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self.test = _TEST[0]

    def deliver(self, packet: StreamPacket) -> None:
        wait_for_gate(self.context.node_id, self.test)
        RECORDS[self.context.node_id].append(packet)


class SlowCompute(Compute):
    """Sleeps `delay_s` per packet in a thread (a model too heavy for the loop)."""

    name: ClassVar[str] = "slow-compute"
    Config: ClassVar[type[PluginConfig]] = FailEvery

    def process(self, packet: StreamPacket) -> StreamPacket:
        time.sleep(self.config.delay_s)
        return packet.evolve(meta={"thread": threading.current_thread().name})


class CountConfig(PluginConfig):
    count: int = 10
    fail_at: int | None = None
    fail_with: str = "error"
    """What happens at `fail_at`: `error` (a RuntimeError), `exit` (sys.exit(3), as a library
    giving up might) or `interrupt` (KeyboardInterrupt, as Ctrl-C in that thread)."""
    ready: bool = False
    """AsyncTicks: give each packet without an await that waits (all ready at once)."""
    rate_hz: float | None = None
    """BrokenGenerator: paced to this rate (its steps then run on the pace clock's timer)."""


def _fail(config: CountConfig | BatchesConfig, error: str) -> None:
    """What a test source does at its `fail_at` (`fail_with`): raise `error`, call
    sys.exit(3), or raise KeyboardInterrupt."""
    if config.fail_with == "exit":
        sys.exit(3)
    if config.fail_with == "interrupt":
        raise KeyboardInterrupt
    raise RuntimeError(error)


class AsyncTicks(Source):
    """An async generator source: `count` packets, raising at `fail_at` if set."""

    name: ClassVar[str] = "async-ticks"
    Config: ClassVar[type[PluginConfig]] = CountConfig

    async def packets(self) -> AsyncIterator[StreamPacket]:
        for seq in range(self.config.count):
            if seq == self.config.fail_at:
                _fail(self.config, f"device unplugged at {seq}")
            if not self.config.ready:
                await asyncio.sleep(0)
            yield StreamPacket.new("sensor", self.context.node_id, seq, {"n": seq})


class Forever(Source):
    """An async source that waits for data that never comes (a quiet network socket)."""

    name: ClassVar[str] = "forever"

    async def packets(self) -> AsyncIterator[StreamPacket]:
        await asyncio.Event().wait()
        yield StreamPacket.new("sensor", "never", 0)


class BrokenGenerator(Source):
    """A plain generator that raises after `fail_at` packets."""

    name: ClassVar[str] = "broken-generator"
    Config: ClassVar[type[PluginConfig]] = CountConfig

    def rate_hz(self) -> float | None:
        return self.config.rate_hz

    def packets(self) -> Iterator[StreamPacket]:
        for seq in range(self.config.count):
            if seq == self.config.fail_at:
                _fail(self.config, f"sensor bus error at {seq}")
            yield StreamPacket.new("sensor", self.context.node_id, seq)


class ExitsAtStart(Source):
    """A source whose `packets()` (a plain function, not a generator) calls sys.exit(3)."""

    name: ClassVar[str] = "exits-at-start"

    def packets(self) -> Iterator[StreamPacket]:
        sys.exit(3)


class BlockingBrokenGenerator(BrokenGenerator):
    """`BrokenGenerator` that says it blocks: pulled on the node's thread."""

    name: ClassVar[str] = "blocking-broken-generator"
    blocking: ClassVar[bool] = True


SAVED: dict[str, list[int]] = defaultdict(list)
"""Node id -> the seq of each packet a SlowCheckpoints source persisted, in order."""


class SlowCheckpoints(Source):
    """`count` packets; each checkpoint takes a while (a slow disk), recorded in SAVED."""

    name: ClassVar[str] = "slow-checkpoints"
    Config: ClassVar[type[PluginConfig]] = CountConfig
    blocking: ClassVar[bool] = True

    def packets(self) -> Iterator[StreamPacket]:
        for seq in range(self.config.count):
            if seq % 100 == 0:
                time.sleep(0.01)  # spread over several checkpoint polls
            yield StreamPacket.new("sensor", self.context.node_id, seq)

    def checkpoint(self, upto: StreamPacket) -> None:
        time.sleep(0.15)
        SAVED[self.context.node_id].append(upto.seq)


class RefusesNamingItself(Sink):
    """Its open() fails with a message that names the node, as many packs' errors do."""

    name: ClassVar[str] = "refuses-named"

    async def open(self) -> None:
        raise ConnectionRefusedError(f"node {self.context.node_id!r}: backend refused")

    def deliver(self, packet: StreamPacket) -> None:
        raise AssertionError("never opened")


class RefusesToOpen(Sink):
    """Its open() fails, as a sink whose backend is misconfigured would."""

    name: ClassVar[str] = "refuses"

    async def open(self) -> None:
        raise ConnectionRefusedError("backend 127.0.0.1:9 refused the connection")

    def deliver(self, packet: StreamPacket) -> None:
        raise AssertionError("never opened")


class DeclaredOnly(Transform):
    """Declares itself but implements nothing (a pack written for the validator only)."""

    name: ClassVar[str] = "declared-only"


_TEST = [0]
"""Which test is running: a thread left waiting on a gate by an earlier test stops waiting."""


def wait_for_gate(node_id: str, test: int) -> None:
    """Wait until the node's gate opens (at most 30 s), unless the test `test` (the one that
    made the plugin) is over: a thread left behind by a test never blocks the next."""
    gate = GATES[node_id]
    deadline = time.monotonic() + 30
    while _TEST[0] == test and not gate.wait(0.05) and time.monotonic() < deadline:
        pass


class WaitsForCheckpoint(Source):
    """`count` packets, handed on at once; then it waits (60 s at most, against a hang) until
    its checkpoint reached the last of them before it ends, and records the seq it reached in
    SAVED (none if the wait ran out): a device that expects an answer per packet."""

    name: ClassVar[str] = "waits-for-checkpoint"
    Config: ClassVar[type[PluginConfig]] = CountConfig
    blocking: ClassVar[bool] = True
    emits_profile: ClassVar[PayloadProfile] = PayloadProfile.JSON_PORTABLE
    checkpoints_promptly: ClassVar[bool] = True

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self._reached = threading.Event()

    def packets(self) -> Iterator[StreamPacket | None]:
        for seq in range(self.config.count):
            yield StreamPacket.new("sensor", self.context.node_id, seq)
        yield None  # hand on what was taken
        self._reached.wait(60.0)

    def checkpoint(self, upto: StreamPacket) -> None:
        if upto.seq == self.config.count - 1 and not self._reached.is_set():
            SAVED[self.context.node_id].append(upto.seq)
            self._reached.set()


def reset() -> None:
    """Forget records and close gates between tests."""
    _TEST[0] += 1
    RECORDS.clear()
    GATES.clear()
    DOWN.clear()
    MOST_AT_ONCE.clear()
    _AT_ONCE.clear()
    CLOSED.clear()
    SAVED.clear()
    COLLECTOR_SEEN.clear()
    BURSTS_CLOSED.clear()
    HANDED.clear()
    DEADLINES.clear()
    ON_DEADLINE.clear()
    TICKS.clear()
    ASKED.clear()
    NEXT_CALLED.clear()
    PULLED_IN.clear()
    STUCK_AT.clear()
    CLOSED_WHILE_STUCK.clear()


class Backend(Sink):
    """An async sink to a backend that can be down: while its node id is in DOWN it keeps
    retrying (as the http sink does with a durable inbox), then records the packet."""

    name: ClassVar[str] = "backend"

    async def deliver(self, packet: StreamPacket) -> None:
        while self.context.node_id in DOWN:
            await asyncio.sleep(0.01)
        RECORDS[self.context.node_id].append(packet)


class HopsConfig(PluginConfig):
    field: str = "hops"


class CountDown(Transform):
    """Decrements `payload.hops` and drops the packet when it reaches zero: each packet goes
    round a loop a fixed number of times."""

    name: ClassVar[str] = "count-down"
    Config: ClassVar[type[PluginConfig]] = HopsConfig

    def process(self, packet: StreamPacket) -> StreamPacket | None:
        hops = packet.payload[self.config.field]
        if hops <= 0:
            return None
        return packet.evolve(payload={**packet.payload, self.config.field: hops - 1})


class MisRouted(Transform):
    """Routes every packet to a port it does not have (each packet fails)."""

    name: ClassVar[str] = "mis-routed"

    def process(self, packet: StreamPacket) -> Routed:
        return Routed("nowhere", packet)


class PluginBug(BaseException):
    """Not an Exception: slips past per-packet error handling, as a badly written plugin's
    own base exceptions would."""


class Escapes(Transform):
    """Raises a BaseException on seq 3: its node's task fails."""

    name: ClassVar[str] = "escapes"

    def process(self, packet: StreamPacket) -> StreamPacket:
        if packet.seq == 3:
            raise PluginBug("escaped the plugin")
        return packet


class GatedSource(Source):
    """A blocking source whose first read waits for GATES[node id] (a device that is silent),
    then yields `count` packets."""

    name: ClassVar[str] = "gated-source"
    Config: ClassVar[type[PluginConfig]] = CountConfig
    blocking: ClassVar[bool] = True

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self.test = _TEST[0]

    def packets(self) -> Iterator[StreamPacket]:
        wait_for_gate(self.context.node_id, self.test)
        for seq in range(self.config.count):
            yield StreamPacket.new("sensor", self.context.node_id, seq)


class HangsOnOpen(Sink):
    """Its open() never returns (a backend that accepts the connection and then says
    nothing)."""

    name: ClassVar[str] = "hangs-on-open"

    async def open(self) -> None:
        await asyncio.Event().wait()

    def deliver(self, packet: StreamPacket) -> None:
        raise AssertionError("never opened")


class CancelsItself(Transform):
    """An async plugin whose client raises CancelledError (a connection cancelled under it)."""

    name: ClassVar[str] = "cancels-itself"

    async def process(self, packet: StreamPacket) -> StreamPacket:
        raise asyncio.CancelledError("backend connection cancelled")


class MixedSink(Sink):
    """An async deliver_batch beside a plain deliver: the runtime must refuse it at start
    (the batch would be counted as delivered without ever being awaited)."""

    name: ClassVar[str] = "mixed"

    def deliver(self, packet: StreamPacket) -> None:
        RECORDS[self.context.node_id].append(packet)

    async def deliver_batch(self, packets: list[StreamPacket]) -> None:
        RECORDS[self.context.node_id].extend(packets)


CLOSED: list[str] = []
"""Node ids whose RefusesState plugin was closed."""


class RefusesState(Transform):
    """Passes packets on; refuses any state handed over to it (and records its close)."""

    name: ClassVar[str] = "refuses-state"

    def import_state(self, state: Any) -> None:
        raise ValueError("this version cannot read that state")

    def process(self, packet: StreamPacket) -> StreamPacket:
        return packet

    async def close(self) -> None:
        CLOSED.append(self.context.node_id)


class KeepsState(Transform):
    """Passes packets on and hands over a counter."""

    name: ClassVar[str] = "keeps-state"

    def process(self, packet: StreamPacket) -> StreamPacket:
        return packet

    def export_state(self) -> Any:
        return {"n": 1}


COLLECTOR_SEEN: list[tuple[int, int]] = []
"""What CollectorProbe sinks saw of the garbage collector: (young threshold, frozen objects)."""


class CollectorProbe(Sink):
    """Records the garbage collector's young threshold and frozen-object count per delivery."""

    name: ClassVar[str] = "collector_probe"

    def deliver(self, packet: StreamPacket) -> None:
        import gc

        COLLECTOR_SEEN.append((gc.get_threshold()[0], gc.get_freeze_count()))


class BurstsConfig(PluginConfig):
    script: str = Field(
        description="One letter per item: p a packet ready at once, w a packet after a real "
        "wait, b a bad record, n None, x raise, h hang (wait for ever)."
    )


BURSTS_CLOSED: list[str] = []
"""Node ids of AsyncBursts sources whose generator was closed (its `finally` ran)."""


class AsyncBursts(Source):
    """An async source following a script: packets ready at once (as a network client yields
    the messages of one fetch), packets after a real wait, bad records, None, a failure."""

    name: ClassVar[str] = "async-bursts"
    Config: ClassVar[type[PluginConfig]] = BurstsConfig
    reports_bad_records: ClassVar[bool] = True

    async def packets(self) -> AsyncIterator[StreamPacket | BadRecord | None]:  # type: ignore[override]
        node_id = self.context.node_id
        try:
            for seq, step in enumerate(self.config.script):
                if step == "w":
                    await asyncio.sleep(0.001)
                elif step == "h":
                    await asyncio.Event().wait()
                elif step == "x":
                    raise RuntimeError(f"connection lost at {seq}")
                if step == "b":
                    yield BadRecord(f"message {seq} is not JSON", where=f"message {seq}")
                elif step == "n":
                    yield None
                else:
                    yield StreamPacket.new("sensor", node_id, seq, {"n": seq})
        finally:
            BURSTS_CLOSED.append(node_id)


class _FutureItems:
    """An async iterator whose `__anext__` is a plain function: it gives a Future (done at
    once), not a coroutine, and raises StopAsyncIteration itself at the end."""

    def __init__(self, node_id: str, count: int) -> None:
        self.node_id, self.count, self.seq = node_id, count, 0

    def __aiter__(self) -> _FutureItems:
        return self

    def __anext__(self) -> asyncio.Future[StreamPacket]:
        if self.seq == self.count:
            raise StopAsyncIteration
        item: asyncio.Future[StreamPacket] = asyncio.get_running_loop().create_future()
        item.set_result(StreamPacket.new("sensor", self.node_id, self.seq, {"n": self.seq}))
        self.seq += 1
        return item


class AsyncFutures(Source):
    """An async source that is not an async generator: see `_FutureItems` (10 packets)."""

    name: ClassVar[str] = "async-futures"
    Config: ClassVar[type[PluginConfig]] = BurstsConfig  # the script is not read

    def packets(self) -> _FutureItems:  # type: ignore[override]
        return _FutureItems(self.context.node_id, 10)


HANDED: dict[str, list[asyncio.Future[StreamPacket]]] = defaultdict(list)
"""Per AsyncHandFed node id: the Futures its `__anext__` gave, in order (a test resolves
those past `ready`)."""


class HandFedConfig(PluginConfig):
    ready: int = Field(default=0, ge=0, description="Futures given resolved at once.")


class _HandFedItems:
    """An async iterator whose `__anext__` gives a Future: its first `ready` hold packets at
    once, the others wait for a test to resolve them (`HANDED[node id]`)."""

    def __init__(self, node_id: str, ready: int) -> None:
        self.node_id, self.ready = node_id, ready

    def __aiter__(self) -> _HandFedItems:
        return self

    def __anext__(self) -> asyncio.Future[StreamPacket]:
        given = HANDED[self.node_id]
        item: asyncio.Future[StreamPacket] = asyncio.get_running_loop().create_future()
        if len(given) < self.ready:
            item.set_result(hand_fed_packet(self.node_id, len(given)))
        given.append(item)
        return item


def hand_fed_packet(node_id: str, seq: int) -> StreamPacket:
    """The packet an AsyncHandFed source's Future number `seq` gives."""
    return StreamPacket.new("sensor", node_id, seq, {"n": seq})


class AsyncHandFed(Source):
    """An async source whose `__anext__` gives Futures a test resolves: see `_HandFedItems`."""

    name: ClassVar[str] = "async-hand-fed"
    Config: ClassVar[type[PluginConfig]] = HandFedConfig

    def packets(self) -> _HandFedItems:  # type: ignore[override]
        return _HandFedItems(self.context.node_id, self.config.ready)


class AsyncDeadline(Source):
    """An async source that gives 10 packets at once, then reads under its own
    `asyncio.timeout`, which expires at once: it gives packet 1000 for the timeout and ends
    (a network read with a deadline)."""

    name: ClassVar[str] = "async-deadline"
    Config: ClassVar[type[PluginConfig]] = BurstsConfig  # the script is not read

    async def packets(self) -> AsyncIterator[StreamPacket]:  # type: ignore[override]
        node_id = self.context.node_id
        for seq in range(10):
            yield StreamPacket.new("sensor", node_id, seq, {"n": seq})
        try:
            async with asyncio.timeout(0):
                await asyncio.Event().wait()
        except TimeoutError:
            yield StreamPacket.new("sensor", node_id, 1000, {"n": 1000})


DEADLINES: dict[str, asyncio.Timeout] = {}
"""Per node id: the deadline an AsyncHeldDeadline source reads under (a test expires it)."""
ON_DEADLINE: dict[str, Any] = {}
"""Per node id: called by an AsyncHeldDeadline source when it starts its read."""


class AsyncHeldDeadline(Source):
    """`AsyncDeadline` whose deadline a test expires by hand (`DEADLINES[node id]`)."""

    name: ClassVar[str] = "async-held-deadline"
    Config: ClassVar[type[PluginConfig]] = BurstsConfig  # the script is not read

    async def packets(self) -> AsyncIterator[StreamPacket]:  # type: ignore[override]
        node_id = self.context.node_id
        for seq in range(10):
            yield StreamPacket.new("sensor", node_id, seq, {"n": seq})
        try:
            async with asyncio.timeout(None) as deadline:
                DEADLINES[node_id] = deadline
                if (hook := ON_DEADLINE.get(node_id)) is not None:
                    hook()
                await asyncio.Event().wait()
        except TimeoutError:
            yield StreamPacket.new("sensor", node_id, 1000, {"n": 1000})


class Ticking(Transform):
    """Passes packets on; its `tick` (every 10 ms) counts its calls in TICKS."""

    name: ClassVar[str] = "ticking"
    tick_interval_s = 0.01

    def process(self, packet: StreamPacket) -> StreamPacket:
        return packet

    def tick(self, now: float) -> list[StreamPacket]:
        TICKS[self.context.node_id] += 1
        return []


class SlowTicking(Ticking):
    """`Ticking` every hour."""

    name: ClassVar[str] = "slow-ticking"
    tick_interval_s = 3600.0


class StartGateConfig(PluginConfig):
    folder: str
    count: int = 5


class HeldAtValidation(Source):
    """Holds `schnitzel run` in validation (its environment check) until the file `go`
    appears in `folder`, having written `checking` there: a test sends a signal while the
    run is still starting. Meanwhile it writes `held-<n>` once the run holds n signals for
    later (schnitzel.launch.early_signals), so a test knows one was taken before sending
    another (two signals sent at once may arrive as one). Then `count` packets."""

    name: ClassVar[str] = "held-at-validation"
    Config: ClassVar[type[PluginConfig]] = StartGateConfig

    @classmethod
    def check_environment(cls, config: Any, context: Any) -> list[Any]:
        folder = Path(config.folder)
        (folder / "checking").touch()
        deadline = time.monotonic() + 60.0  # only against hanging
        while not (folder / "go").exists() and time.monotonic() < deadline:
            holder = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
            held = len(getattr(holder, "pending", ()))
            if held:
                (folder / f"held-{held}").touch()
            time.sleep(0.01)
        return []

    def packets(self) -> Iterator[StreamPacket]:
        for seq in range(self.config.count):
            yield StreamPacket.new("sensor", self.context.node_id, seq, {"n": seq})


class BatchesConfig(PluginConfig):
    count: int = 10
    fail_at: int | None = None
    """`next_batch` raises when the batch it would make holds this seq."""
    fail_with: str = "error"
    """As `CountConfig.fail_with`."""
    returns: str = "list"
    """What `next_batch` gives: `list` (the contract), `tuple`, `extra` (more than asked
    for) or `strings` (items that are not packets)."""
    rate_hz: float | None = None
    """Paced to this rate (its steps then run on the pace clock's timer)."""


ASKED: dict[str, list[tuple[int, str]]] = defaultdict(list)
"""Per Batches node id: the `limit` of each `next_batch` call, and the thread it ran on."""
NEXT_CALLED: dict[str, int] = defaultdict(int)
"""Per Batches node id: how often its iterator was asked for one packet (`next`)."""


class _Batches:
    """The packets of a `Batches` source: `next_batch` makes many; `next` one."""

    def __init__(self, node_id: str, config: BatchesConfig) -> None:
        self.node_id = node_id
        self.config = config
        self.seq = 0

    def __iter__(self) -> _Batches:
        return self

    def __next__(self) -> StreamPacket:
        NEXT_CALLED[self.node_id] += 1
        made = self.next_batch(1)
        if not made:
            raise StopIteration
        return made[0]

    def next_batch(self, limit: int) -> Any:
        ASKED[self.node_id].append((limit, threading.current_thread().name))
        config = self.config
        start, stop = self.seq, min(self.seq + limit, config.count)
        if config.fail_at is not None and start <= config.fail_at < stop:
            _fail(config, f"sensor bus error at {config.fail_at}")
        self.seq = stop
        made = StreamPacket.new_many(
            "sensor", self.node_id, range(start, stop), [{"n": s} for s in range(start, stop)]
        )
        if config.returns == "tuple":
            return tuple(made)
        if config.returns == "extra":
            return made + [StreamPacket.new("sensor", self.node_id, stop)] * (limit + 1)
        if config.returns == "strings":
            return ["not a packet", *made]
        return made


class Batches(Source):
    """A source whose iterator makes packets a batch at a time (`next_batch`)."""

    name: ClassVar[str] = "batches"
    Config: ClassVar[type[PluginConfig]] = BatchesConfig

    def rate_hz(self) -> float | None:
        return self.config.rate_hz

    def packets(self) -> _Batches:
        return _Batches(self.context.node_id, self.config)


class PacedPullsConfig(PluginConfig):
    count: int = 20
    rate_hz: float = 200.0


PULLED_IN: dict[str, list[str]] = defaultdict(list)
"""Per PacedPulls node id: where each packet was made, in a "task" or on a "timer" (no task
running: the pace clock's own callback)."""


class PacedPulls(Source):
    """A paced source that notes, for each packet it makes, whether a task was running."""

    name: ClassVar[str] = "paced-pulls"
    Config: ClassVar[type[PluginConfig]] = PacedPullsConfig

    def rate_hz(self) -> float | None:
        return float(self.config.rate_hz)

    def packets(self) -> Iterator[StreamPacket]:
        node_id = self.context.node_id
        for seq in range(self.config.count):
            PULLED_IN[node_id].append("task" if asyncio.current_task() is not None else "timer")
            yield StreamPacket.new("sensor", node_id, seq, {"n": seq})


class BlockingBatches(Batches):
    """`Batches` that says it blocks: pulled on the node's thread."""

    name: ClassVar[str] = "blocking-batches"
    blocking: ClassVar[bool] = True


class YieldsJunkConfig(PluginConfig):
    count: int = 5
    junk_at: int = 2
    """The item `packets()` gives in place of the packet of this seq: a string."""
    asynchronous: bool = False


class YieldsJunk(Source):
    """A source with a bug: it yields a string, not a packet, at `junk_at`, then goes on."""

    name: ClassVar[str] = "yields-junk"
    Config: ClassVar[type[PluginConfig]] = YieldsJunkConfig

    def packets(self) -> Any:
        config = self.config
        items: list[Any] = [
            "reading 7.5" if seq == config.junk_at else StreamPacket.new("sensor", "j", seq)
            for seq in range(config.count)
        ]
        return _aiter(items) if config.asynchronous else iter(items)


async def _aiter(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


class MistakeConfig(PluginConfig):
    mistake: str = Field(
        description="What the plugin gets wrong on packet seq 3: `routed_junk` (a Routed "
        "holding a dict), `routed_unhashable` (a Routed to a list), `broken_iterable` (an "
        "iterable that raises), `unprintable` (raises an exception whose str() raises), "
        "`batch_grown` (process_batch appends a string to its input and returns it), "
        "`batch_filtered_in_place` (no mistake: process_batch keeps the odd seqs "
        "in the list it is given and returns it), `batch_junk` (process_batch puts a "
        "string in its input's place and returns it), "
        "`broken_size` (a payload whose `nbytes` raises: an inbox bounded in bytes cannot "
        "take it), `exits` (calls sys.exit(3), as a library giving up might)"
    )


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this exception cannot be printed")


class _BrokenSize:
    @property
    def nbytes(self) -> int:
        raise RuntimeError("the payload cannot tell its size")


def _breaks_midway(packet: StreamPacket) -> Iterator[StreamPacket]:
    yield packet
    raise ValueError("the plugin's iterable broke")


class Mistaken(Transform):
    """A transform with one bug, chosen by `mistake`, in an unusual place (see MistakeConfig);
    every other packet passes."""

    name: ClassVar[str] = "mistaken"
    Config: ClassVar[type[PluginConfig]] = MistakeConfig

    def process(self, packet: StreamPacket) -> Any:
        if packet.seq != 3:
            return packet
        mistake = self.config.mistake
        if mistake == "routed_junk":
            return Routed("out", {"not": "a packet"})  # type: ignore[arg-type]
        if mistake == "routed_unhashable":
            return Routed(["out"], packet)  # type: ignore[arg-type]
        if mistake == "broken_iterable":
            return _breaks_midway(packet)
        if mistake == "unprintable":
            raise _Unprintable()
        if mistake == "broken_size":
            return packet.evolve(payload=_BrokenSize())
        if mistake == "exits":
            sys.exit(3)
        return packet

    def process_batch(self, batch: list[StreamPacket]) -> list[StreamPacket]:
        mistake = self.config.mistake
        if mistake == "batch_grown":
            batch.append("junk")  # type: ignore[arg-type]
            return batch
        if mistake == "batch_filtered_in_place":  # not a mistake: odd seqs only
            batch[:] = [p for p in batch if p.seq % 2]
            return batch
        if mistake == "batch_junk":
            batch[-1] = "junk"  # type: ignore[call-overload]
            return batch
        return [out for p in batch if (out := self.process(p)) is not None]


class HangsInThreadConfig(PluginConfig):
    folder: str = Field(description="Where `delivering` is written once deliver() started.")
    hang_s: float = Field(default=600.0, description="How long deliver() blocks its thread.")


class HangsInThread(Sink):
    """A blocking sink whose deliver() never returns in time (a hung device driver): it
    writes `<folder>/delivering`, then blocks its thread for `hang_s`."""

    name: ClassVar[str] = "hangs-in-thread"
    Config: ClassVar[type[PluginConfig]] = HangsInThreadConfig
    blocking: ClassVar[bool] = True

    def deliver(self, packet: StreamPacket) -> None:
        (Path(self.config.folder) / "delivering").touch()
        threading.Event().wait(self.config.hang_s)


class YieldsBrokenSize(Source):
    """A source with a bug: the payload of its packet `junk_at` cannot tell its size
    (`nbytes` raises), so an inbox bounded in bytes cannot take it."""

    name: ClassVar[str] = "yields-broken-size"
    Config: ClassVar[type[PluginConfig]] = YieldsJunkConfig

    def packets(self) -> Iterator[StreamPacket]:
        config = self.config
        for seq in range(config.count):
            payload: Any = _BrokenSize() if seq == config.junk_at else {"seq": seq}
            yield StreamPacket.new("sensor", self.context.node_id, seq, payload)


STUCK_AT: dict[str, threading.Event] = defaultdict(threading.Event)
"""Per Stuck node id: set once its `next_batch` is stuck."""
CLOSED_WHILE_STUCK: dict[str, bool] = {}
"""Per Stuck node id: whether `close()` was called while its `next_batch` was still stuck."""


class _Stuck:
    """`count` packets from the first `next_batch`, then a call that does not return until
    GATES[node id] is set (each test's clean-up): a camera read or a socket recv that hangs."""

    def __init__(self, node_id: str, count: int) -> None:
        self.node_id = node_id
        self.count = count
        self.made = False
        self.stuck = False

    def __iter__(self) -> _Stuck:
        return self

    def __next__(self) -> StreamPacket:
        raise StopIteration

    def next_batch(self, limit: int) -> list[StreamPacket]:
        if not self.made:
            self.made = True
            return StreamPacket.new_many(
                "sensor", self.node_id, range(self.count), [{}] * self.count
            )
        self.stuck = True
        STUCK_AT[self.node_id].set()
        GATES[self.node_id].wait()  # deaf to the stop, as a device read would be
        self.stuck = False
        return []


class Stuck(Source):
    """A blocking source whose `next_batch` hangs after `count` packets (see `_Stuck`)."""

    name: ClassVar[str] = "stuck"
    Config: ClassVar[type[PluginConfig]] = CountConfig
    blocking: ClassVar[bool] = True
    emits_profile = PayloadProfile.JSON_PORTABLE

    def packets(self) -> _Stuck:
        self._packets = _Stuck(self.context.node_id, self.config.count)
        return self._packets

    async def close(self) -> None:
        CLOSED_WHILE_STUCK[self.context.node_id] = self._packets.stuck


class DeviceRateConfig(PluginConfig):
    rate_hz: float = 100.0
    """The rate the device samples at (set in the device when it opens)."""
    paced: bool = False
    """Also have the runtime pace the source to `rate_hz`."""


class DeviceRate(Source):
    """A source whose config has a `rate_hz` of its own: the device's sampling rate. The
    runtime paces it only when `paced` (its `rate_hz()`, the SDK's pace)."""

    name: ClassVar[str] = "device-rate"
    Config: ClassVar[type[PluginConfig]] = DeviceRateConfig

    def rate_hz(self) -> float | None:
        return self.config.rate_hz if self.config.paced else None

    def packets(self) -> Iterator[StreamPacket]:
        for seq in itertools.count():
            yield StreamPacket.new("sensor", self.context.node_id, seq, {"n": seq})


class CappedCompute(SlowCompute):
    """SlowCompute that takes at most 2 calls at once (its `max_calls_at_once`)."""

    name: ClassVar[str] = "capped-compute"
    max_calls_at_once: ClassVar[int | None] = 2


OPEN_GATES: dict[str, asyncio.Event] = {}
"""GatedOpen: per node, what its open() waits for (set by the test, on the run's loop)."""
OPENING: dict[str, asyncio.Event] = {}
"""GatedOpen: per node, set once its open() began."""
FAIL_OPEN: set[str] = set()
"""GatedOpen: the nodes whose open() raises (a plugin that no longer opens)."""


class GatedOpen(Transform):
    """Passes packets on; its open() raises for a node in FAIL_OPEN, and waits for the node's
    gate in OPEN_GATES, if any."""

    name: ClassVar[str] = "gated-open"

    async def open(self) -> None:
        node_id = self.context.node_id
        if node_id in FAIL_OPEN:
            raise RuntimeError(f"{node_id}: this plugin no longer opens")
        if node_id in OPENING:
            OPENING[node_id].set()
        if node_id in OPEN_GATES:
            await OPEN_GATES[node_id].wait()

    def process(self, packet: StreamPacket) -> StreamPacket:
        return packet


class InlineCompute(Compute):
    """A compute plugin that runs one call at a time on the event loop (not blocking)."""

    name: ClassVar[str] = "inline-compute"
    blocking: ClassVar[bool] = False

    def process(self, packet: StreamPacket) -> StreamPacket:
        return packet
