"""One exception hierarchy: every exception class schnitzel, its console and its built-in packs
define is a `SchnitzelError` (docs/architecture.md, "Errors"), so `except SchnitzelError`
catches whatever schnitzel raises on purpose."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import schnitzel
import schnitzel_plugins
import schnitzel_tui
from schnitzel import SchnitzelError

OUTSIDE_THE_TREE: dict[str, str] = {}
"""Exception classes allowed outside the tree, by qualified name, each with the reason."""


def _modules(package: ModuleType) -> list[ModuleType]:
    found = [package]
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
        found.append(importlib.import_module(info.name))
    return found


def _exception_classes() -> dict[str, type[BaseException]]:
    classes: dict[str, type[BaseException]] = {}
    for package in (schnitzel, schnitzel_tui, schnitzel_plugins):
        for module in _modules(package):
            for _, value in inspect.getmembers(module, inspect.isclass):
                if issubclass(value, BaseException) and value.__module__ == module.__name__:
                    classes[f"{value.__module__}.{value.__qualname__}"] = value
    return classes


def test_every_exception_class_is_a_schnitzel_error() -> None:
    classes = _exception_classes()
    outside = sorted(
        name
        for name, cls in classes.items()
        if not issubclass(cls, SchnitzelError) and name not in OUTSIDE_THE_TREE
    )
    assert outside == [], f"not under SchnitzelError: {outside}"


def test_the_walk_finds_the_errors_of_every_floor() -> None:
    # the walk must reach modules the package imports lazily, or the test above proves nothing
    classes = _exception_classes()
    for name in (
        "schnitzel.durable.store.StoreError",
        "schnitzel.control.protocol.ProtocolError",
        "schnitzel.spec.yaml_source.YamlLoadFailed",
        "schnitzel_tui.attached.Disconnected",
        "schnitzel_plugins.http.errors.HttpSinkError",
    ):
        assert name in classes, name
