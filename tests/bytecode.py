"""Bytecode of the project's packages and test modules, written once instead of per process.

The suite starts hundreds of `schnitzel` and `schnitzel-tui` processes. Where
PYTHONDONTWRITEBYTECODE=1 is set (as on these machines and in CI) no process writes the
`__pycache__` files of what it imports, so every one of them compiled every module of
schnitzel, its plugins and the console from source again: about 40% of the instructions of a
short `schnitzel run` (bench/bench_pipeline.py compiles first for the same reason). The
variable still keeps those processes from writing; compiling here writes the files once.
"""

from __future__ import annotations

import compileall
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PACKAGES = ("schnitzel", "tui", "plugins", "tests")
"""The repository's folders of Python code, relative to its root."""


def compile_the_packages(repo: Path) -> None:
    """Write the bytecode of every module under `PACKAGES` that is missing or older than its
    source; a second call only compares timestamps."""
    for package in PACKAGES:
        compileall.compile_dir(repo / package, quiet=1)


@contextmanager
def bytecode_written() -> Iterator[None]:
    """Let this process write bytecode while inside: around collection, pytest caches the test
    modules it rewrites for its assertions, which each xdist worker would otherwise rewrite
    again. Outside, modules tests write and import (plugins in `tmp_path`) stay uncached, as
    the environment asked."""
    before = sys.dont_write_bytecode
    sys.dont_write_bytecode = False
    try:
        yield
    finally:
        sys.dont_write_bytecode = before
