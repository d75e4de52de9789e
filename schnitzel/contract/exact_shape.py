"""A report that already has its exact shape, read without building a pydantic validator.

`schnitzel ctl status` and an attached console check what the control socket sends against
the run report's TypedDicts (`run_report.py`). Importing pydantic and building that validator
costs `ctl status` more than everything else it does, and a report from a runtime of the same
version always has the shape. `read_exact` accepts only values pydantic would accept as they
are, and returns what pydantic would return: the keys the TypedDicts name (extra keys
dropped), integers where a float is declared turned into floats. Anything else (a missing key,
a wrong type, a type it does not know) raises `NotExact`, and the caller asks pydantic, whose
messages name what is wrong.
"""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin

from typing_extensions import is_typeddict

from schnitzel.errors import SchnitzelError

__all__ = ["NotExact", "read_exact"]


class NotExact(SchnitzelError):
    """The value is not plainly of the shape: let pydantic check it and say why. Never
    leaves `run_report`, which asks pydantic instead."""


def read_exact(shape: Any, value: Any) -> Any:
    """`value` as pydantic would return it for `shape`, or `NotExact`."""
    if shape is Any:
        return value
    if shape is str:
        if type(value) is not str:
            raise NotExact
        return value
    if shape is int:
        if type(value) is not int:
            raise NotExact
        return value
    if shape is float:
        if type(value) is float:
            return value
        if type(value) is not int:
            raise NotExact
        try:
            return float(value)
        except OverflowError:
            raise NotExact from None  # too large for a float: pydantic names it
    if shape is bool:
        if type(value) is not bool:
            raise NotExact
        return value
    if is_typeddict(shape):
        return _read_typeddict(shape, value)
    origin, args = get_origin(shape), get_args(shape)
    if origin is Literal:
        if type(value) is not str or value not in args:
            raise NotExact
        return value
    if origin in (Union, types.UnionType):
        return _read_optional(args, value)
    if origin is list:
        if type(value) is not list:
            raise NotExact
        return [read_exact(args[0], item) for item in value]
    if origin is dict:
        if type(value) is not dict or args[0] is not str:
            raise NotExact
        return {_key(key): read_exact(args[1], item) for key, item in value.items()}
    raise NotExact  # a type this reader does not know: pydantic decides


def _key(key: Any) -> str:
    if type(key) is not str:
        raise NotExact
    return key


def _read_optional(args: tuple[Any, ...], value: Any) -> Any:
    """`X | None`, the only unions the report uses."""
    if len(args) != 2 or type(None) not in args:
        raise NotExact
    if value is None:
        return None
    (declared,) = (arg for arg in args if arg is not type(None))
    return read_exact(declared, value)


def _read_typeddict(shape: Any, value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise NotExact
    fields, required = _fields(shape)
    if not required <= value.keys():
        raise NotExact
    return {key: read_exact(fields[key], item) for key, item in value.items() if key in fields}


@cache
def _fields(shape: Any) -> tuple[dict[str, Any], frozenset[str]]:
    """A TypedDict's keys with their types (NotRequired stripped), and the required keys."""
    return typing.get_type_hints(shape), frozenset(shape.__required_keys__)
