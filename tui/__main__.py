"""`schnitzel-tui GRAPH`: the console. `--no-ui` runs the graph headless, exactly as
`schnitzel run` does (one code path); the interactive console comes with its own release
(see docs/contracts/cli.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from schnitzel.cli.run_arguments import add_run_arguments

EXIT_NOT_AVAILABLE = 3
"""Not 2, which means a usage error: the graph is valid, this build has no console yet."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `schnitzel-tui` console script."""
    parser = argparse.ArgumentParser(
        prog="schnitzel-tui", description="Terminal console for a schnitzel graph."
    )
    parser.add_argument("graph", metavar="GRAPH", help="graph file to validate and run")
    parser.add_argument(
        "--no-ui", action="store_true", help="run headless (service mode), as `schnitzel run`"
    )
    add_run_arguments(parser)
    args = parser.parse_args(argv)

    from schnitzel.cli.main import guarded

    if args.no_ui:
        from schnitzel.cli.run_command import run_graph

        return guarded(lambda: run_graph(args, prog="schnitzel-tui"))
    from schnitzel.cli.validate_command import run_validate

    status = guarded(lambda: run_validate(args.graph, prog="schnitzel-tui"))
    if status != 0:
        return status
    sys.stderr.write(
        "schnitzel-tui: the graph is valid, but this build has no interactive console yet; "
        "run it headless with `schnitzel-tui GRAPH --no-ui` or `schnitzel run GRAPH`\n"
    )
    return EXIT_NOT_AVAILABLE


if __name__ == "__main__":
    sys.exit(main())
