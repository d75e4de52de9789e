"""The package floors hold: every package imports only from floors below it (the `layers`
contract in pyproject.toml, drawn in docs/architecture.md), lazy imports included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_packages_import_only_downward() -> None:
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout, done.stdout


def test_a_contract_that_is_broken_is_reported(tmp_path: Path) -> None:
    # the runtime reads durable stores, so a floor that puts the store above it must fail:
    # proves the contract is checked, not silently skipped
    config = (ROOT / "pyproject.toml").read_text()
    swapped = config.replace(
        '  "schnitzel.runtime",\n  "schnitzel.durable",',
        '  "schnitzel.durable",\n  "schnitzel.runtime",',
    )
    assert swapped != config
    (tmp_path / "pyproject.toml").write_text(swapped)
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(tmp_path / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "schnitzel.runtime is not allowed to import schnitzel.durable" in done.stdout
