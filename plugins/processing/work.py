"""The work budget of one expression evaluation, counted in operations, never in time.

An expression has no loops, so each of its nodes is evaluated at most once: its nodes are
charged one unit each, up front, and an expression with more nodes than its budget is refused
when compiled. What the text cannot tell is charged as it happens: the items and characters
an operation builds or walks (a concatenation, a repetition, a comparison of lists, `str()` of
a mapping, an f-string) and the size of a big integer. A result therefore never depends on how
busy the machine is: the same expression on the same packet spends the same units.

Pure logic: nothing here imports the runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from typing import Any

from schnitzel import SchnitzelError

__all__ = ["DEFAULT_MAX_WORK", "OverBudget", "size_of"]

DEFAULT_MAX_WORK = 100_000
"""Units one evaluation may spend unless a node's `max_work` says otherwise: room for a
repetition of the longest allowed list (100,000 items) and a walk over it, a few milliseconds
of CPU at most (docs/processing.md, The work budget)."""

_SCALARS = frozenset({float, bool, type(None)})
_FLAT = frozenset({int, float, bool, type(None)})
_INT_UNIT_BITS = 64  # an int counts one unit per 64 bits: the machine words it is made of
_SHORT = 8  # a list or tuple this short is counted directly
_LONG = 64  # a longer container is first tried as flat (counted at C speed)
_MEMO_DEPTH = 100  # deeper containers (a payload may nest deeper) are counted without memo


class OverBudget(SchnitzelError):
    """Raised inside an evaluation that would spend more than its budget; the expression
    turns it into an `ExpressionError` naming itself and the budget."""


def size_of(value: Any, limit: int) -> int:
    """The units `value` is made of, counted until past `limit`: a character of a string, a
    scalar, an item of a list or tuple, a key and a value of a mapping, nested, each count
    one, a container inside another one more (an empty string or container counts one), and
    an int one per 64 bits more.

    A container held many times (`[[0] * 1000] * 100` holds one list 100 times) counts each
    time, as `str()` or `==` walk it each time, but is counted once: the count costs about
    the distinct objects, walked at C speed where a container holds only scalars or only
    strings, and never more than about `limit` steps."""
    kind = value.__class__
    if kind is str:
        return len(value) or 1
    if kind is int:
        return value.bit_length() // _INT_UNIT_BITS + 1
    if kind in _SCALARS:
        return 1
    if (kind is list or kind is tuple) and len(value) <= _SHORT:
        # `payload.tags`, `("a", "b")`: strings and floats counted here, without the memo
        total = 0
        for item in value:
            item_kind = item.__class__
            if item_kind is str:
                total += len(item) or 1
            elif item_kind is float or item_kind is bool or item is None:
                total += 1
            else:
                break
        else:
            return total or 1
    return _container_size(value, limit, {}, 0)


def _container_size(value: Any, limit: int, memo: dict[int, int], depth: int) -> int:
    known = memo.get(id(value))
    if known is not None:
        return known
    parts: tuple[Any, ...]
    kind = value.__class__
    if kind is list or kind is tuple:
        parts = (value,)
    elif kind is dict:
        parts = (value.keys(), value.values())
    elif isinstance(value, list | tuple):
        parts = (value,)
    elif isinstance(value, Mapping):
        parts = (value.keys(), value.values())
    elif isinstance(value, str):
        return len(value) or 1
    else:
        return 1
    if not value:
        return 1
    if len(value) > _LONG:
        total = 0
        for part in parts:
            flat = _flat_size(part if part is value else list(part))
            if flat is None:
                flat = _items_size(part, limit - total, memo, depth)
            total += flat
    else:
        items = value if len(parts) == 1 else chain(*parts)
        total = _items_size(items, limit, memo, depth)
    if depth:  # inside another: one for itself, so a walk costs at most about `limit`
        total += 1  # containers (`[[[[[]]]]]` is one item, four lists to walk)
    # A count cut short at the limit is past every later limit too: the limits only shrink.
    memo[id(value)] = total
    return total


def _items_size(items: Any, limit: int, memo: dict[int, int], depth: int) -> int:
    total = 0
    for item in items:
        kind = item.__class__
        if kind is str:
            total += len(item) or 1
        elif kind is float or kind is bool or item is None:
            total += 1
        elif kind is int:
            total += item.bit_length() // _INT_UNIT_BITS + 1
        elif depth < _MEMO_DEPTH:
            total += _container_size(item, limit - total, memo, depth + 1)
            if total > limit:
                break
        else:
            total += _deep_size(item, limit - total)
    return total


def _flat_size(items: Any) -> int | None:
    """The size of a long list of only scalars or only strings, counted without a loop in
    Python; None for anything else."""
    kinds = set(map(type, items))
    if kinds <= _FLAT:
        total: int = len(items)
        if int in kinds:
            ints = items if len(kinds) == 1 else [item for item in items if type(item) is int]
            total += sum(map(_INT_UNIT_BITS.__rfloordiv__, map(int.bit_length, ints)))
        return total
    if kinds == {str}:
        return sum(map(len, items)) + items.count("")
    return None


def _deep_size(value: Any, limit: int) -> int:
    """`size_of` without recursion (nor the memo), for what nests deeper than the memo goes."""
    total, todo = 0, [value]
    while todo and total <= limit:
        item = todo.pop()
        if isinstance(item, str):
            total += len(item) or 1
        elif item.__class__ is int:
            total += item.bit_length() // _INT_UNIT_BITS + 1
        elif isinstance(item, list | tuple):
            total += 1  # inside another (empty or not), as in `_container_size`
            todo.extend(item[: limit + 1])
        elif isinstance(item, Mapping):
            total += 1
            for key, nested in item.items():
                todo.append(key)
                todo.append(nested)
                if len(todo) > limit:
                    break
        else:
            total += 1
    return total
