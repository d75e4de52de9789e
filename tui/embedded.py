"""`schnitzel-tui GRAPH`: validate, then run the graph and the console on one event loop.

The runtime and the console share the loop the runtime was built for (DESIGN 2); the console
only polls the control API, at most a few times a second, so the data plane keeps the loop.
How it ends:
- `q` (confirmed while packets flow) stops the sources; the console shows the drain and ends
  once the run has ended; the report and summary follow on the restored terminal.
- SIGTERM / SIGINT: the same, without asking.
- SIGHUP (the SSH session is gone): the terminal is swapped for /dev/null at once, so no write
  can block or fail on a dead terminal, then the run drains and ends as for SIGTERM. The
  durable stores are closed as in any stop; the log file says what happened.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schnitzel.errors import GraphLoadError, RuntimeStartError
from schnitzel.launch.event_loop import EventLoopUnavailable, choose_loop
from schnitzel.launch.output import say
from schnitzel.launch.run_command import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_USAGE,
    finish_run,
    run_loop,
    serve_control,
    serve_metrics,
    stop_on_signal,
)
from schnitzel.launch.validate_command import print_problems, print_report, validate_argument
from schnitzel.observe.logs import configure_logging
from schnitzel.runtime.state_dir import default_state_dir
from schnitzel_tui.terminal import HangupWatch, hangup_safe_driver

if TYPE_CHECKING:
    from schnitzel.contract.run_report import RunReport

__all__ = ["LOG_NAME", "run_console"]

LOG_NAME = "schnitzel-tui.log"
"""The console's log file, under `<state dir>/logs/`."""


def run_console(args: argparse.Namespace, prog: str = "schnitzel-tui") -> int:
    """Validate the graph, show the console while it runs; return the exit code."""
    try:
        loop = choose_loop(args.loop)
    except EventLoopUnavailable as exc:
        say(f"{prog}: {exc}; nothing was run", err=True)
        return EXIT_USAGE
    try:
        result = validate_argument(args.graph)
    except GraphLoadError as exc:
        say(f"{prog}: {exc}", err=True)
        return EXIT_USAGE
    terminal = sys.stdin.isatty() and sys.stderr.isatty()
    if result.graph is None and not terminal:
        print_report(result.report, None)  # what `schnitzel validate` prints
        return EXIT_INVALID
    if not terminal:
        say(
            f"{prog}: the console needs a terminal (standard input and error are not one); "
            "run the graph headless with `schnitzel-tui GRAPH --no-ui` or `schnitzel run GRAPH`",
            err=True,
        )
        return EXIT_USAGE
    if result.graph is None:
        from schnitzel_tui.screens.invalid import InvalidGraphApp

        InvalidGraphApp(result.report).run(mouse=not args.no_mouse)
        print_problems(result.report, err=True)  # kept on the terminal after the screen closes
        say(f"{prog}: {args.graph} is invalid; nothing was run", err=True)
        return EXIT_INVALID
    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    log_path = state_dir / "logs" / LOG_NAME
    try:
        logger = configure_logging(args.log_format, path=log_path)
    except OSError as exc:
        say(f"{prog}: cannot write the log file {log_path}: {exc}; choose --state-dir", err=True)
        return EXIT_USAGE
    from schnitzel.runtime import Runtime

    try:
        runtime = Runtime(result.graph, state_dir, args.drain_timeout, logger)
    except RuntimeStartError as exc:
        say(f"{prog}: {exc}", err=True)
        return EXIT_FAILED
    warnings = [
        (problem.where.node, f"[{problem.code}] {problem.message}")
        for problem in result.report.warnings
    ]
    from schnitzel.control.server import ControlSocketError
    from schnitzel.observe.metrics_addr import MetricsAddrError

    try:
        logger.info("event loop: %s", loop)
        report, failure = run_loop(_console_and_runtime(runtime, args, warnings, logger), loop)
    except (ControlSocketError, MetricsAddrError) as exc:
        say(f"{prog}: {exc}; nothing was run", err=True)
        return EXIT_USAGE
    if failure:
        say(f"{prog}: {failure}", err=True)
        return EXIT_FAILED
    say(f"{prog}: log file {log_path}", err=True)
    return finish_run(report, runtime, args, prog, logger)


async def _console_and_runtime(
    runtime: Any,
    args: argparse.Namespace,
    warnings: list[tuple[str | None, str]],
    logger: logging.Logger,
) -> tuple[RunReport, str]:
    """Run both until the console ends and the run has ended; (report, start failure)."""
    from schnitzel.control.runtime_control import RuntimeControl
    from schnitzel_tui.app import ConsoleApp
    from schnitzel_tui.model import EventView
    from schnitzel_tui.source import EmbeddedSource

    now = time.time()
    loop = asyncio.get_running_loop()
    control = RuntimeControl(runtime)
    metrics = serve_metrics(runtime, args, logger)  # `--metrics-addr`: /metrics too
    server = await serve_control(control, args, logger)  # `schnitzel ctl` works here too

    def drain(how: str) -> None:
        logger.warning("the terminal hung up (%s; SSH gone?): stopping and draining", how)
        runtime.request_stop("signal", "the terminal hung up")
        app.exit()

    hangup = HangupWatch(loop, drain)
    app = ConsoleApp(
        EmbeddedSource(control),
        read_only=args.read_only,
        refresh_s=args.refresh,
        startup_events=[EventView(0, now, "warning", text, node) for node, text in warnings],
        driver_class=hangup_safe_driver(hangup.on_write_error),
    )
    run = asyncio.create_task(runtime.run(max_packets=args.max_packets, duration_s=args.duration))
    failure = ""

    def run_ended(task: asyncio.Task[RunReport]) -> None:
        nonlocal failure
        if not task.cancelled() and isinstance(task.exception(), RuntimeStartError):
            failure = str(task.exception())
            app.runtime_failed(failure)

    run.add_done_callback(run_ended)
    previous_hup = signal.signal(signal.SIGHUP, hangup.on_signal)
    received: list[str] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_stop_signal, runtime, app, received, signum)
    watch = asyncio.create_task(hangup.watch())
    try:
        await app.run_async(mouse=not args.no_mouse)
        if not run.done():
            runtime.request_stop("signal", "the console was closed")
            if hangup.seen:
                say("schnitzel-tui: the terminal hung up; draining", err=True)
            else:
                say("schnitzel-tui: stopping: draining in-flight packets", err=True)
        try:
            report = await run
        except RuntimeStartError:
            return runtime.snapshot(), failure
        return report, ""
    finally:
        watch.cancel()
        if metrics is not None:
            metrics.close()
        if server is not None:
            await server.close()
        signal.signal(signal.SIGHUP, previous_hup)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _on_stop_signal(runtime: Any, app: Any, received: list[str], signum: int) -> None:
    """As for `schnitzel run`, and the console closes once the run has ended; when nothing
    runs any more, the console was only left up to look at: close it."""
    if runtime.finished or app.failure:
        app.exit()
        return
    stop_on_signal(runtime, received, signum)
    app.stop_requested()
