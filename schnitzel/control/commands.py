"""The commands of the control socket: one strict arguments model each (`command_args.py`,
imported at the first command served), mapped onto the in-process control API
(`schnitzel.control.runtime_control.RuntimeControl`).

    result = await dispatch(control, "throttle", {"node": "src", "rate_hz": 40.0}, actor, why)

Arguments that do not fit their model are a `ProtocolError("bad-request")`; a name that is
no command is `UnknownCommand`; the control API's own refusals (`ControlError`) pass through.
Read-only commands (hello, status, nodes, describe, events, suggestions, controller, audit,
plugins, parked, quarantine) never write the audit log; the control API audits every change
it is asked for, applied or refused.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from schnitzel.contract.run_report import NodeSummary, RunReport, node_summary
from schnitzel.control.actor import Actor
from schnitzel.control.audit import utc_timestamp
from schnitzel.control.protocol import PROTOCOL_VERSION, ProtocolError, describe_validation_error
from schnitzel.errors import SchnitzelError

if TYPE_CHECKING:
    from schnitzel.control.command_args import (
        Args,
        AuditArgs,
        EventsArgs,
        NodeArgs,
        ParkedArgs,
        ParkedSelectionArgs,
        PluginsArgs,
        QuarantineArgs,
        QuarantineRequeueArgs,
        StopArgs,
        SuggestionArgs,
        SwapArgs,
        ThrottleArgs,
    )
    from schnitzel.control.runtime_control import RuntimeControl

__all__ = ["COMMANDS", "READ_ONLY_COMMANDS", "SLOW_COMMANDS", "UnknownCommand", "dispatch"]


class UnknownCommand(SchnitzelError):
    """A request named no command of the control socket."""


Handler = Callable[["RuntimeControl", Any, Actor, str], Awaitable[Any]]


class Command(NamedTuple):
    """A command's arguments model (its name in `command_args`) and what it does."""

    args: str
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


async def _quarantine(control: RuntimeControl, args: QuarantineArgs, _: Actor, __: str) -> Any:
    from schnitzel.control.quarantine_control import quarantine_listing

    return await quarantine_listing(control, args.node)


async def _requeue_quarantined(
    control: RuntimeControl, args: QuarantineRequeueArgs, actor: Actor, why: str
) -> Any:
    from schnitzel.control.quarantine_control import requeue_quarantined

    return await requeue_quarantined(control, args.node, args.entries, actor=actor, why=why)


COMMANDS: dict[str, Command] = {
    "hello": Command("Args", _hello),
    "status": Command("Args", _status),
    "nodes": Command("Args", _nodes),
    "describe": Command("Args", _describe),
    "events": Command("EventsArgs", _events),
    "suggestions": Command("Args", _suggestions),
    "controller": Command("Args", _controller),
    "audit": Command("AuditArgs", _audit),
    "plugins": Command("PluginsArgs", _plugins),
    "throttle": Command("ThrottleArgs", _throttle),
    "pause": Command("NodeArgs", _pause),
    "resume": Command("NodeArgs", _resume),
    "swap": Command("SwapArgs", _swap),
    "rollback": Command("NodeArgs", _rollback),
    "approve": Command("SuggestionArgs", _approve),
    "reject": Command("SuggestionArgs", _reject),
    "reload": Command("Args", _reload),
    "stop": Command("StopArgs", _stop),
    "parked": Command("ParkedArgs", _parked),
    "requeue": Command("ParkedSelectionArgs", _requeue),
    "drop-parked": Command("ParkedSelectionArgs", _drop_parked),
    "quarantine": Command("QuarantineArgs", _quarantine),
    "requeue-quarantined": Command("QuarantineRequeueArgs", _requeue_quarantined),
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
        "quarantine",
    }
)
SLOW_COMMANDS = frozenset({"swap", "rollback", "approve", "reload", "requeue-quarantined"})
"""Commands that may take seconds (a plugin to open, a node to drain its in-flight packet, a
commit behind a full disk), not cut off when their client gives up: they end and are audited."""


async def dispatch(
    control: RuntimeControl, cmd: str, args: dict[str, Any], actor: Actor, why: str = ""
) -> Any:
    """Run the command `cmd` with `args` on `control` on behalf of `actor`; its result."""
    command = COMMANDS.get(cmd)
    if command is None:
        known = ", ".join(COMMANDS)
        raise UnknownCommand(f"no command {cmd[:64]!r}; commands: {known}")
    # pydantic and the models: at the first command served, not while the runtime starts
    from pydantic import ValidationError

    from schnitzel.control import command_args

    model: type[Args] = getattr(command_args, command.args)
    try:
        parsed = model.model_validate(args)
    except ValidationError as exc:
        raise ProtocolError("bad-request", f"{cmd}: {describe_validation_error(exc)}") from None
    return await command.run(control, parsed, actor, why)
