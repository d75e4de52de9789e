"""Payloads and metas that JSON encoders other than codec's tend to write differently or
accept where codec refuses (tests/test_batch_encoding.py; bench/_batch_encoding_exactness.py
holds the C encoders considered for the durable inbox to them)."""

from __future__ import annotations

import enum
import math
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schnitzel.contract.packet import FrozenMeta, StreamPacket

__all__ = ["HARD", "hard_cases"]


class Plain(enum.Enum):
    A = 1


class Number(enum.IntEnum):
    A = 1


class Word(enum.StrEnum):
    A = "a"


class Labelled(int, enum.Enum):
    """An int Enum whose value is not its int: the standard library writes the int."""

    def __new__(cls, number: int, label: str) -> Labelled:
        member = int.__new__(cls, number)
        member._value_ = label
        return member

    A = (1, "one")


class OwnItems(dict[str, Any]):
    def items(self) -> Any:
        return [("x", 9)]


class OwnIter(list[Any]):
    def __iter__(self) -> Iterator[Any]:
        return iter([9])


class OwnTupleIter(tuple[Any, ...]):
    def __iter__(self) -> Iterator[Any]:
        return iter([9])


class ReprInt(int):
    def __repr__(self) -> str:
        return "ReprInt"

    __str__ = __repr__


class ReprFloat(float):
    def __repr__(self) -> str:
        return "ReprFloat"

    __str__ = __repr__


@dataclass
class Record:
    x: int = 1


class Viewed:
    def portable_view(self) -> dict[str, Any]:
        return {"seen": [1.5, "x"]}


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _moved() -> OrderedDict[str, int]:
    ordered = OrderedDict(a=1, b=2)
    ordered.move_to_end("a")
    return ordered


def _looped() -> list[Any]:
    looped: list[Any] = []
    looped.append(looped)
    return looped


HARD: dict[str, Any] = {
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "IntEnum": Number.A,
    "StrEnum": Word.A,
    "Enum": Plain.A,
    "int Enum, own value": Labelled.A,
    "OrderedDict moved": _moved(),
    "dict subclass, own items": OwnItems(a=1),
    "list subclass, own iter": OwnIter([1]),
    "tuple subclass, own iter": OwnTupleIter((1,)),
    "int subclass, own repr": ReprInt(5),
    "float subclass, own repr": ReprFloat(1.5),
    "FrozenMeta inside": FrozenMeta(a=1),
    "portable_view": Viewed(),
    "UUID": uuid.UUID(int=1),
    "datetime": datetime(2026, 1, 1, tzinfo=UTC),
    "bytes": b"x",
    "set": {1},
    "dataclass": Record(),
    "2**64": 2**64,
    "2**64 - 1": 2**64 - 1,
    "-2**63 - 1": -(2**63) - 1,
    "-0.0": -0.0,
    "1e16": 1e16,
    "1e-5": 1e-5,
    "1e-7": 1e-7,
    "1e15": 1e15,
    "max float": 1.7976931348623157e308,
    "min float": 5e-324,
    "long repr": 123456789.12345678,
    "lone surrogate": "a\ud800b",
    "control characters": "\x00\x0b\x1f\x7f\x80",
    "U+2028": "\u2028\u2029",
    "backslash u": "\\u0041",
    "int key": {1: 2},
    "bool key": {True: 1},
    "None key": {None: 1},
    "float key": {1.5: 1},
    "str subclass key": {Word.A: 1},
    "non-ASCII key": {"ключ": "值"},
    "deep 50": _nested(50),
    "deep 300": _nested(300),
    "deep 3000": _nested(3000),
    "holds itself": _looped(),
    "tuple": (1, 2.5, "x"),
    "the sentinel": "\x7f",
    "the sentinel in a list": [1, "\x7f", 2],
    "the sentinel as a key": {"\x7f": "\x7f"},
    "text with e-5": "2e-5 and 1e+16",
    "text NaN": "NaN Infinity",
}


def _batch(payload: Any, meta: Any = None) -> list[StreamPacket]:
    return StreamPacket.new_many("sensor", "src", range(3), [{"v": 1}, payload, 2.5], meta)


def hard_cases() -> Iterator[tuple[str, list[StreamPacket]]]:
    for name, value in HARD.items():
        yield f"payload {name}", _batch(value)
        yield f"payload {name} in a dict", _batch({"k": value, "f": 0.5})
        yield f"payload {name} beside 1e-7", _batch({"k": value, "f": 1e-7})
        yield f"meta holding {name}", _batch({"v": 1}, {"m": value})
