"""`schnitzel ctl COMMAND`: control a running runtime through its control socket.

    schnitzel ctl status
    schnitzel ctl throttle src --rate-hz 40 --why "the sink is drowning"
    schnitzel ctl swap detect --plugin sample --config-file sample.yaml --dry-run
    schnitzel ctl quarantine requeue --node out --entry 3 --why "row restored"

Exit codes: 0 done; 1 refused by the runtime (the message says why), or a `status` or `nodes`
answer without keys this `ctl` reads (a runtime of another version); 2 usage (bad arguments,
an unreadable config file, several runtimes answer and none was chosen); 3 the runtime cannot
be reached (no socket, nothing listening, permission denied, no reply in time) or the socket
is not safe to talk to (another user's: nothing was sent).
Text output is for people; `--json` prints the result.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schnitzel.cli.ctl_parked import (
    PARKED_COMMANDS,
    PARKED_SHOW,
    add_parked_commands,
    parked_request,
)
from schnitzel.cli.ctl_quarantine import (
    QUARANTINE_SHOW,
    add_quarantine_commands,
    quarantine_request,
)
from schnitzel.errors import ReportShapeError, SchnitzelError
from schnitzel.launch.output import print_json, print_table, say
from schnitzel.runtime.state_dir import STATE_DIR_ORDER

if TYPE_CHECKING:
    from schnitzel.contract.run_report import NodeReport, NodeSummary

__all__ = ["add_ctl_parser", "count_at_least", "run_ctl"]

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
QUICK_TIMEOUT_S = 10.0
"""How long a quick command waits for its reply (a runtime stuck longer is in trouble)."""
SLOW_TIMEOUT_S = 75.0
"""swap, rollback, approve, reload, quarantine requeue: the runtime gives up on its side after
60 s and says so."""
CONFIG_FILE_MAX_BYTES = 512 * 1024
USAGE_CODES = frozenset({"bad-request", "unknown-command", "too-large"})


def add_ctl_parser(commands: Any, with_commands: bool = True) -> None:
    """The `ctl` subcommand and its commands, on the `schnitzel` parser's subparsers.

    `with_commands=False` adds `ctl` alone, for a `schnitzel` that runs another subcommand:
    declaring its two dozen commands costs about 4% of a whole `schnitzel validate`.
    """
    ctl = commands.add_parser(
        "ctl",
        help="control a running runtime (status, throttle, pause, swap, ...)",
        description="Control a running runtime through its control socket. Exit 0 done, "
        "1 refused by the runtime, 2 usage, 3 the runtime cannot be reached.",
    )
    if not with_commands:
        return
    _add_common(ctl, suppress=False)
    sub = ctl.add_subparsers(dest="ctl_command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        _add_common(parser, suppress=True)
        return parser

    command("status", help_text="the run report, live")
    command("nodes", help_text="every node: health, counts, queue, throttle")
    command("describe", help_text="the graph being run: nodes, configs (secrets masked), edges")
    command("hello", help_text="which runtime answers: pid, graph, run id")
    events = command("events", help_text="recent events (health changes, errors, changes)")
    events.add_argument("--after", type=count_at_least(0), default=0, metavar="SEQ")
    events.add_argument("--limit", type=count_at_least(1), default=50, metavar="N")
    command("suggestions", help_text="the controller's suggestions")
    command("controller", help_text="the controller's mode and why it suggests nothing now")
    audit = command("audit", help_text="the audit log: who changed what, when and why")
    audit.add_argument("--limit", type=count_at_least(1), default=20, metavar="N")
    plugins = command("plugins", help_text="plugins a node may be swapped to")
    plugins.add_argument("--kind", metavar="KIND", help="only plugins for this node kind")
    throttle = command("throttle", help_text="change a node's rate, sampling or concurrency")
    throttle.add_argument("node", metavar="NODE")
    throttle.add_argument(
        "--rate-hz",
        type=_rate,
        metavar="X|none",
        help="packets per second of a source (none: as fast as accepted)",
    )
    throttle.add_argument(
        "--sample-every", type=count_at_least(1), metavar="N", help="keep 1 of every N packets"
    )
    throttle.add_argument(
        "--concurrency", type=count_at_least(1), metavar="N", help="plugin calls at once"
    )
    for name, what in (
        ("pause", "stop taking packets"),
        ("resume", "take packets again"),
        ("rollback", "back to the version before the last swap"),
    ):
        command(name, help_text=f"{what} (NODE)").add_argument("node", metavar="NODE")
    swap = command("swap", help_text="replace a node's plugin and/or config while it runs")
    swap.add_argument("node", metavar="NODE")
    swap.add_argument(
        "--plugin", metavar="P", help="the plugin to run (default: keep the node's plugin)"
    )
    swap.add_argument(
        "--config-file",
        metavar="F",
        help="the plugin's config (YAML or JSON mapping); default: the current config for "
        "the same plugin, the defaults of another",
    )
    swap.add_argument(
        "--dry-run", action="store_true", help="validate and show the diff; change nothing"
    )
    command("approve", help_text="apply a suggestion (ID)").add_argument("id", metavar="ID")
    command("reject", help_text="reject a suggestion (ID)").add_argument("id", metavar="ID")
    command("reload", help_text="apply the edited graph file live, as SIGHUP does")
    stop = command("stop", help_text="stop the sources and drain, as SIGTERM does")
    stop.add_argument("--force", action="store_true", help="stop now, as a second signal does")
    add_parked_commands(command)
    add_quarantine_commands(command, lambda parser: _add_common(parser, suppress=True))


def _add_common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Options accepted before and after COMMAND; after it, they only override (SUPPRESS
    keeps a subcommand's defaults from hiding what was given before COMMAND)."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--socket",
        metavar="PATH",
        default=default(None),
        help="the runtime's control socket (default: the only runtime answering on the "
        "state dir's sockets; with several, they are listed)",
    )
    parser.add_argument(
        "--graph",
        metavar="GRAPH",
        default=default(None),
        help="the runtime running this graph file (its default socket in the state dir)",
    )
    parser.add_argument(
        "--state-dir",
        metavar="PATH",
        default=default(None),
        help=f"look for the runtimes' sockets in this state dir (default: {STATE_DIR_ORDER})",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print the result as JSON"
    )
    parser.add_argument(
        "--why", default=default(""), metavar="TEXT", help="the reason, for the audit log"
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=default(None),
        metavar="S",
        help=f"wait at most S seconds for the reply (default {QUICK_TIMEOUT_S:g}; "
        f"{SLOW_TIMEOUT_S:g} for swap, rollback, approve, reload, quarantine requeue)",
    )


def run_ctl(args: argparse.Namespace) -> int:
    """Send the command to the runtime, print what it answered; the exit code."""
    from schnitzel.control.client import ControlClient, ControlConnectionError, RequestFailed

    command: str = args.ctl_command
    try:
        if command == "quarantine":  # an action under it names the command sent
            command, request = quarantine_request(args)
        else:
            request = _request_args(args)
    except _UsageError as exc:
        say(f"schnitzel ctl: {exc}", err=True)
        return EXIT_USAGE
    slow = command in ("swap", "rollback", "approve", "reload", "requeue-quarantined")
    timeout = args.timeout or (SLOW_TIMEOUT_S if slow else QUICK_TIMEOUT_S)
    try:
        socket_path = _socket_path(args)
        client = ControlClient(socket_path, via="ctl", timeout_s=timeout)
        with client:
            result = client.request(command, request, why=args.why)
    except ControlConnectionError as exc:
        say(f"schnitzel ctl: {exc}", err=True)
        return EXIT_UNREACHABLE
    except _UsageError as exc:  # several runtimes answer: the operator must choose
        say(f"schnitzel ctl: {exc}", err=True)
        return EXIT_USAGE
    except RequestFailed as exc:
        what = "refused" if exc.code == "refused" else f"failed ({exc.code})"
        if exc.message.startswith(f"{command} {what}"):  # the runtime said it already
            say(f"schnitzel ctl: {exc.message}", err=True)
        else:
            say(f"schnitzel ctl: {command} {what}: {exc.message}", err=True)
        return EXIT_USAGE if exc.code in USAGE_CODES else EXIT_REFUSED
    if args.json:
        print_json(result)  # as it came: scripts read the runtime's own keys
        return EXIT_OK
    try:
        SHOW.get(command, _show_changes)(result)
    except ReportShapeError as exc:
        say(f"schnitzel ctl: {exc}", err=True)
        return EXIT_REFUSED
    return EXIT_OK


class _UsageError(SchnitzelError):
    """Arguments that cannot be sent (an unreadable config file)."""


def _request_args(args: argparse.Namespace) -> dict[str, Any]:
    command = args.ctl_command
    if command in PARKED_COMMANDS:
        try:
            return parked_request(args)
        except ValueError as exc:
            raise _UsageError(str(exc)) from None
    if command == "events":
        return {"after": args.after, "limit": args.limit}
    if command == "audit":
        return {"limit": args.limit}
    if command == "plugins":
        return {"kind": args.kind} if args.kind else {}
    if command == "throttle":
        knobs = {
            k: getattr(args, k)
            for k in ("rate_hz", "sample_every", "concurrency")
            if getattr(args, k) is not None
        }
        if args.rate_hz is _RATE_NONE:
            knobs["rate_hz"] = None
        if not knobs:
            raise _UsageError("throttle: give --rate-hz, --sample-every or --concurrency")
        return {"node": args.node, **knobs}
    if command in ("pause", "resume", "rollback"):
        return {"node": args.node}
    if command == "swap":
        if not (args.plugin or args.config_file):
            raise _UsageError(
                "swap: give --plugin P, --config-file F (change only the config), or both"
            )
        request: dict[str, Any] = {"node": args.node}
        if args.plugin:
            request["plugin"] = args.plugin
        if args.config_file:
            request["config"] = _read_config(Path(args.config_file))
        if args.dry_run:
            request["dry_run"] = True
        return request
    if command in ("approve", "reject"):
        return {"id": args.id}
    if command == "stop":
        return {"force": args.force}
    return {}


def _socket_path(args: argparse.Namespace) -> Path:
    """--socket; else the default socket of --graph; else the only runtime answering on
    the state dir's sockets (schnitzel.control.discovery)."""
    if args.socket:
        return Path(args.socket)  # without discovery's imports (hashlib, for one)
    from schnitzel.control.discovery import SeveralRuntimes, choose_socket
    from schnitzel.runtime.state_dir import default_state_dir

    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    try:
        return choose_socket(state_dir, Path(args.graph) if args.graph else None)
    except SeveralRuntimes as exc:
        raise _UsageError(str(exc)) from None


def _read_config(path: Path) -> dict[str, Any]:
    """A plugin config from a YAML or JSON file (read here: the runtime never reads the
    operator's files), loaded with the graph loader's guards."""
    from schnitzel.spec.yaml_source import (
        LoadLimits,
        YamlLoadFailed,
        decode_text,
        load_yaml,
        read_graph_bytes,
    )

    limits = LoadLimits(max_bytes=CONFIG_FILE_MAX_BYTES, max_depth=24, max_nodes=50_000)
    try:
        size = path.stat().st_size
        if size > CONFIG_FILE_MAX_BYTES:
            raise _UsageError(
                f"the config file {path} is {size // 1024} KiB; a plugin config may be at most "
                f"{CONFIG_FILE_MAX_BYTES // 1024} KiB"
            )
        document = load_yaml(decode_text(read_graph_bytes(path, limits)), limits)
    except OSError as exc:
        raise _UsageError(f"cannot read the config file {path}: {exc.strerror}") from None
    except YamlLoadFailed as exc:
        line = f" (line {exc.problem.line})" if exc.problem.line else ""
        raise _UsageError(f"{path}{line}: {exc.problem.message}") from None
    if document.problems:
        raise _UsageError(f"{path}: {document.problems[0].message}")
    if not isinstance(document.data, dict):
        raise _UsageError(
            f"{path} holds a {type(document.data).__name__}; a config file is a mapping of "
            "the plugin's options (`schnitzel plugins` lists them)"
        )
    try:  # dates and the like as text; .nan and .inf are no config value JSON can carry
        return json.loads(json.dumps(document.data, default=str, allow_nan=False))
    except ValueError:
        raise _UsageError(
            f"{path}: .nan and .inf are not values a config can take; give a number"
        ) from None


# -- argument types -------------------------------------------------------------------------

_RATE_NONE = object()
"""`--rate-hz none`: as fast as accepted."""


def _rate(text: str) -> Any:
    if text.strip().lower() == "none":
        return _RATE_NONE
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a rate: give packets per second, or none"
        ) from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of packets/s")
    return value


def count_at_least(lowest: int) -> Callable[[str], int]:
    """An argparse type: a whole number, at least `lowest`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"{text} must be at least {lowest}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    return value


# -- text output ----------------------------------------------------------------------------


def _show_status(reply: object) -> None:
    from schnitzel.contract.run_report import parse_run_report

    report = parse_run_report(reply, "the runtime's `status` answer")
    state: str = report["status"]
    if report["stop_reason"]:
        state += f" ({report['stop_reason']})"
    facts = [
        f"graph {report['graph']}",
        state,
        f"up {_number(report['duration_s'])} s",
        f"controller {report['controller']}",
    ]
    if report["pid"]:
        facts.append(f"pid {report['pid']}")
    say("  ".join(facts))
    totals = report["totals"]
    say("totals: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    rows = [
        [*_node_cells(node_id, n), _number(n["latency_ms"]["p99"])]
        for node_id, n in report["nodes"].items()
    ]
    print_table([*NODE_HEADER, "P99 MS"], rows)
    for node_id, n in report["nodes"].items():  # why a node is not ok, in words
        if n["health_reason"]:
            say(f"{node_id}: {n['health']}: {n['health_reason']}")


def _show_nodes(reply: object) -> None:
    from schnitzel.contract.run_report import parse_node_summaries

    rows = [
        [
            *_node_cells(n["id"], n),
            "paused" if n["paused"] else "",
            _throttle_text(n["throttle"]),
            str(n["generation"]) + ("*" if n["can_rollback"] else ""),
        ]
        for n in parse_node_summaries(reply, "the runtime's `nodes` answer")
    ]
    print_table([*NODE_HEADER, "", "THROTTLE", "GEN"], rows)


NODE_HEADER = ("NODE", "KIND", "PLUGIN", "HEALTH", "IN", "OUT", "DROPPED", "QUEUE")


def _node_cells(node_id: str, n: NodeReport | NodeSummary) -> list[str]:
    """The columns `status` and `nodes` both show for a node."""
    return [
        node_id,
        n["kind"],
        n["plugin"],
        n["health"],
        str(n["in"]),
        str(n["out"]),
        str(n["dropped"]),
        f"{n['queue_depth']}/{n['queue_capacity']}",
    ]


def _throttle_text(throttle: dict[str, float | None]) -> str:
    parts = []
    if "rate_hz" in throttle:
        rate = throttle["rate_hz"]
        parts.append("max rate" if rate is None else f"{_number(rate)}/s")
    if (throttle.get("sample_every") or 1) > 1:
        parts.append(f"1 in {throttle['sample_every']}")
    if (throttle.get("concurrency") or 1) > 1:
        parts.append(f"x{throttle['concurrency']}")
    return ", ".join(parts)


def _show_describe(graph: dict[str, Any]) -> None:
    say(f"graph {graph.get('graph')}")
    for node in graph.get("nodes", []):
        generation = f" (generation {node['generation']})" if node.get("generation") else ""
        say(f"  {node['id']}: {node.get('kind')} {node.get('plugin')}{generation}")
        for key, value in (node.get("config") or {}).items():
            say(f"      {key}: {json.dumps(value, default=str)}")
    say("edges:")
    for edge in graph.get("edges", []):
        say(f"  {edge.get('from')} -> {edge.get('to')}")


def _show_hello(hello: dict[str, Any]) -> None:
    say(
        f"runtime pid {hello.get('pid')}, graph {hello.get('graph')}, run {hello.get('run_id')}, "
        f"started {hello.get('started')}, controller {hello.get('controller')}, "
        f"protocol {hello.get('protocol')}"
    )


def _show_events(reply: object) -> None:
    from schnitzel.contract.run_report import parse_events

    events = parse_events(reply, "the runtime's `events` answer")
    if not events:
        say("no events")
    for event in events:
        node = f" [{event['node']}]" if event["node"] else ""
        say(f"{_clock(event['ts'])} #{event['seq']} {event['level']}{node} "
            f"{event['message']}")  # fmt: skip


def _show_suggestions(suggestions: list[dict[str, Any]]) -> None:
    if not suggestions:
        say("no suggestions (`schnitzel ctl controller` says why)")
        return
    rows = [
        [
            str(s.get("id")),
            str(s.get("status")),
            str(s.get("node")),
            _action_text(s.get("action")),
            str(s.get("rationale", "")),
        ]
        for s in suggestions
    ]
    print_table(["ID", "STATUS", "NODE", "ACTION", "RATIONALE"], rows)


def _show_controller(state: dict[str, Any]) -> None:
    say(f"controller {state.get('mode')}, {state.get('open', 0)} open suggestions")
    for line in state.get("why_none") or ():
        say(f"  {line}")


def _action_text(action: Any) -> str:
    if not isinstance(action, dict):
        return ""
    args = " ".join(f"{k}={v}" for k, v in (action.get("args") or {}).items())
    return f"{action.get('command')} {action.get('node')} {args}".strip()


def _show_audit(entries: list[dict[str, Any]]) -> None:
    if not entries:
        say("the audit log is empty")
        return
    from schnitzel.control.audit import audit_change  # one vocabulary with the console

    rows = []
    for entry in entries:
        who = entry.get("who") or {}
        ssh = f" ssh {str(who['ssh']).split()[0]}" if who.get("ssh") else ""
        outcome = entry.get("outcome", "")
        if entry.get("error"):
            # A refused reload's error has a line per problem and hint: one row per entry.
            outcome += ": " + " ".join(str(entry["error"]).split())
        rows.append(
            [
                str(entry.get("ts")),
                f"{who.get('user')} via {who.get('via')}{ssh}",
                str(entry.get("action")),
                str(entry.get("node") or "-"),
                audit_change(
                    entry.get("before"), entry.get("after"), str(entry.get("action")), width=40
                )
                or "-",
                str(entry.get("why") or "-"),
                outcome,
            ]
        )
    print_table(["TIME", "WHO", "ACTION", "NODE", "CHANGE", "WHY", "OUTCOME"], rows)


def _show_plugins(plugins: list[dict[str, Any]]) -> None:
    rows = [[str(p.get("name")), str(p.get("kind")), str(p.get("summary", ""))] for p in plugins]
    print_table(["PLUGIN", "KIND", "SUMMARY"], rows)


def _show_swap(result: dict[str, Any]) -> None:
    before, after = result.get("before") or {}, result.get("after") or {}
    node = result.get("node")
    plugins = f"{before.get('plugin')} -> {after.get('plugin')}"
    kept = f"plugin {after.get('plugin')} kept"
    same = before.get("plugin") == after.get("plugin")
    if result.get("applied", True):
        handed = "yes" if result.get("state_handed_over") else "no"
        change = f"config changed, {kept}" if same else plugins
        say(
            f"{node}: {change} (generation {result.get('generation')}; state handed over: {handed})"
        )
    else:
        change = f"its config ({kept})" if same else plugins
        say(f"dry run: {node} would change {change}; nothing was changed")
    diff = result.get("diff")
    if diff:
        say(diff.rstrip("\n"))
    elif not diff and "diff" in result:
        say("(the config is the same)")


def _show_suggestion(suggestion: dict[str, Any]) -> None:
    say(
        f"{suggestion.get('id')}: {suggestion.get('status')} "
        f"({_action_text(suggestion.get('action'))})"
    )


def _show_reload(result: dict[str, Any]) -> None:
    applied = result.get("applied") or []
    if not applied:
        say(f"reloaded {result.get('graph')}: nothing changed")
        return
    say(f"reloaded {result.get('graph')}:")
    for change in applied:
        node = change.get("node")
        if "swap" in change:  # the plugin alone said nothing of a config-only change
            swap = change["swap"] or {}
            said = f"{swap.get('plugin')} {_value(swap.get('config') or {}, width=60)}"
            say(f"  {node}: swapped, now {said}")
        for knob, value in (change.get("throttle") or {}).items():
            if _is_change(value):
                say(f"  {node}: {knob} {_value(value['before'])} -> {_value(value['after'])}")


def _show_stop(result: dict[str, Any]) -> None:
    if result.get("forced"):
        say("stopping now (forced): queued in-memory packets are dropped")
    else:
        say("stopping: the sources stop and in-flight packets drain")


def _show_changes(result: Any) -> None:
    """One line per change (`node: knob before -> after`) for throttle, pause and resume."""
    if not isinstance(result, dict):
        say(json.dumps(result, default=str))
        return
    node = result.get("node")
    changes = result.get("changes")
    if not isinstance(changes, dict):
        changes = {k: v for k, v in result.items() if _is_change(v)}
    for knob, change in changes.items():
        if _is_change(change):
            say(f"{node}: {knob} {_value(change['before'])} -> {_value(change['after'])}")
    if not changes:
        say(json.dumps(result, default=str))


def _is_change(value: Any) -> bool:
    return isinstance(value, dict) and "before" in value and "after" in value


def _value(value: Any, width: int = 40) -> str:
    from schnitzel.runtime.knobs import plain_value  # the vocabulary of the console

    text = plain_value(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def _clock(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return str(ts)
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")  # the operator's local time


SHOW: dict[str, Callable[[Any], None]] = {
    "status": _show_status,
    "nodes": _show_nodes,
    "describe": _show_describe,
    "hello": _show_hello,
    "events": _show_events,
    "suggestions": _show_suggestions,
    "controller": _show_controller,
    "audit": _show_audit,
    "plugins": _show_plugins,
    "swap": _show_swap,
    "rollback": _show_swap,
    "approve": _show_suggestion,
    "reject": _show_suggestion,
    "reload": _show_reload,
    "stop": _show_stop,
    **PARKED_SHOW,
    **QUARANTINE_SHOW,
}
