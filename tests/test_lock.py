"""The lock (`requirements/dev.lock`) that `just setup`, the README and CI install from.

It must pin, with hashes, a version inside pyproject.toml's range for every dependency of
`.[dev]`: a range changed without `just lock` fails here, not on a fresh machine.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "dev.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def locked() -> dict[str, tuple[str, list[str]]]:
    """Each pinned package: its version and the hashes given for it."""
    pins: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if match := PIN.match(line):
            name = canonicalize_name(match[1])
            pins[name] = (match[2], [])
        elif (stripped := line.strip()).startswith("--hash=sha256:"):
            pins[name][1].append(stripped.removesuffix("\\").strip())
    return pins


def dev_requirements() -> list[Requirement]:
    """What `.[dev]` asks for, its self-references (`schnitzel[test]`) followed."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [Requirement(text) for text in project["dependencies"]]
    extras, seen = ["dev"], set()
    while extras:
        extra = extras.pop()
        seen.add(extra)
        for text in project["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == "schnitzel":
                extras.extend(e for e in requirement.extras if e not in seen)
            else:
                wanted.append(requirement)
    return wanted


def test_every_dev_dependency_is_locked_within_its_range() -> None:
    pins = locked()
    for requirement in dev_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is in pyproject.toml but not in the lock: run `just lock`"
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"the lock pins {name}=={version} outside pyproject.toml's {requirement}: "
            "run `just lock`"
        )


def test_every_locked_package_has_hashes() -> None:
    pins = locked()
    assert len(pins) > 20  # the whole closure, not only the direct dependencies
    assert "setuptools" in pins  # the build backend: `pip install --no-build-isolation -e .`
    for name, (version, hashes) in pins.items():
        assert hashes, f"{name}=={version} has no hash in the lock"
