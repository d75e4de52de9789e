"""Which runtime `schnitzel ctl` and `schnitzel-tui --attach` talk to when no `--socket` is
given: each graph has its own default socket (`schnitzel.control.paths`), so the clients look
at every socket of the state dir and ask who answers.

    choose_socket(state_dir)                 the only live one; else NoRuntime / SeveralRuntimes
    choose_socket(state_dir, graph=path)     that graph's default socket, answering or not

A socket that fails the trust checks (`schnitzel.control.trust`) is never talked to: it is
reported, and counts as no runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from schnitzel.control.client import (
    ControlClient,
    ControlConnectionError,
    ControlUnreachable,
    ControlUntrusted,
)
from schnitzel.control.paths import default_socket_path, socket_candidates
from schnitzel.errors import ControlError

__all__ = ["LiveRuntime", "NoRuntime", "SeveralRuntimes", "choose_socket", "find_runtimes"]

PROBE_TIMEOUT_S = 5.0


class LiveRuntime(NamedTuple):
    """A runtime that answered `hello` on a socket of the state dir."""

    socket: Path
    graph: str
    pid: object


class Survey(NamedTuple):
    """What answered on the state dir's sockets, and which sockets were refused as unsafe."""

    live: list[LiveRuntime]
    untrusted: list[ControlUntrusted]


class NoRuntime(ControlUnreachable):
    """No runtime answers on any default socket of the state dir."""

    def __init__(self, state_dir: Path, socket_option: str = "--socket PATH") -> None:
        ConnectionError.__init__(
            self,
            f"no runtime serves a control socket for the state dir {state_dir}; is it "
            "running? (start it with `schnitzel run GRAPH`; a run started with --state-dir "
            "DIR is found with the same --state-dir, one with --control-socket PATH with "
            f"{socket_option})",
        )
        self.path = state_dir
        self.why = "no runtime"


class SeveralRuntimes(ControlError):
    """More than one runtime answers: the operator must choose (the message lists them)."""

    def __init__(self, message: str, runtimes: list[LiveRuntime]) -> None:
        super().__init__(message)
        self.runtimes = runtimes


def find_runtimes(state_dir: Path) -> Survey:
    """Ask every default socket of `state_dir` who answers (sockets left by runtimes that
    are gone are skipped)."""
    live: list[LiveRuntime] = []
    untrusted: list[ControlUntrusted] = []
    for path in socket_candidates(state_dir):
        try:
            with ControlClient(path, timeout_s=PROBE_TIMEOUT_S) as client:
                hello = client.request("hello")
        except ControlUntrusted as exc:
            untrusted.append(exc)
            continue
        except (ControlConnectionError, ControlError):
            continue  # a stale socket, or something that is not a runtime
        if isinstance(hello, dict):
            live.append(LiveRuntime(path, str(hello.get("graph")), hello.get("pid")))
    return Survey(live, untrusted)


def choose_socket(
    state_dir: Path,
    graph: Path | None = None,
    how_to_choose: str = "schnitzel ctl --socket PATH ... or --graph GRAPH ...",
    socket_option: str = "--socket PATH",
) -> Path:
    """The socket to talk to: `graph`'s default socket when a graph is given, else the only
    runtime answering on the state dir's sockets. Raises NoRuntime (or the ControlUntrusted
    of a refused socket) when none answers, SeveralRuntimes when more than one does.
    `socket_option` is how the asking command names a socket, for NoRuntime's hint."""
    if graph is not None:
        return default_socket_path(state_dir, graph)
    survey = find_runtimes(state_dir)
    if len(survey.live) == 1:
        return survey.live[0].socket
    if not survey.live:
        if survey.untrusted:
            raise survey.untrusted[0]
        raise NoRuntime(state_dir.absolute(), socket_option)
    width = max(len(str(r.socket)) for r in survey.live)
    rows = "\n".join(f"  {r.socket!s:<{width}}  graph {r.graph}  pid {r.pid}" for r in survey.live)
    raise SeveralRuntimes(
        f"{len(survey.live)} runtimes answer for state dir {state_dir.absolute()}:\n{rows}\n"
        f"choose one: {how_to_choose}",
        survey.live,
    )
