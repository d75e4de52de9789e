"""`schnitzel ctl parked | requeue | drop-parked`: a durable node's parked packets.

    schnitzel ctl parked out                    # list: seq, parked at, reason, an excerpt
    schnitzel ctl parked out --show 12          # one packet whole
    schnitzel ctl requeue out 12 --why "backend fixed"         # or 3-9, 1,4,7, --all
    schnitzel ctl drop-parked out --all --why "test data from the bench"

A packet is parked when its node refused it while others passed (`on_error: park`,
docs/contracts/delivery.md). Requeue moves it back to the end of the node's backlog; drop
deletes it for good (counted, reason parked_dropped) and needs `--why`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from schnitzel.launch.output import print_table, say

__all__ = ["PARKED_COMMANDS", "PARKED_SHOW", "add_parked_commands", "parked_request"]

PARKED_COMMANDS = frozenset({"parked", "requeue", "drop-parked"})


def add_parked_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """The three commands, made with ctl's `command(name, help_text)`."""
    parked = command("parked", "a durable node's parked packets (refused by its plugin)")
    parked.add_argument("node", metavar="NODE")
    parked.add_argument("--show", type=_seq, metavar="SEQ", help="show this packet whole")
    parked.add_argument(
        "--after", type=_seq_or_zero, default=0, metavar="SEQ", help="list those after SEQ"
    )
    parked.add_argument("--limit", type=_seq, default=50, metavar="N", help="list at most N")
    for name, what in (
        ("requeue", "move parked packets back to the node's backlog, to be tried again"),
        ("drop-parked", "delete parked packets for good (counted; --why is required)"),
    ):
        parser = command(name, what)
        parser.add_argument("node", metavar="NODE")
        parser.add_argument(
            "seqs",
            nargs="?",
            type=_selection,
            metavar="SEQ",
            help="a parked seq, a range FIRST-LAST, or a list SEQ,SEQ,...",
        )
        parser.add_argument("--all", action="store_true", help="every parked packet")


def parked_request(args: argparse.Namespace) -> dict[str, Any]:
    """The request arguments of a parked command; ValueError for a usage mistake."""
    if args.ctl_command == "parked":
        request: dict[str, Any] = {"node": args.node}
        if args.show is not None:
            request["seq"] = args.show
        else:
            request.update(after=args.after, limit=args.limit)
        return request
    if (args.seqs is None) == (not args.all):
        raise ValueError(f"{args.ctl_command}: give SEQ (12, 3-9 or 1,4,7) or --all, one of them")
    if args.all:
        return {"node": args.node, "all": True}
    return {"node": args.node, **args.seqs}


def _seq(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a parked seq (a whole number)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _seq_or_zero(text: str) -> int:
    return 0 if text.strip() == "0" else _seq(text)


def _selection(text: str) -> dict[str, Any]:
    """`12` -> seqs [12]; `3-9` -> first 3, last 9; `1,4,7` -> seqs [1, 4, 7]."""
    if "-" in text:
        first, _, last = text.partition("-")
        low, high = _seq(first), _seq(last)
        if low > high:
            raise argparse.ArgumentTypeError(f"{text}: give FIRST-LAST with FIRST <= LAST")
        return {"first": low, "last": high}
    return {"seqs": [_seq(part) for part in text.split(",")]}


# -- text output ----------------------------------------------------------------------------


def _show_parked(result: dict[str, Any]) -> None:
    node = result.get("node")
    packet = result.get("packet")
    if isinstance(packet, dict):
        _show_one(node, packet)
        return
    packets = result.get("packets") or []
    say(f"{node}: {result.get('parked')} parked ({result.get('parked_bytes')} bytes, "
        f"at most {result.get('max_parked')})")  # fmt: skip
    if not packets:
        return
    rows = [
        [
            str(p.get("seq")),
            _clock(p.get("parked_at")),
            str(p.get("packet_id")),
            _cut(str(p.get("reason")), 110),
            str(p.get("excerpt")),
        ]
        for p in packets
    ]
    print_table(["SEQ", "PARKED AT", "PACKET", "REASON", "PAYLOAD"], rows)
    if len(packets) < (result.get("parked") or 0):
        say(f"(more: --after {packets[-1].get('seq')})")


def _show_one(node: Any, packet: dict[str, Any]) -> None:
    say(f"{node}: parked packet {packet.get('seq')} (store seq {packet.get('packet_seq')})")
    say(f"  packet id: {packet.get('packet_id')}")
    say(f"  parked at: {_clock(packet.get('parked_at'))}")
    say(f"  reason:    {packet.get('reason')}")
    say(json.dumps(packet.get("packet"), indent=2, ensure_ascii=False, default=str))


def _show_changed(result: dict[str, Any]) -> None:
    parked = result.get("parked") or {}
    for verb in ("requeued", "dropped"):
        if verb in result:
            say(
                f"{result.get('node')}: {result[verb]} parked packets {verb}; parked "
                f"{parked.get('before')} -> {parked.get('after')}"
            )


def _clock(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return str(ts)
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")  # the operator's time


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


PARKED_SHOW: dict[str, Callable[[Any], None]] = {
    "parked": _show_parked,
    "requeue": _show_changed,
    "drop-parked": _show_changed,
}
