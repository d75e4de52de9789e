"""`schnitzel-tui GRAPH`: the console with the embedded runtime; `--no-ui` runs the graph
headless, exactly as `schnitzel run` does (one code path); `--attach SOCKET` shows the console
of a headless runtime running elsewhere. See docs/contracts/cli.md."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from schnitzel.launch.run_arguments import add_run_arguments

LOCAL_REFRESH_S = 1.0
SSH_REFRESH_S = 2.0
"""Over SSH every frame crosses the network: poll and draw less often."""
SSH_MAX_FPS = "10"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `schnitzel-tui` console script."""
    over_ssh = bool(os.environ.get("SSH_CONNECTION"))
    parser = argparse.ArgumentParser(
        prog="schnitzel-tui", description="Terminal console for a schnitzel graph."
    )
    parser.add_argument("graph", metavar="GRAPH", nargs="?", help="graph file to validate and run")
    parser.add_argument(
        "--attach",
        metavar="SOCKET|GRAPH",
        nargs="?",
        const="",
        help="show the console of a runtime already running: its control socket, or its "
        "graph file (that graph's default socket); alone: the only runtime answering on the "
        "state dir's sockets (several are listed). Quitting leaves it running",
    )
    parser.add_argument(
        "--no-ui", action="store_true", help="run headless (service mode), as `schnitzel run`"
    )
    parser.add_argument(
        "--read-only", action="store_true", help="show only: refuse pause, resume and other changes"
    )
    parser.add_argument("--no-mouse", action="store_true", help="do not capture the mouse")
    parser.add_argument(
        "--refresh",
        type=_refresh,
        default=SSH_REFRESH_S if over_ssh else LOCAL_REFRESH_S,
        metavar="S",
        help=f"seconds between screen updates (default {LOCAL_REFRESH_S:g}; "
        f"{SSH_REFRESH_S:g} when SSH_CONNECTION is set); + and - change it live",
    )
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    if (args.graph is None) == (args.attach is None):
        parser.error("give a GRAPH to run, or --attach SOCKET to watch a running one")
    if args.attach is not None and args.no_ui:
        parser.error("--no-ui runs a GRAPH headless; --attach shows a console: choose one")
    if args.attach is not None and args.metrics_addr is not None:
        parser.error(
            "--metrics-addr serves the metrics of a run this command starts; an attached "
            "console starts none: give --metrics-addr to the run you attach to"
        )
    if args.attach is not None and args.metrics_textfile is not None:
        parser.error(
            "--metrics-textfile writes the metrics of a run this command starts; an attached "
            "console starts none: give --metrics-textfile to the run you attach to"
        )

    from schnitzel.launch.output import guarded

    if args.no_ui:
        from schnitzel.launch.run_command import run_graph

        return guarded(lambda: run_graph(args, prog="schnitzel-tui"))
    if over_ssh:  # read by Textual when it is imported
        os.environ.setdefault("TEXTUAL_FPS", SSH_MAX_FPS)
        os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
    if args.attach is not None:
        from schnitzel_tui.attach import choose_attach_socket, run_attached

        chosen = choose_attach_socket(args)
        if isinstance(chosen, int):
            return chosen
        args.attach = str(chosen)
        return guarded(lambda: run_attached(args))
    from schnitzel_tui.embedded import run_console

    return guarded(lambda: run_console(args))


def _refresh(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.1 <= value <= 60:
        raise argparse.ArgumentTypeError(f"{text} is out of range: give 0.1 to 60 seconds")
    return value


if __name__ == "__main__":
    sys.exit(main())
