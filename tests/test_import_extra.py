"""`import_extra`: a plugin's optional dependency, or an error that says what to install."""

from __future__ import annotations

import json

import pytest

from schnitzel import SchnitzelError, import_extra


class PackError(SchnitzelError):
    pass


def test_a_missing_package_names_the_node_the_package_and_the_extra() -> None:
    with pytest.raises(PackError) as caught:
        import_extra(
            "schnitzel_no_such_module",
            node_id="cam",
            needed_by="the demo plugin",
            package="no-such-package",
            extra="demo",
            error=PackError,
        )
    assert str(caught.value) == (
        "node 'cam': the demo plugin needs no-such-package; install schnitzel[demo]"
    )
    assert isinstance(caught.value.__cause__, ImportError)


def test_an_installed_package_is_imported_and_returned() -> None:
    module = import_extra(
        "json", node_id="cam", needed_by="x", package="y", extra="z", error=PackError
    )
    assert module is json
