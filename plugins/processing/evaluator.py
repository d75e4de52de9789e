"""Evaluating a compiled expression (expressions.py): simpleeval's evaluator, narrowed to what
the checker allows, bounded (the longest string or list, the largest integer) and metered by
the work budget (work.py).

Pure logic: nothing here imports the runtime.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

import simpleeval

from schnitzel import SchnitzelError
from schnitzel_plugins.processing.work import OverBudget, size_of

__all__ = ["MAX_INT_BITS", "MAX_SEQUENCE", "Evaluator", "ExpressionError"]

MAX_SEQUENCE = 100_000  # longest string or list an expression may build
MAX_INT_BITS = 4096  # largest integer a power may produce


class ExpressionError(SchnitzelError, ValueError):
    """An expression that failed on one packet (a missing field, a type error)."""


_NUMBERS = frozenset({int, float, bool})
# Compared without a charge: at C speed, and each was charged when built (a string, an int)
# or came with the packet. Lists, tuples and mappings are compared item by item: charged;
# long strings a little, and a string searched with `in` by its length (`_spend_on_strings`).
_UNCHARGED = frozenset({int, float, bool, str, type(None)})
_MEMBERSHIP = (ast.In, ast.NotIn)
_SEQUENCES = (str, list, tuple)
_MISSING = object()
_SMALL_INT = 1 << 63  # products within a machine word are not charged
_WORD_BITS = 64  # an int's size: one unit per 64 bits (work.py)
_CHARACTERS_PER_UNIT = 256  # of strings compared: 0.1 us at worst, about a unit elsewhere
# Calls that take constant time whatever their arguments: the arguments are not walked.
_UNWALKED_CALLS = frozenset({"len", "get", "has"})


class Evaluator(simpleeval.EvalWithCompoundTypes):
    """simpleeval, narrowed: `.field` reads a mapping's key (never a Python attribute) and
    calls go only to the functions given (the checker already refused anything else); and
    metered: what an operation builds or walks is charged to `work_left` (work.py), which
    its owner sets before each evaluation."""

    def __init__(
        self,
        operators: Mapping[type, Callable[..., Any]],
        functions: Mapping[str, Callable[..., Any]],
    ) -> None:
        metered = {
            **operators,
            ast.Add: self._add,
            ast.Mult: self._mult,
            ast.Pow: self._power,
            ast.FloorDiv: self._divided(operators[ast.FloorDiv]),
            ast.Mod: self._divided(operators[ast.Mod]),
        }
        super().__init__(operators=metered, functions=dict(functions), names={})
        self.work_left = 0
        self.nodes[ast.JoinedStr] = self._eval_joinedstr

    # The handlers below are simpleeval's own without the checks the compile-time checker
    # already made (every node type handled, every name defined, literals no longer than the
    # expression), and without the walk of every intermediate value for modules and
    # forbidden functions, which no name or call can produce here: names are packet data,
    # calls go only to the functions given. Together they halve the cost of an evaluation
    # (bench/bench_processing_expr.py).
    def _eval(self, node: ast.AST) -> Any:
        return node.handler(node)  # type: ignore[attr-defined]  # bound by `bind`

    def bind(self, tree: ast.AST) -> int:
        """Give each node of `tree` its handler, looked up once instead of per evaluation;
        the number of nodes evaluated (each at most once: the language has no loops)."""
        evaluated = 0
        for node in ast.walk(tree):
            handler = self.nodes.get(node.__class__)
            if handler is not None:  # contexts and operators are read by their parents
                node.handler = handler  # type: ignore[attr-defined]
                evaluated += 1
        return evaluated

    def spend(self, units: int) -> None:
        """Charge `units` of work; past the budget, the evaluation stops."""
        left = self.work_left - units
        if left < 0:
            raise OverBudget
        self.work_left = left

    def spend_on(self, value: Any) -> None:
        """Charge the size of a value an operation builds or walks."""
        if value.__class__ is str:
            self.spend(len(value))
        else:
            self.spend(size_of(value, self.work_left))

    def _eval_name(self, node: ast.Name) -> Any:
        return self.names[node.id]

    @staticmethod
    def _eval_constant(node: ast.Constant) -> Any:
        return node.value

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        container = self._eval(node.value)
        if container.__class__ is dict:  # the common case, first
            value = container.get(node.attr, _MISSING)
            if value is not _MISSING:
                return value
        return _field(container, node.attr, node)

    def _eval_compare(self, node: ast.Compare) -> Any:
        left = self._eval(node.left)
        if len(node.ops) == 1:  # `a < b`, the common case, without the loop
            right = self._eval(node.comparators[0])
            if left.__class__ not in _UNCHARGED or right.__class__ not in _UNCHARGED:
                self._spend_on_comparing(node.ops[0], left, right)
            elif right.__class__ is str and (
                node.ops[0].__class__ in _MEMBERSHIP or len(right) >= _CHARACTERS_PER_UNIT
            ):  # (`kind == "sensor"`, the common case, without a call)
                self._spend_on_strings(node.ops[0], left, right)
            return self.operators[node.ops[0].__class__](left, right)
        verdict = True
        for operation, comparator in zip(node.ops, node.comparators, strict=True):
            right = self._eval(comparator)
            if left.__class__ not in _UNCHARGED or right.__class__ not in _UNCHARGED:
                self._spend_on_comparing(operation, left, right)
            elif right.__class__ is str:
                self._spend_on_strings(operation, left, right)
            verdict = self.operators[operation.__class__](left, right)
            if not verdict:
                return verdict
            left = right
        return verdict

    def _spend_on_comparing(self, operation: ast.cmpop, left: Any, right: Any) -> None:
        units = len(left) if left.__class__ is str else size_of(left, self.work_left)
        kind = right.__class__
        if units <= self.work_left and not (  # (past it, the right side is not walked)
            operation.__class__ in _MEMBERSHIP
            and (kind is dict or (kind is not list and isinstance(right, Mapping)))
        ):  # a key looked up in a mapping: the key only
            units += size_of(right, self.work_left - units)
        left_after = self.work_left - units  # `spend`, inline: a call costs what this does
        if left_after < 0:
            raise OverBudget
        self.work_left = left_after

    def _spend_on_strings(self, operation: ast.cmpop, left: Any, right: str) -> None:
        """A string searched with `in` spends its length (a search is slower than a
        comparison); two long strings compared, a unit per 256 characters of the shorter
        (character by character when their kinds differ, 0.35 ns each)."""
        if operation.__class__ in _MEMBERSHIP:
            self.spend(len(right))
        elif len(right) >= _CHARACTERS_PER_UNIT and left.__class__ is str:
            self.spend(min(len(left), len(right)) // _CHARACTERS_PER_UNIT)

    def _eval_boolop(self, node: ast.BoolOp) -> Any:
        """`and`/`or` return the deciding operand, as in Python and simpleeval."""
        result: Any = False
        if node.op.__class__ is ast.And:
            for value in node.values:
                result = self._eval(value)
                if not result:
                    return result
            return result
        for value in node.values:
            result = self._eval(value)
            if result:
                return result
        return result

    def _eval_binop(self, node: ast.BinOp) -> Any:
        return self.operators[node.op.__class__](self._eval(node.left), self._eval(node.right))

    def _eval_subscript(self, node: ast.Subscript) -> Any:
        container = self._eval(node.value)
        key = self._eval(node.slice)
        if isinstance(key, str):
            return _field(container, key, node)
        try:
            value = container[key]
        except (IndexError, KeyError, TypeError) as exc:
            raise ExpressionError(f"{_source(node.value)}[{key!r}]: {_reason(exc)}") from None
        if key.__class__ is slice:  # a slice is a copy
            self.spend(len(value))
        return value

    def _eval_call(self, node: ast.Call) -> Any:
        name = node.func.id  # type: ignore[attr-defined]
        arguments = [self._eval(argument) for argument in node.args]
        if name not in _UNWALKED_CALLS:
            for argument in arguments:
                if argument.__class__ not in _NUMBERS:
                    self.spend_on(argument)
        result = self.functions[name](*arguments)
        if result.__class__ is str:
            self.spend(len(result))
        return result

    def _eval_joinedstr(self, node: ast.JoinedStr) -> str:
        parts = []
        length = 0
        for value in node.values:
            part = self._eval(value)
            if part.__class__ is not str:
                # walked first, as for str(): the walk stops at the budget, str() would not
                if part.__class__ not in _NUMBERS:
                    self.spend(size_of(part, self.work_left))
                part = str(part)
            length += len(part)
            parts.append(part)
        self.spend(length)  # and charged by its length, as what `str()` makes is
        return "".join(parts)

    def _eval_dict(self, node: ast.Dict) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:  # `{**mapping}` copies the mapping
                unpacked = self._eval(value)
                self.spend(len(unpacked))
                result.update(unpacked)
            else:
                result[self._eval(key)] = self._eval(value)
        return result

    def _add(self, left: Any, right: Any) -> Any:
        if left.__class__ in _NUMBERS and right.__class__ in _NUMBERS:  # the common case
            return operator.add(left, right)  # (an operator: `+` would upset mypy's narrowing)
        if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
            length = len(left) + len(right)
            if length > MAX_SEQUENCE:
                raise ExpressionError(f"that concatenation is longer than {MAX_SEQUENCE}")
            self.spend(length)
        return left + right

    def _mult(self, left: Any, right: Any) -> Any:
        if left.__class__ in _NUMBERS and right.__class__ in _NUMBERS:  # the common case
            if (
                left.__class__ is int
                and right.__class__ is int
                and self._spend_on_big_ints(left, right)
            ):
                return operator.mul(left, right)
            product = operator.mul(left, right)
            if product.__class__ is int and not -_SMALL_INT < product < _SMALL_INT:
                self.spend(size_of(product, self.work_left))
            return product
        for sequence, count in ((left, right), (right, left)):
            if not (isinstance(sequence, _SEQUENCES) and isinstance(count, int)):
                continue
            # A list repeats references, not copies: `[[0] * 100000] * 100000` is cheap to
            # build but str() or == on it walks 10 ** 10 items, so a list counts what it
            # holds, nested.
            if count > 0 and size_of(sequence, MAX_SEQUENCE // count) * count > MAX_SEQUENCE:
                raise ExpressionError(f"that repetition is longer than {MAX_SEQUENCE}")
            self.spend(len(sequence) * max(count, 0))
        return left * right

    def _divided(self, divide: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """`divide` (`//` or `%`), metered for big integers."""

        def metered(left: Any, right: Any) -> Any:
            if left.__class__ is int and right.__class__ is int:
                self._spend_on_big_ints(left, right)
            return divide(left, right)

        return metered

    def _spend_on_big_ints(self, left: int, right: int) -> bool:
        """Before multiplying or dividing integers, one unit per pair of their 64-bit words
        where either is bigger than a word (whether it charged): what schoolbook
        multiplication and long division take, and Karatsuba's `n ** 1.6` is below. The
        size of the result alone was not enough: a tree of products of JSON-sized integers
        took 75 ms for 86,000 units, a quotient of two 0.1 s for 50,000."""
        if -_SMALL_INT < left < _SMALL_INT and -_SMALL_INT < right < _SMALL_INT:
            return False
        self.spend((left.bit_length() // _WORD_BITS + 1) * (right.bit_length() // _WORD_BITS + 1))
        return True

    def _power(self, base: Any, exponent: Any) -> Any:
        # a boolean base too: `True ** n` loops over the bits of n as `1 ** n` does
        if (base.__class__ is int or base.__class__ is bool) and exponent.__class__ is int:
            if max(base.bit_length(), 1) * exponent > MAX_INT_BITS:
                raise ExpressionError(
                    f"{base} ** {exponent} is too large (over {MAX_INT_BITS} bits)"
                )
            power = base**exponent
            if power.__class__ is int and not -_SMALL_INT < power < _SMALL_INT:
                self.spend(size_of(power, self.work_left))  # (a negative exponent: a float)
            return power
        return base**exponent


def _field(container: Any, name: str, node: ast.expr) -> Any:
    if isinstance(container, Mapping):
        try:
            return container[name]
        except KeyError:
            raise ExpressionError(
                f"{_source(node.value)} has no field {name!r}"  # type: ignore[attr-defined]
            ) from None
    raise ExpressionError(
        f"{_source(node.value)} is {_type_name(container)}, "  # type: ignore[attr-defined]
        f"not a mapping with the field {name!r}"
    )


def _source(node: ast.AST) -> str:
    return ast.unparse(node)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"no key {exc.args[0]!r}"
    return str(exc)


def _type_name(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), f"a {type(value).__name__}")
