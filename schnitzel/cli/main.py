"""`schnitzel`: validate and run graphs, control a running one, list or prune the state
directory, read or requeue what a durable store quarantined, print the schema, list plugins.

Exit codes: 0 success (graph valid, run ended), 1 graph invalid, 2 usage error (bad
arguments, a file that cannot be read), 3 the run failed, 130 interrupted. `schnitzel ctl`:
0 done, 1 refused by the runtime, 2 usage, 3 the runtime cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from schnitzel import __version__
from schnitzel.cli.ctl_command import add_ctl_parser, count_at_least
from schnitzel.cli.quarantine_command import add_quarantine_parser
from schnitzel.cli.state_command import add_state_parser
from schnitzel.launch.output import guarded
from schnitzel.launch.run_arguments import add_run_arguments

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CommandParser(argparse.ArgumentParser):
    """The parser of a subcommand (`schnitzel ctl status`): arguments it does not take are
    its error, with its usage. argparse leaves them to the top parser, whose message names
    `schnitzel` and shows the usage of no command."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `schnitzel` parser. Given the subcommand about to run (`command`), the commands of
    `ctl` are declared only when it is `ctl`: every subcommand is still listed for `--help` and
    for argparse's "invalid choice" message."""
    parser = argparse.ArgumentParser(
        prog="schnitzel",
        description="Edge-first stream runtime: YAML node graphs, durable delivery.",
    )
    parser.add_argument("--version", action="version", version=f"schnitzel {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=CommandParser
    )

    validate = commands.add_parser(
        "validate",
        help="check a graph file and list every problem",
        description="Check a graph file before running it. Exit 0 valid, 1 invalid, 2 usage.",
    )
    validate.add_argument("graph", metavar="GRAPH", help="graph file (.yaml), or - for stdin")
    validate.add_argument("--json", action="store_true", help="print the report as JSON")

    run = commands.add_parser(
        "run",
        help="run a graph headless until a stop condition; print or write the run report",
        description="Validate and run a graph. Exit 0 ended, 1 invalid, 2 usage, 3 failed, "
        "130 forced by a second signal.",
    )
    run.add_argument("graph", metavar="GRAPH", help="graph file (.yaml), or - for stdin")
    add_run_arguments(run)

    add_ctl_parser(commands, with_commands=command in (None, "ctl"))
    add_state_parser(commands)
    add_quarantine_parser(commands)

    schema = commands.add_parser(
        "schema", help="print the JSON Schema of graph files (for editors)"
    )
    schema.add_argument(
        "--indent",
        type=count_at_least(0),
        default=2,
        help="spaces per level, 0 for one line (default 2)",
    )

    plugins = commands.add_parser("plugins", help="list installed plugins and their options")
    plugins.add_argument("--json", action="store_true", help="print the list as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `schnitzel` console script."""
    args = build_parser(_command_named(sys.argv[1:] if argv is None else argv)).parse_args(argv)
    return guarded(lambda: _dispatch(args))


def _command_named(argv: Sequence[str]) -> str | None:
    """The subcommand `argv` runs: its first word that is not an option (only `schnitzel`'s
    own options, which take no value, may come before it)."""
    return next((word for word in argv if not word.startswith("-")), None)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "validate":
        return _validate(args)
    if args.command == "run":
        # before the run command's imports, which take most of a second on a small box
        from schnitzel.launch.early_signals import EarlySignals

        early = EarlySignals.install()
        from schnitzel.launch.run_command import run_graph

        return run_graph(args, early=early)
    if args.command == "ctl":
        from schnitzel.cli.ctl_command import run_ctl

        return run_ctl(args)
    if args.command == "state":
        from schnitzel.cli.state_command import run_state

        return run_state(args)
    if args.command == "quarantine":
        from schnitzel.cli.quarantine_command import run_quarantine

        return run_quarantine(args)
    if args.command == "schema":
        from schnitzel.cli.info_commands import run_schema

        return run_schema(indent=args.indent)
    from schnitzel.cli.info_commands import run_plugins

    return run_plugins(as_json=args.json)


def _validate(args: argparse.Namespace) -> int:
    # Imports and checks make no garbage cycles worth collecting, and the collector's passes
    # over what they allocate cost about 3% of the command (docs/architecture.md).
    from schnitzel.launch.start_up_heap import frozen_start_up

    with frozen_start_up():
        from schnitzel.launch.validate_command import run_validate

        return run_validate(args.graph, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
