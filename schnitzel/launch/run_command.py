"""`schnitzel run GRAPH` (and `schnitzel-tui GRAPH --no-ui`): run a graph headless, serving
the control socket (`schnitzel ctl`, `schnitzel-tui --attach`) while it runs. SIGTERM and
SIGINT drain and stop; SIGHUP reloads the graph file (`schnitzel.control.reload`).

Exit codes: 0 the run ended with status ok (any stop reason but error, including a signal's
drain); 1 the graph is invalid (problems listed); 2 usage error, unreadable file, or a
`--control-socket` that cannot be served; 3 the run failed (a plugin could not start, a node
stopped with an error, `on_error: stop`); 4 the run ended with status degraded (packets failed
or were dropped; 0 with `--allow-degraded`); 130 a second signal forced the exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from schnitzel.errors import GraphLoadError, RuntimeStartError
from schnitzel.launch.early_signals import EarlySignals
from schnitzel.launch.event_loop import EventLoopUnavailable, choose_loop, loop_factory
from schnitzel.launch.output import say
from schnitzel.launch.start_up_heap import frozen_start_up
from schnitzel.launch.validate_command import print_problems, validate_argument

if TYPE_CHECKING:
    from schnitzel.contract.run_report import RunReport
    from schnitzel.control.server import ControlServer

__all__ = [
    "exit_code",
    "finish_run",
    "reload_on_signal",
    "run_graph",
    "run_loop",
    "serve_control",
    "serve_metrics",
    "stop_on_signal",
]

T = TypeVar("T")

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_FAILED, EXIT_DEGRADED, EXIT_FORCED = 0, 1, 2, 3, 4, 130


def run_graph(
    args: argparse.Namespace, prog: str = "schnitzel run", early: EarlySignals | None = None
) -> int:
    """Validate, run to a stop condition, print or write the report; return the exit code.
    A SIGTERM or SIGHUP that arrives while it starts is held (by `early` when the caller
    began holding before its imports) and handled once it runs."""
    if early is None:
        early = EarlySignals.install()
    try:
        return _run_graph(args, prog, early)
    finally:
        early.restore()  # where the run never got as far as the loop's own handlers


def _run_graph(args: argparse.Namespace, prog: str, early: EarlySignals) -> int:
    from schnitzel.observe.logs import configure_logging

    logger = configure_logging(args.log_format)
    try:
        loop = choose_loop(args.loop)
    except EventLoopUnavailable as exc:
        say(f"{prog}: {exc}; nothing was run", err=True)
        return EXIT_USAGE
    if getattr(args, "metrics_addr", None) is not None:  # malformed: refused before anything
        from schnitzel.observe.metrics_addr import MetricsAddrError, parse_addr

        try:
            parse_addr(args.metrics_addr)
        except MetricsAddrError as exc:
            say(f"{prog}: {exc}; nothing was run", err=True)
            return EXIT_USAGE
    with frozen_start_up():  # the run starts without a full collection (start_up_heap.py)
        try:
            result = validate_argument(args.graph)
        except GraphLoadError as exc:
            say(f"{prog}: {exc}", err=True)
            return EXIT_USAGE
        print_problems(result.report, err=True)
        if result.graph is None:
            say(f"{prog}: {args.graph} is invalid; nothing was run", err=True)
            return EXIT_INVALID
        from schnitzel.control.server import ControlSocketError
        from schnitzel.observe.metrics_addr import MetricsAddrError
        from schnitzel.runtime import Runtime

        state_dir = Path(args.state_dir) if args.state_dir else None
        try:
            runtime = Runtime(result.graph, state_dir, args.drain_timeout, logger)
        except RuntimeStartError as exc:
            say(f"{prog}: {exc}", err=True)
            return EXIT_FAILED
    logger.info("event loop: %s", loop)
    try:
        report = run_loop(_run_with_signals(runtime, args, logger, early), loop)
    except (ControlSocketError, MetricsAddrError) as exc:
        say(f"{prog}: {exc}; nothing was run", err=True)
        return EXIT_USAGE
    except RuntimeStartError as exc:
        say(f"{prog}: {exc}", err=True)
        return EXIT_FAILED
    return finish_run(report, runtime, args, prog, logger)


def finish_run(
    report: RunReport,
    runtime: Any,
    args: argparse.Namespace,
    prog: str,
    logger: logging.Logger,
) -> int:
    """Write or print the report of an ended run; return its exit code. Exits at once when a
    plugin call still holds a thread (nothing worth keeping is left unwritten)."""
    _write_report(report, args.report_json, prog)
    if args.log_format == "text" and args.report_json != "-":
        _print_summary(report)
    code = exit_code(report["status"], runtime.forced, args.allow_degraded)
    if _threads_still_running():
        # A plugin call is still running in a thread (a hung device or backend) and the
        # interpreter would wait for it at exit. Everything worth keeping is written.
        logger.warning("a plugin call is still running in a thread; exiting without it")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def exit_code(status: str, forced: bool, allow_degraded: bool = False) -> int:
    """The exit code of an ended run: a run whose report is not `ok` never exits 0, unless
    the operator allowed `degraded`."""
    if forced:
        return EXIT_FORCED
    if status == "ok" or (status == "degraded" and allow_degraded):
        return EXIT_OK
    if status == "degraded":
        return EXIT_DEGRADED
    return EXIT_FAILED  # error, or a status this code does not know: never success


def run_loop(main: Coroutine[Any, Any, T], loop_name: str = "asyncio") -> T:
    """`asyncio.run` on the event loop `loop_name` (`choose_loop`), without its wait for the
    default executor's threads at the end: a plugin stuck there (a hung open) must not keep
    the report from being written."""
    loop = loop_factory(loop_name)()
    try:
        return loop.run_until_complete(main)
    finally:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()  # shuts the default executor down without waiting for its threads


def _threads_still_running(grace_s: float = 1.0) -> bool:
    """True when a thread other than this one is still busy after a short grace (idle pool
    threads end at once once their pool is shut down)."""
    deadline = time.monotonic() + grace_s
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join(max(deadline - time.monotonic(), 0))
            if thread.is_alive():
                return True
    return False


async def _run_with_signals(
    runtime: Any, args: argparse.Namespace, logger: logging.Logger, early: EarlySignals
) -> RunReport:
    from schnitzel.control.runtime_control import RuntimeControl

    loop = asyncio.get_running_loop()
    control = RuntimeControl(runtime)
    received: list[str] = []
    reloads: set[asyncio.Task[Any]] = set()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_on_signal, runtime, received, signum)
    loop.add_signal_handler(signal.SIGHUP, reload_on_signal, control, reloads)
    for held in early.take():  # what arrived while starting, now handled
        if held == signal.SIGHUP:
            reload_on_signal(control, reloads)
        else:
            stop_on_signal(runtime, received, held)
    server = metrics = None
    try:
        metrics = serve_metrics(runtime, args, logger)
        server = await serve_control(control, args, logger)
        return await runtime.run(max_packets=args.max_packets, duration_s=args.duration)
    finally:
        if metrics is not None:
            metrics.close()
        if server is not None:
            await server.close()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        early.hold()  # until the report is written: a SIGHUP or SIGTERM must not kill it


def serve_metrics(runtime: Any, args: argparse.Namespace, logger: logging.Logger) -> Any:
    """Serve `/metrics` when `--metrics-addr` asks, write them to a file when
    `--metrics-textfile` does; something to `close()` at the end, or None. Raises
    `MetricsAddrError` when the address is wrong or taken, or the file cannot be written."""
    from schnitzel import __version__

    outputs: list[Any] = []
    try:
        if getattr(args, "metrics_addr", None) is not None:
            from schnitzel.observe.prometheus import MetricsServer

            server = MetricsServer(args.metrics_addr, runtime.snapshot, __version__)
            server.start()
            outputs.append(server)
            logger.info("metrics on http://%s:%d/metrics", server.host, server.port)
        if getattr(args, "metrics_textfile", None) is not None:
            from schnitzel.observe.textfile import MetricsTextfile

            interval = args.metrics_textfile_interval
            textfile = MetricsTextfile(
                args.metrics_textfile, runtime.snapshot, __version__, interval, logger
            )
            textfile.start()
            outputs.append(textfile)
            logger.info("metrics written to %s every %g s", textfile.path, interval)
    except BaseException:
        for output in outputs:
            output.close()
        raise
    return _Closing(outputs) if outputs else None


class _Closing:
    """The metrics outputs of a run, closed together."""

    def __init__(self, outputs: list[Any]) -> None:
        self.outputs = outputs

    def close(self) -> None:
        for output in self.outputs:
            output.close()


def reload_on_signal(control: Any, reloads: set[asyncio.Task[Any]]) -> None:
    """SIGHUP (a service manager's reload): apply the edited graph file. A refusal is
    reported by the reload itself (event, log, audit); the run goes on either way."""
    from schnitzel.control.actor import Actor

    runtime = control.runtime
    why = ""
    if runtime.graph.path is None:
        why = "the graph was read from stdin: there is no file to reload"
    elif runtime.started_wall is None or runtime.stopping:
        why = "the run is stopping" if runtime.stopping else "the run has not started yet"
    elif reloads:
        why = "a reload is still running"
    if why:
        runtime.events.add("warning", f"SIGHUP ignored: {why}")
        return
    task = asyncio.ensure_future(control.reload(actor=Actor.local("reload"), why="SIGHUP"))
    reloads.add(task)
    task.add_done_callback(lambda done: _reload_ended(done, reloads, runtime))


def _reload_ended(task: asyncio.Task[Any], reloads: set[asyncio.Task[Any]], runtime: Any) -> None:
    from schnitzel.errors import ControlError

    reloads.discard(task)
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, ControlError):  # ControlError: already said
        runtime.logger.error("the reload on SIGHUP failed", exc_info=exc)


async def serve_control(
    control: Any, args: argparse.Namespace, logger: logging.Logger
) -> ControlServer | None:
    """Start the control socket of the run `control` steers, or None when there is none.
    The default socket is the graph file's own in the state dir (schnitzel.control.paths),
    so runs of different graphs each get one. An explicit `--control-socket` that cannot be
    served raises ControlSocketError (the run must not start without the socket its operator
    asked for); the default one only warns: a second run of the same graph with the same
    state dir still runs, unsteered, and says so."""
    if args.no_control_socket:
        return None
    from schnitzel.control.paths import CONTROL_DIR, default_socket_path
    from schnitzel.control.server import ControlServer, ControlSocketError

    runtime = control.runtime
    explicit = args.control_socket is not None
    path = (
        Path(args.control_socket)
        if explicit
        else default_socket_path(runtime.state_dir, runtime.graph.path)
    )
    server = ControlServer(control, path, logger)
    try:
        await server.start()
    except ControlSocketError as exc:
        if explicit:
            raise
        runtime.events.add(
            "warning",
            f"no control socket for this run: {exc}; `schnitzel ctl` cannot reach it "
            "(choose another socket with --control-socket PATH)",
        )
        return None
    if not explicit and path.parent != runtime.state_dir.absolute() / CONTROL_DIR:
        logger.info(
            "the state dir's path is too long for a unix socket; the control socket is %s", path
        )
    return server


def stop_on_signal(runtime: Any, received: list[str], signum: int) -> None:
    """SIGTERM / SIGINT: the first stops the sources and drains; any second one (whatever the
    first stop was for) stops now. `received` keeps the signals seen so far."""
    name = signal.Signals(signum).name
    received.append(name)
    if len(received) > 1:
        runtime.events.add("warning", f"{name} again: exiting now")
        runtime.force_stop()
    else:
        runtime.request_stop("signal", f"{name} received; draining (again to exit now)")


def _write_report(report: RunReport, target: str | None, prog: str) -> None:
    if target is None:
        return
    text = json.dumps(report, indent=2) + "\n"
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(target)
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text)
        partial.replace(path)  # readers never see half a report
    except OSError as exc:
        say(f"{prog}: cannot write the report to {target}: {exc}; report follows", err=True)
        sys.stderr.write(text)


def _print_summary(report: RunReport) -> None:
    totals = report["totals"]
    say(
        f"{report['status']} ({report['stop_reason']}) in {report['duration_s']:.2f} s: "
        f"emitted {totals['emitted']}, delivered {totals['delivered']}, "
        f"filtered {totals['filtered']}, dropped {totals['dropped']}, errors {totals['errors']}",
        err=True,
    )
    width = max(len(node_id) for node_id in report["nodes"])
    for node_id, node in report["nodes"].items():
        say(
            f"  {node_id:<{width}}  {node['kind']:<9} in {node['in']:>9} out {node['out']:>9} "
            f"dropped {node['dropped']:>7} errors {node['errors']:>6} "
            f"p99 {node['latency_ms']['p99']:>8.2f} ms  {node['health']}"
            + (f" ({node['health_reason']})" if node["health_reason"] else ""),
            err=True,
        )
