"""`schnitzel-tui --attach SOCKET`: the console of a headless runtime in another process.

Every screen is the embedded console's; only the source differs (`AttachedSource`, over the
control socket). Quitting, a hang-up or SIGTERM end the console alone: the runtime runs on.
A lost connection is shown and retried; a runtime that restarted is shown as a new run.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from schnitzel.control.client import ControlClient, ControlConnectionError
from schnitzel.errors import ControlError
from schnitzel.launch.event_loop import EventLoopUnavailable, choose_loop
from schnitzel.launch.output import say
from schnitzel.launch.run_command import EXIT_USAGE, run_loop
from schnitzel.observe.logs import configure_logging
from schnitzel.runtime.state_dir import default_state_dir
from schnitzel_tui.terminal import HangupWatch, hangup_safe_driver

__all__ = ["ATTACH_LOG_NAME", "EXIT_UNREACHABLE", "choose_attach_socket", "run_attached"]

ATTACH_LOG_NAME = "schnitzel-tui-attach.log"
EXIT_UNREACHABLE = 3
"""As `schnitzel ctl`: the runtime cannot be reached."""


def choose_attach_socket(args: argparse.Namespace, prog: str = "schnitzel-tui") -> Path | int:
    """The socket `--attach` means: a socket path as given; a graph file's default socket;
    alone, the only runtime answering on the state dir's sockets. An exit code when there
    is none to choose (3) or several (2, listed)."""
    from schnitzel.control.discovery import SeveralRuntimes, choose_socket

    given = Path(args.attach) if args.attach else None
    if given is not None and not given.is_file():
        return given  # a socket (or nothing yet: connecting says so)
    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    try:
        return choose_socket(
            state_dir,
            given,
            how_to_choose=f"{prog} --attach SOCKET, or --attach GRAPH",
            socket_option="--attach SOCKET",
        )
    except ControlConnectionError as exc:
        say(f"{prog}: {exc}", err=True)
        return EXIT_UNREACHABLE
    except SeveralRuntimes as exc:
        say(f"{prog}: {exc}", err=True)
        return EXIT_USAGE


def run_attached(args: argparse.Namespace, prog: str = "schnitzel-tui") -> int:
    """Check the runtime answers, then show the console until it is quit; the exit code."""
    path = Path(args.attach)
    try:
        loop = choose_loop(args.loop)
    except EventLoopUnavailable as exc:
        say(f"{prog}: {exc}", err=True)
        return EXIT_USAGE
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        say(
            f"{prog}: the console needs a terminal (standard input and error are not one); "
            f"in a script use `schnitzel ctl --socket {path} status`",
            err=True,
        )
        return EXIT_USAGE
    try:
        with ControlClient(path, via="attach") as client:
            hello = client.request("hello")
    except ControlConnectionError as exc:
        say(f"{prog}: {exc}", err=True)
        return EXIT_UNREACHABLE
    except ControlError as exc:
        say(f"{prog}: {path} answered, but not as a schnitzel runtime does: {exc}", err=True)
        return EXIT_UNREACHABLE
    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    log_path = state_dir / "logs" / ATTACH_LOG_NAME
    try:
        logger = configure_logging("text", path=log_path)
    except OSError as exc:
        say(f"{prog}: cannot write the log file {log_path}: {exc}; choose --state-dir", err=True)
        return EXIT_USAGE
    logger.info("attached to %s: pid %s, graph %s", path, hello.get("pid"), hello.get("graph"))
    run_loop(_console(path, args), loop)
    say(f"{prog}: detached from {path}; the runtime keeps running", err=True)
    return 0


async def _console(path: Path, args: argparse.Namespace) -> None:
    from schnitzel_tui.app import ConsoleApp
    from schnitzel_tui.attached import AttachedSource

    loop = asyncio.get_running_loop()
    source = AttachedSource(path)
    hangup = HangupWatch(loop, lambda how: app.exit())
    app = ConsoleApp(
        source,
        read_only=args.read_only,
        refresh_s=args.refresh,
        driver_class=hangup_safe_driver(hangup.on_write_error),
    )
    previous_hup = signal.signal(signal.SIGHUP, hangup.on_signal)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, app.exit)
    watch = asyncio.create_task(hangup.watch())
    try:
        await app.run_async(mouse=not args.no_mouse)
    finally:
        watch.cancel()
        signal.signal(signal.SIGHUP, previous_hup)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await source.close()
