"""`schnitzel validate` says the same, byte for byte, as an older checkout: for every example
graph (`graphs/`) and every file of the invalid corpus (`tests/graphs/invalid/`), in text and
with `--json`, the exit code, standard output and standard error are compared.

For a change meant to leave validation's answers alone (start-up work, lazy imports).
`--before DIR`: the older checkout's packages laid out as for `bench_startup.py --before`
(`schnitzel/`, `schnitzel_plugins/`, `schnitzel_tui/`, and a `sitecustomize.py` that drops
the editable install's finder). Both run from this checkout's root with the same relative
paths, so the paths they print are the same.
Run: .venv/bin/python bench/compare_validate_output.py --before DIR
"""

from __future__ import annotations

import argparse
import difflib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def graphs() -> list[Path]:
    """The example graphs and the invalid corpus, relative to the checkout's root."""
    found = sorted((ROOT / "graphs").rglob("*.yaml")) + sorted(
        (ROOT / "tests/graphs/invalid").glob("*.yaml")
    )
    return [path.relative_to(ROOT) for path in found]


def validate(graph: Path, as_json: bool, env: dict[str, str]) -> str:
    """Exit code, stdout and stderr of `schnitzel validate`, as one text to compare."""
    # -P: the working directory is not put first on the path, so PYTHONPATH decides
    command = [sys.executable, "-P", "-m", "schnitzel.cli.main", "validate", str(graph)]
    done = subprocess.run(
        [*command, "--json"] if as_json else command,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return f"exit {done.returncode}\n--- stdout\n{done.stdout}--- stderr\n{done.stderr}"


def imported_from(env: dict[str, str]) -> Path:
    """Where `schnitzel` is imported from with `env`, run as `validate` is."""
    done = subprocess.run(
        [sys.executable, "-P", "-c", "import schnitzel; print(schnitzel.__file__)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(done.stdout.strip()).resolve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="an older checkout's packages")
    args = parser.parse_args()
    here = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    before = {**here, "PYTHONPATH": str(args.before.resolve())}
    for env, tree in ((here, ROOT), (before, args.before.resolve())):
        where = imported_from(env)
        if not where.is_relative_to(tree):
            raise SystemExit(f"schnitzel was imported from {where}, not from {tree}")
    files = graphs()
    differ = 0
    for graph in files:
        for as_json in (False, True):
            ours, theirs = validate(graph, as_json, here), validate(graph, as_json, before)
            if ours != theirs:
                differ += 1
                name = f"{graph}{' --json' if as_json else ''}"
                print(f"DIFFERS: {name}")
                diff = difflib.unified_diff(
                    theirs.splitlines(keepends=True),
                    ours.splitlines(keepends=True),
                    f"{name} (before)",
                    f"{name} (now)",
                )
                sys.stdout.writelines(diff)
    print(
        f"{len(files)} graphs, text and --json: {2 * len(files) - differ} identical, "
        f"{differ} differ"
    )
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
