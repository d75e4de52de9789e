"""Where a `detect` node's model file is: a path from the graph file, or a file inside an
installed Python package (`package:NAME/FILE`), for models a registry package ships."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from schnitzel import SchnitzelError

__all__ = ["PACKAGE_PREFIX", "ModelPathError", "resolve_model"]

PACKAGE_PREFIX = "package:"


class ModelPathError(SchnitzelError, ValueError):
    """The model's location cannot be resolved; the message says how to get the file."""


def resolve_model(spec: str, graph_dir: Path) -> Path:
    """The model file `spec` names: `package:nudenet/320n.onnx` is `320n.onnx` inside the
    installed package `nudenet`; anything else is a path relative to the graph's directory.

    Only locates the file: the package is found without being imported."""
    if spec.startswith(PACKAGE_PREFIX):
        rest = spec[len(PACKAGE_PREFIX) :]
        package, _, inside = rest.partition("/")
        if not package or not inside or ".." in Path(inside).parts:
            raise ModelPathError(
                f"model {spec!r}: write package:NAME/FILE, a file inside an installed package"
            )
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise ModelPathError(
                f"model {spec!r}: Python package {package!r} is not installed; install the "
                "distribution that ships it (docs/vision.md, Models)"
            )
        return Path(next(iter(found.submodule_search_locations))) / inside
    path = Path(spec).expanduser()
    return path if path.is_absolute() else graph_dir / path
