"""`schnitzel-tui GRAPH`: the console. This build checks the graph; running it comes with the
runtime (see docs/contracts/cli.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

EXIT_NOT_AVAILABLE = 3
"""Not 2, which means a usage error: the graph is valid, this build cannot run it."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `schnitzel-tui` console script."""
    parser = argparse.ArgumentParser(
        prog="schnitzel-tui", description="Terminal console for a schnitzel graph."
    )
    parser.add_argument("graph", metavar="GRAPH", help="graph file to validate and run")
    args = parser.parse_args(argv)

    from schnitzel.cli.main import guarded
    from schnitzel.cli.validate_command import run_validate

    status = guarded(lambda: run_validate(args.graph, prog="schnitzel-tui"))
    if status != 0:
        return status
    sys.stderr.write(
        "schnitzel-tui: the graph is valid, but this build has no runtime to run it yet; "
        "the streaming runtime and the console arrive in the next releases\n"
    )
    return EXIT_NOT_AVAILABLE


if __name__ == "__main__":
    sys.exit(main())
