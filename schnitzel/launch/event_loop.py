"""The event loop a run goes on, chosen in one place for `schnitzel run` and `schnitzel-tui`.

`--loop auto|asyncio|uvloop` (or the `SCHNITZEL_LOOP` environment variable when the option
is not given; `auto` by default):

- `uvloop` (a dependency on CPython for Linux and macOS on x86_64 and 64-bit ARM, where PyPI
  has wheels; elsewhere the `fast` extra, `pip install 'schnitzel[fast]'`) runs the same graph
  for less CPU per wake-up, which is what many paced sources spend their time on, and so with a
  shorter latency tail (docs/operations.md, "The event loop");
- `asyncio` is the standard library's loop: always there;
- `auto` takes uvloop when it can be imported, asyncio otherwise.

A program that embeds the runtime (`await Runtime(...).run()`) runs it on its own loop:
nothing here applies to it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from schnitzel.errors import SchnitzelError

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "LOOP_CHOICES",
    "LOOP_ENV",
    "EventLoopUnavailable",
    "choose_loop",
    "loop_factory",
]

LOOP_CHOICES = ("auto", "asyncio", "uvloop")
"""What `--loop` and `SCHNITZEL_LOOP` accept."""
LOOP_ENV = "SCHNITZEL_LOOP"
"""The environment variable read when `--loop` is not given (a service unit's
`Environment=`, a test run)."""
FAST_EXTRA_HINT = "install the fast extra (pip install 'schnitzel[fast]')"


class EventLoopUnavailable(SchnitzelError):
    """The event loop asked for (`--loop`, `SCHNITZEL_LOOP`) cannot be used here."""


def choose_loop(flag: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The loop a run goes on, `"asyncio"` or `"uvloop"`: the `--loop` value `flag`, else
    `SCHNITZEL_LOOP`, else `auto`. Raises `EventLoopUnavailable` for an unknown name, or
    for uvloop asked for by name where it is not installed."""
    if flag is not None:
        wanted, origin = flag, "--loop"
    else:
        wanted, origin = environ.get(LOOP_ENV, "") or "auto", LOOP_ENV
    wanted = wanted.strip().lower()
    if wanted not in LOOP_CHOICES:
        raise EventLoopUnavailable(
            f"{origin}={wanted!r} is not an event loop: give one of {', '.join(LOOP_CHOICES)}"
        )
    if wanted == "asyncio":
        return "asyncio"
    if _uvloop_importable():
        return "uvloop"
    if wanted == "uvloop":
        raise EventLoopUnavailable(
            f"{origin} asks for uvloop, which is not installed: {FAST_EXTRA_HINT}, "
            "or run on asyncio (--loop asyncio)"
        )
    return "asyncio"


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new event loop of `name` (a value `choose_loop` returned)."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    if name == "asyncio":
        import asyncio  # here: `schnitzel validate` imports this module and needs no loop

        # The class itself, not `asyncio.new_event_loop`: that asks the loop policy, which a
        # program (or `SCHNITZEL_LOOP=uvloop pytest`) may have set to uvloop's.
        return asyncio.SelectorEventLoop
    raise ValueError(f"unknown event loop {name!r}: expected one of asyncio, uvloop")


def _uvloop_importable() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True
