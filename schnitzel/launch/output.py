"""Writing results: JSON for scripts, aligned text for people; a command guarded against Ctrl-C
and a reader that left."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["EXIT_INTERRUPTED", "guarded", "print_json", "print_table", "say"]

EXIT_INTERRUPTED = 130


def print_json(value: Any, indent: int | None = 2) -> None:
    """One JSON document on stdout. Values JSON has no type for (a plugin option's default
    `Path("state")`, say) are written as their text."""
    sys.stdout.write(json.dumps(value, indent=indent, ensure_ascii=False, default=str) + "\n")


def say(text: str = "", err: bool = False) -> None:
    """A line for people, on stdout or stderr."""
    (sys.stderr if err else sys.stdout).write(text + "\n")


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> None:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)]
        say(indent + "  ".join([*cells, str(row[-1])]).rstrip())


def guarded(command: Callable[[], int]) -> int:
    """Run a command; Ctrl-C and a reader that left (`| head`) end it quietly."""
    try:
        return command()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `schnitzel plugins | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
