"""`schnitzel state list` and `schnitzel state prune`: what the state directory holds, and
removing what is stale (`schnitzel.control.state_entries` decides which)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from schnitzel.runtime.state_dir import STATE_DIR_ORDER

__all__ = ["add_state_parser", "run_state"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
DEFAULT_OLDER_THAN = "7d"


def add_state_parser(commands: Any) -> None:
    """`schnitzel state {list,prune}` under the `schnitzel` command."""
    state = commands.add_parser(
        "state",
        help="list the state directory, or prune what is stale in it",
        description="The state directory keeps source checkpoints, the audit log, control "
        "sockets and the console's logs. `list` shows every file and whether `prune` would "
        "remove it; `prune` removes checkpoints of input files that are gone, damaged "
        "checkpoints moved aside and unfinished writes (each not written for --older-than), "
        "and control sockets nobody listens on. Never the audit log, logs or durable stores.",
    )
    actions = state.add_subparsers(dest="state_action", metavar="ACTION", required=True)
    for name, what in (
        ("list", "every file of the state directory, and whether prune would remove it"),
        ("prune", "remove what is stale, naming each file removed"),
    ):
        action = actions.add_parser(name, help=what, description=what[0].upper() + what[1:] + ".")
        action.add_argument(
            "--state-dir",
            metavar="PATH",
            help=f"the state directory (default: {STATE_DIR_ORDER})",
        )
        action.add_argument(
            "--older-than",
            metavar="AGE",
            default=DEFAULT_OLDER_THAN,
            help="checkpoints and leftovers count as stale once not written for this long: "
            f"30d, 12h, 15m, 90s, or 0 (default {DEFAULT_OLDER_THAN})",
        )
        action.add_argument("--json", action="store_true", help="print the result as JSON")


def run_state(args: argparse.Namespace) -> int:
    """Run `schnitzel state list|prune`; the exit code."""
    from schnitzel.control.state_entries import parse_age, prune, survey
    from schnitzel.launch.output import print_json, say
    from schnitzel.runtime.state_dir import default_state_dir

    try:
        older_than_s = parse_age(args.older_than)
    except ValueError as exc:
        say(f"schnitzel state: --older-than {exc}", err=True)
        return EXIT_USAGE
    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    entries = survey(state_dir, older_than_s)
    if args.state_action == "list":
        if args.json:
            print_json({"state_dir": str(state_dir), "entries": [e.to_json() for e in entries]})
        else:
            _print_list(state_dir, entries)
        return EXIT_OK
    removed, failed = prune(entries)
    if args.json:
        print_json(
            {
                "state_dir": str(state_dir),
                "removed": [e.to_json() for e in removed],
                "failed": failed,
                "kept": len(entries) - len(removed) - len(failed),
            }
        )
    else:
        for entry in removed:
            say(f"removed {entry.path} ({entry.kind}: {entry.stale})")
        for line in failed:
            say(f"could not remove {line}", err=True)
        kept = len(entries) - len(removed) - len(failed)
        say(f"{len(removed)} removed, {kept} kept in {state_dir} (`schnitzel state list`: why)")
    return EXIT_FAILED if failed else EXIT_OK


def _print_list(state_dir: Path, entries: list[Any]) -> None:
    from schnitzel.launch.output import print_table, say

    if not entries:
        say(f"{state_dir}: empty, or not there")
        return
    rows = [
        (
            _age(e.age_s),
            _size(e.size),
            e.kind,
            "remove" if e.stale else "keep",
            f"{_shown(e.path, state_dir)}  ({e.about}{'; ' + e.stale if e.stale else ''})",
        )
        for e in entries
    ]
    say(f"state dir {state_dir}")
    print_table(("AGE", "SIZE", "KIND", "PRUNE", "FILE"), rows)
    stale = sum(1 for e in entries if e.stale)
    say(f"{len(entries)} files, {stale} stale (`schnitzel state prune` removes them)")


def _shown(path: Path, state_dir: Path) -> str:
    return str(path.relative_to(state_dir)) if path.is_relative_to(state_dir) else str(path)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _size(size: int) -> str:
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("k", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f}{unit}"
    return str(size)
