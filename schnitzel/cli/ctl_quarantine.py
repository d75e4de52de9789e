"""`schnitzel ctl quarantine list|requeue`: a running graph's quarantined packets.

    schnitzel ctl quarantine list                          # every durable node's entries
    schnitzel ctl quarantine list --node out --json
    schnitzel ctl quarantine requeue --node out --entry 3 --why "row restored from backup"
    schnitzel ctl quarantine requeue --node out --all      # every entry that can be vouched for

What `schnitzel quarantine list|requeue STORE` do on a stopped store, done by the running node's
durable inbox (its commit loop), with the same words. The control socket's commands are
`quarantine` (read-only) and `requeue-quarantined` (audited).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from schnitzel.cli.quarantine_command import print_entries, requeued_words
from schnitzel.launch.output import say

__all__ = ["QUARANTINE_SHOW", "add_quarantine_commands", "quarantine_request"]


def add_quarantine_commands(
    command: Callable[[str, str], argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """`quarantine list` and `quarantine requeue`, made with ctl's `command(name, help_text)`;
    `common` adds ctl's options to each action (they may follow it)."""
    quarantine = command(
        "quarantine", "list or requeue the packets a durable node's store quarantined"
    )
    actions = quarantine.add_subparsers(dest="quarantine_action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", help="the entries of each durable node's store, and which store seqs each took"
    )
    listing.add_argument("--node", metavar="NODE", help="only this node's store")
    requeue = actions.add_parser(
        "requeue",
        help="put the packets of entries that match their checksum back at the end of the "
        "node's backlog (done by its next commit)",
    )
    requeue.add_argument("--node", metavar="NODE", required=True, help="the durable node")
    which = requeue.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--entry",
        type=_entry_id,
        action="append",
        metavar="ID",
        help="an entry to requeue (repeat for more)",
    )
    which.add_argument(
        "--all",
        action="store_true",
        help="every entry that matches its checksum (the others are named, and stay)",
    )
    for parser in (listing, requeue):
        common(parser)


def quarantine_request(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The control command and arguments of `ctl quarantine ACTION`."""
    if args.quarantine_action == "list":
        return "quarantine", {} if args.node is None else {"node": args.node}
    if args.all:
        return "requeue-quarantined", {"node": args.node, "all": True}
    return "requeue-quarantined", {"node": args.node, "entries": list(dict.fromkeys(args.entry))}


def _entry_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a quarantine entry id (a whole number)"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


# -- text output ----------------------------------------------------------------------------


def _show_listing(result: dict[str, Any]) -> None:
    nodes = result.get("nodes") or {}
    if not nodes:
        say("no node of this graph has a durable inbox, so none has a quarantine table")
        return
    for index, (node_id, listed) in enumerate(nodes.items()):
        if index:
            say("")
        say(f"node {node_id} ({listed.get('store')}):")
        print_entries(str(listed.get("store")), listed.get("entries") or [])


def _show_requeued(result: dict[str, Any]) -> None:
    for skipped in result.get("skipped") or []:
        say(f"entry {skipped.get('id')}: skipped: {skipped.get('why')}")
    node = result.get("node")
    then = f"node {node!r} takes them after what it holds now"
    entries = result.get("entries") or []
    say(requeued_words(result.get("requeued") or 0, len(entries), str(result.get("store")), then))


QUARANTINE_SHOW: dict[str, Callable[[Any], None]] = {
    "quarantine": _show_listing,
    "requeue-quarantined": _show_requeued,
}
