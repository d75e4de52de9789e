"""The commands of the control socket: one strict arguments model each, mapped onto the
in-process control API (`schnitzel.control.runtime_control.RuntimeControl`).

    result = await dispatch(control, "throttle", {"node": "src", "rate_hz": 40.0}, actor, why)

Arguments that do not fit their model are a `ProtocolError("bad-request")`; a name that is
no command is `UnknownCommand`; the control API's own refusals (`ControlError`) pass through.
Read-only commands (hello, status, nodes, describe, events, suggestions, controller, audit,
plugins, parked) never write the audit log; the control API audits every change it is asked
for, applied or refused.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from schnitzel.contract.run_report import NodeSummary, RunReport, node_summary
from schnitzel.control.actor import Actor
from schnitzel.control.audit import utc_timestamp
from schnitzel.control.protocol import PROTOCOL_VERSION, ProtocolError, describe_validation_error
from schnitzel.durable.parking import Selection
from schnitzel.errors import SchnitzelError

if TYPE_CHECKING:
    from schnitzel.control.runtime_control import RuntimeControl

__all__ = ["COMMANDS", "READ_ONLY_COMMANDS", "SLOW_COMMANDS", "UnknownCommand", "dispatch"]

NodeId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Count = Annotated[int, Field(ge=1, le=1_000_000)]


class UnknownCommand(SchnitzelError):
    """A request named no command of the control socket."""


class Args(BaseModel):
    """Arguments of a command: strict types, no unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class NodeArgs(Args):
    node: NodeId


class EventsArgs(Args):
    after: Annotated[int, Field(ge=0, lt=1 << 63)] = 0
    """Only events with a `seq` above this one."""
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class AuditArgs(Args):
    limit: Annotated[int, Field(ge=1, le=10_000)] = 100


class PluginsArgs(Args):
    kind: Annotated[str, StringConstraints(max_length=32)] | None = None


class ThrottleArgs(Args):
    """Knobs left out stay as they are; `rate_hz` null means as fast as accepted."""

    node: NodeId
    rate_hz: Annotated[float, Field(allow_inf_nan=False)] | None = None
    sample_every: Count | None = None
    concurrency: Count | None = None


class SwapArgs(Args):
    node: NodeId
    plugin: Name | None = None
    """None: keep the node's plugin (a config must then be given)."""
    config: dict[str, Any] | None = None
    """None: the current config for the same plugin, a new plugin's defaults otherwise."""
    dry_run: bool = False


class SuggestionArgs(Args):
    id: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class StopArgs(Args):
    force: bool = False


ParkedSeq = Annotated[int, Field(ge=1, lt=1 << 63)]


class ParkedArgs(Args):
    """List a node's parked packets (ids above `after`), or show the one `seq` whole."""

    node: NodeId
    after: Annotated[int, Field(ge=0, lt=1 << 63)] = 0
    limit: Annotated[int, Field(ge=1, le=10_000)] = 100
    seq: ParkedSeq | None = None


class ParkedSelectionArgs(Args):
    """Which parked packets: `seqs` (a list), `first`..`last` (a range), or `all`; one way."""

    node: NodeId
    seqs: Annotated[list[ParkedSeq], Field(min_length=1, max_length=10_000)] | None = None
    first: ParkedSeq | None = None
    last: ParkedSeq | None = None
    all: bool = False

    @model_validator(mode="after")
    def _one_way(self) -> ParkedSelectionArgs:
        ways = [self.seqs is not None, self.first is not None or self.last is not None, self.all]
        if sum(ways) != 1:
            raise ValueError("give exactly one of seqs, first and last, or all: true")
        if ways[1] and (self.first is None or self.last is None or self.first > self.last):
            raise ValueError("a range needs first <= last")
        return self

    def selection(self) -> Selection:
        if self.all:
            return Selection(everything=True)
        if self.seqs is not None:
            return Selection(ids=tuple(self.seqs))
        return Selection(first=self.first, last=self.last)


Handler = Callable[["RuntimeControl", Any, Actor, str], Awaitable[Any]]


@dataclass(frozen=True)
class Command:
    """A command's arguments model and what it does."""

    args: type[Args]
    run: Handler


async def _hello(control: RuntimeControl, _: Args, __: Actor, ___: str) -> dict[str, Any]:
    runtime = control.runtime
    path = runtime.graph.path
    started = runtime.started_wall
    return {
        "protocol": PROTOCOL_VERSION,
        "run_id": runtime.run_id,
        "pid": os.getpid(),
        "graph": str(path) if path is not None else "<memory>",
        "started": utc_timestamp(started) if started is not None else None,
        "controller": runtime.graph.spec.runtime.controller.mode,
        "read_only": False,
    }


async def _status(control: RuntimeControl, _: Args, __: Actor, ___: str) -> RunReport:
    return control.snapshot()


async def _nodes(control: RuntimeControl, _: Args, __: Actor, ___: str) -> list[NodeSummary]:
    return [node_summary(node_id, n) for node_id, n in control.snapshot()["nodes"].items()]


async def _describe(control: RuntimeControl, _: Args, __: Actor, ___: str) -> Any:
    return control.describe()


async def _events(control: RuntimeControl, args: EventsArgs, _: Actor, __: str) -> Any:
    return control.events(limit=args.limit, after=args.after)


async def _suggestions(control: RuntimeControl, _: Args, __: Actor, ___: str) -> Any:
    return control.suggestions()


async def _controller(control: RuntimeControl, _: Args, __: Actor, ___: str) -> Any:
    return control.controller()


async def _audit(control: RuntimeControl, args: AuditArgs, _: Actor, __: str) -> Any:
    return control.audit(limit=args.limit)


async def _plugins(control: RuntimeControl, args: PluginsArgs, _: Actor, __: str) -> Any:
    return control.plugins(args.kind)


async def _throttle(control: RuntimeControl, args: ThrottleArgs, actor: Actor, why: str) -> Any:
    knobs = {k: getattr(args, k) for k in ("rate_hz", "sample_every", "concurrency")}
    given = {k: v for k, v in knobs.items() if k in args.model_fields_set}
    if not given:
        raise ProtocolError(
            "bad-request", "throttle needs at least one of rate_hz, sample_every, concurrency"
        )
    for knob in ("sample_every", "concurrency"):
        if knob in given and given[knob] is None:
            raise ProtocolError("bad-request", f"{knob} is a whole number, not null")
    return control.throttle(args.node, **given, actor=actor, why=why)


async def _pause(control: RuntimeControl, args: NodeArgs, actor: Actor, why: str) -> Any:
    return control.pause(args.node, actor=actor, why=why)


async def _resume(control: RuntimeControl, args: NodeArgs, actor: Actor, why: str) -> Any:
    return control.resume(args.node, actor=actor, why=why)


async def _swap(control: RuntimeControl, args: SwapArgs, actor: Actor, why: str) -> Any:
    return await control.swap(
        args.node, args.plugin, args.config, actor=actor, why=why, dry_run=args.dry_run
    )


async def _rollback(control: RuntimeControl, args: NodeArgs, actor: Actor, why: str) -> Any:
    return await control.rollback(args.node, actor=actor, why=why)


async def _approve(control: RuntimeControl, args: SuggestionArgs, actor: Actor, why: str) -> Any:
    return await control.approve(args.id, actor=actor, why=why)


async def _reject(control: RuntimeControl, args: SuggestionArgs, actor: Actor, why: str) -> Any:
    return control.reject(args.id, actor=actor, why=why)


async def _reload(control: RuntimeControl, _: Args, actor: Actor, why: str) -> Any:
    return await control.reload(actor=actor, why=why)


async def _stop(control: RuntimeControl, args: StopArgs, actor: Actor, why: str) -> Any:
    return control.stop(args.force, why, actor=actor)


async def _parked(control: RuntimeControl, args: ParkedArgs, _: Actor, __: str) -> Any:
    return await control.parked(args.node, args.after, args.limit, args.seq)


async def _requeue(
    control: RuntimeControl, args: ParkedSelectionArgs, actor: Actor, why: str
) -> Any:
    return await control.requeue(args.node, args.selection(), actor=actor, why=why)


async def _drop_parked(
    control: RuntimeControl, args: ParkedSelectionArgs, actor: Actor, why: str
) -> Any:
    return await control.drop_parked(args.node, args.selection(), actor=actor, why=why)


COMMANDS: dict[str, Command] = {
    "hello": Command(Args, _hello),
    "status": Command(Args, _status),
    "nodes": Command(Args, _nodes),
    "describe": Command(Args, _describe),
    "events": Command(EventsArgs, _events),
    "suggestions": Command(Args, _suggestions),
    "controller": Command(Args, _controller),
    "audit": Command(AuditArgs, _audit),
    "plugins": Command(PluginsArgs, _plugins),
    "throttle": Command(ThrottleArgs, _throttle),
    "pause": Command(NodeArgs, _pause),
    "resume": Command(NodeArgs, _resume),
    "swap": Command(SwapArgs, _swap),
    "rollback": Command(NodeArgs, _rollback),
    "approve": Command(SuggestionArgs, _approve),
    "reject": Command(SuggestionArgs, _reject),
    "reload": Command(Args, _reload),
    "stop": Command(StopArgs, _stop),
    "parked": Command(ParkedArgs, _parked),
    "requeue": Command(ParkedSelectionArgs, _requeue),
    "drop-parked": Command(ParkedSelectionArgs, _drop_parked),
}
READ_ONLY_COMMANDS = frozenset(
    {
        "hello",
        "status",
        "nodes",
        "describe",
        "events",
        "suggestions",
        "controller",
        "audit",
        "plugins",
        "parked",
    }
)
SLOW_COMMANDS = frozenset({"swap", "rollback", "approve", "reload"})
"""Commands that may take seconds (a plugin to open, a node to drain its in-flight packet)."""


async def dispatch(
    control: RuntimeControl, cmd: str, args: dict[str, Any], actor: Actor, why: str = ""
) -> Any:
    """Run the command `cmd` with `args` on `control` on behalf of `actor`; its result."""
    command = COMMANDS.get(cmd)
    if command is None:
        known = ", ".join(COMMANDS)
        raise UnknownCommand(f"no command {cmd[:64]!r}; commands: {known}")
    try:
        parsed = command.args.model_validate(args)
    except ValidationError as exc:
        raise ProtocolError("bad-request", f"{cmd}: {describe_validation_error(exc)}") from None
    return await command.run(control, parsed, actor, why)
