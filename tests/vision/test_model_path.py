"""Where a detect node's model is: a path from the graph file, or a file inside an installed
package (`package:NAME/FILE`), found without importing the package."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from schnitzel_plugins.vision.model_path import ModelPathError, resolve_model


def test_relative_paths_start_at_the_graph_file(tmp_path: Path) -> None:
    assert resolve_model("models/y.onnx", tmp_path) == tmp_path / "models" / "y.onnx"
    assert resolve_model("/abs/y.onnx", tmp_path) == Path("/abs/y.onnx")


def test_a_file_in_an_installed_package_is_found_without_importing_it() -> None:
    sys.modules.pop("nudenet", None)
    path = resolve_model("package:nudenet/320n.onnx", Path("."))
    assert path.name == "320n.onnx" and path.is_file()
    assert "nudenet" not in sys.modules  # its top-level code never ran


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("package:no_such_pkg_xyz/m.onnx", "is not installed"),
        ("package:nudenet", "package:NAME/FILE"),
        ("package:nudenet/../../etc/passwd", "package:NAME/FILE"),
    ],
)
def test_bad_package_references_say_what_to_write(spec: str, message: str) -> None:
    with pytest.raises(ModelPathError, match=message):
        resolve_model(spec, Path("."))
