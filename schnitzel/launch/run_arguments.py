"""The options of a run, shared by `schnitzel run` and `schnitzel-tui GRAPH --no-ui`."""

from __future__ import annotations

import argparse

from schnitzel.launch.event_loop import LOOP_CHOICES, LOOP_ENV
from schnitzel.runtime.state_dir import STATE_DIR_ORDER

__all__ = ["add_run_arguments"]


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The run options shared by `schnitzel run` and `schnitzel-tui --no-ui`."""
    parser.add_argument(
        "--max-packets",
        type=_positive_int,
        metavar="N",
        help="sources stop after N packets in total; in-flight packets drain",
    )
    parser.add_argument(
        "--duration",
        type=_positive_float,
        metavar="S",
        help="sources stop after S seconds; in-flight packets drain",
    )
    parser.add_argument(
        "--report-json", metavar="PATH", help="write the run report as JSON (- for stdout)"
    )
    parser.add_argument(
        "--state-dir",
        metavar="PATH",
        help=f"checkpoints, audit log, logs, control sockets (default: {STATE_DIR_ORDER})",
    )
    socket = parser.add_mutually_exclusive_group()
    socket.add_argument(
        "--control-socket",
        metavar="PATH",
        help="serve `schnitzel ctl` and attached consoles on this unix socket (default: "
        "the graph's own, <state dir>/control/<graph>-<hash>.sock); the run refuses to start "
        "when another runtime serves it",
    )
    socket.add_argument(
        "--no-control-socket",
        action="store_true",
        help="serve no control socket (the run cannot be steered from outside)",
    )
    parser.add_argument(
        "--metrics-addr",
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics while the run lasts "
        "(for example 127.0.0.1:9464; docs/operations.md)",
    )
    parser.add_argument(
        "--metrics-textfile",
        metavar="PATH",
        help="write the same metrics to PATH (a .prom file) for node_exporter's textfile "
        "collector, replaced atomically every --metrics-textfile-interval seconds",
    )
    parser.add_argument(
        "--metrics-textfile-interval",
        type=_positive_float,
        default=15.0,
        metavar="S",
        help="seconds between two writes of --metrics-textfile (default 15)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="logs on stderr (the console: in <state dir>/logs/schnitzel-tui.log): text for "
        "a shell, json (one object per line) for a service",
    )
    parser.add_argument(
        "--drain-timeout",
        type=_positive_float,
        default=30.0,
        metavar="S",
        help="on stop, wait at most S seconds for in-flight packets (default 30)",
    )
    parser.add_argument(
        "--loop",
        choices=LOOP_CHOICES,
        help="the event loop: uvloop (installed with schnitzel on Linux and macOS) costs less CPU "
        f"per wake-up; auto (the default, or ${LOOP_ENV}) takes it when installed, asyncio "
        "otherwise",
    )
    parser.add_argument(
        "--allow-degraded",
        action="store_true",
        help="exit 0, not 4, when the run ends degraded (packets failed or were dropped): for "
        "a service or demo where that is expected; a failed run still exits 3",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    return value
