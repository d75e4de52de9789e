"""The expression language of `filter`, `map` and `route`: Python's expression syntax, read by
`ast` and evaluated by `simpleeval`, with a whitelist of what an expression may contain.

An expression sees a packet's fields as names (`payload`, `meta`, `kind`, `source_id`, `seq`,
`ts`, `packet_id`), reads into mappings with `.field` or `["field"]`, and calls only the
functions in `FUNCTIONS`. Everything else is refused when the expression is compiled, with
the line and column: method calls (`payload.clear()` would change a packet other nodes
share), names starting with `_` (`__class__` and the walks that start from it), lambdas,
comprehensions, assignments, format specs and conversions (`!r`). What cannot be refused
by reading the text is bounded while evaluating: exponents, repetition and concatenation of
long strings and lists; and every evaluation spends from a work budget counted in operations
(work.py), so a heavy expression fails its packet instead of holding the event loop (the
evaluator: evaluator.py).
The choice of library and its measurement, and the budget's: docs/processing.md.

Pure logic: nothing here imports the runtime, so it is tested and benchmarked alone.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import simpleeval
from pydantic import AfterValidator

from schnitzel import SchnitzelError, StreamPacket
from schnitzel_plugins.processing.evaluator import Evaluator, ExpressionError
from schnitzel_plugins.processing.work import DEFAULT_MAX_WORK, OverBudget

__all__ = [
    "DEFAULT_MAX_WORK",
    "FUNCTIONS",
    "MAX_WORK_DESCRIPTION",
    "NAMES",
    "NESTED_TOO_DEEP",
    "Expression",
    "ExpressionError",
    "ExpressionInvalid",
    "ExpressionText",
    "check_work",
    "compile_expression",
]

MAX_EXPRESSION_CHARS = 4096
MAX_ROUND_DIGITS = 64
MAX_DEPTH = 64  # deepest nesting: the evaluator recurses once per level
NESTED_TOO_DEEP = "a value nested too deep for Python to print or compare (RecursionError)"


class ExpressionInvalid(SchnitzelError, ValueError):
    """An expression that cannot be compiled: bad syntax or something not allowed."""

    def __init__(self, reason: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column} of the expression: {reason}")
        self.reason = reason
        self.line = line
        self.column = column


def _bounded_mod(left: Any, right: Any) -> Any:
    if isinstance(left, str | bytes):  # "%0999999999d" % 1 would build a gigabyte
        raise ExpressionError("string formatting with % is not allowed; use an f-string")
    return operator.mod(left, right)


def _round(number: Any, digits: Any = None) -> Any:
    if digits is not None and not (isinstance(digits, int) and abs(digits) <= MAX_ROUND_DIGITS):
        # round(10 ** 100, -10 ** 8) runs for minutes
        raise ExpressionError(f"round() takes at most {MAX_ROUND_DIGITS} digits, not {digits!r}")
    return round(number, digits)


def _has(container: Any, key: Any) -> bool:
    return isinstance(container, Mapping) and key in container


def _get(container: Any, key: Any, default: Any = None) -> Any:
    if isinstance(container, Mapping):
        return container.get(key, default)
    return default


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "bool": bool,
    "ceil": math.ceil,
    "endswith": lambda text, suffix: str(text).endswith(suffix),
    "float": float,
    "floor": math.floor,
    "get": _get,
    "has": _has,
    "int": int,
    "len": len,
    "log": math.log,
    "lower": lambda text: str(text).lower(),
    "max": max,
    "min": min,
    "round": _round,
    "sqrt": math.sqrt,
    "startswith": lambda text, prefix: str(text).startswith(prefix),
    "str": str,
    "upper": lambda text: str(text).upper(),
}
"""What an expression may call, by name. `get(m, key, default)` and `has(m, key)` read
mappings without failing on a missing key."""

_PACKET_FIELDS: dict[str, Callable[[StreamPacket], Any]] = {
    "payload": lambda p: p.payload,
    "meta": lambda p: p.meta,
    "kind": lambda p: p.kind,
    "source_id": lambda p: p.source_id,
    "seq": lambda p: p.seq,
    "ts": lambda p: p.ts,
    "packet_id": lambda p: p.packet_id,
}
_CONSTANTS: dict[str, Any] = {
    "True": True,
    "False": False,
    "None": None,
    "true": True,
    "false": False,
    "null": None,
}
NAMES: tuple[str, ...] = (*_PACKET_FIELDS, *_CONSTANTS)
"""The names an expression may use: the packet's fields and the constants."""

_OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,  # Add, Mult and Pow: metered and bounded by the evaluator
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: _bounded_mod,
    ast.Pow: operator.pow,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Gt: operator.gt,
    ast.Lt: operator.lt,
    ast.GtE: operator.ge,
    ast.LtE: operator.le,
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.In: lambda x, y: operator.contains(y, x),
    ast.NotIn: lambda x, y: not operator.contains(y, x),
}

_ALLOWED_NODES: tuple[type, ...] = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Attribute,
    ast.Subscript,
    ast.Slice,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.JoinedStr,
    ast.FormattedValue,
    *_OPERATORS,
)


class Expression:
    """One compiled expression. `evaluate(packet)` returns its value for that packet, or
    raises `ExpressionError` with a message naming the expression and what failed, including
    work past `max_work` (plugins/processing/work.py). One evaluation at a time: the names it
    reads are set on the evaluator (the pack's plugins are not `blocking`, so the event loop
    is their only caller)."""

    __slots__ = ("_allowance", "_evaluator", "_fields", "_tree", "max_work", "nodes", "source")

    def __init__(
        self, source: str, tree: ast.expr, names: Sequence[str], max_work: int = DEFAULT_MAX_WORK
    ) -> None:
        self.source = source
        self._tree = tree
        self._fields = tuple(
            (name, _PACKET_FIELDS[name]) for name in names if name in _PACKET_FIELDS
        )
        self._evaluator = Evaluator(_OPERATORS, FUNCTIONS)
        self._evaluator.names = dict(_CONSTANTS)
        self.nodes = self._evaluator.bind(tree)
        """The nodes evaluated at most, each one unit of work, charged up front."""
        self.max_work = max_work
        self._allowance = max_work - self.nodes

    def evaluate(self, packet: StreamPacket) -> Any:
        """The expression's value for one packet."""
        evaluator = self._evaluator
        names = evaluator.names
        for name, read in self._fields:
            names[name] = read(packet)
        evaluator.work_left = self._allowance
        try:
            return evaluator._eval(self._tree)
        except OverBudget:
            raise ExpressionError(self._over_budget()) from None
        except ExpressionError as exc:
            raise ExpressionError(f"{self.source!r}: {exc}") from None
        except RecursionError:  # str() or == of a payload nested thousands of levels deep
            raise ExpressionError(f"{self.source!r}: {NESTED_TOO_DEEP}") from None
        except (ArithmeticError, TypeError, ValueError, IndexError, KeyError) as exc:
            raise ExpressionError(f"{self.source!r}: {type(exc).__name__}: {exc}") from None
        except simpleeval.InvalidExpression as exc:
            raise ExpressionError(f"{self.source!r}: {exc}") from None

    def charge(self, value: Any) -> None:
        """Spend the size of `value`, a result its caller walks or copies (`map` makes plain
        JSON of it), from what the last evaluation left of its budget."""
        try:
            self._evaluator.spend_on(value)
        except OverBudget:
            raise ExpressionError(self._over_budget()) from None

    def _over_budget(self) -> str:
        return (
            f"{self.source!r}: over its work budget, max_work {self.max_work:,} (a unit "
            "per node, per item or character built or walked); simplify the expression or "
            "raise the node's max_work"
        )


def compile_expression(source: str, max_work: int = DEFAULT_MAX_WORK) -> Expression:
    """Parse and check an expression once; raises `ExpressionInvalid` with line and column,
    also when its nodes alone would spend more than `max_work`."""
    if not source.strip():
        raise ExpressionInvalid("the expression is empty", 1, 1)
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ExpressionInvalid(
            f"longer than {MAX_EXPRESSION_CHARS} characters ({len(source)}); split the work "
            "over several nodes or write a plugin",
            1,
            1,
        )
    # In parentheses, an expression may span lines (a YAML `|` block) like Python's own;
    # "exec" mode, because its syntax errors carry the column and "eval" mode's do not.
    try:
        module = ast.parse(f"({source}\n)", mode="exec")
    except SyntaxError as exc:
        line, column = _position(source, exc.lineno or 1, exc.offset or 1)
        raise ExpressionInvalid(f"syntax error: {exc.msg}", line, column) from None
    except RecursionError:  # the parser's own limit, below ours on some builds
        raise ExpressionInvalid(f"nested deeper than {MAX_DEPTH} levels", 1, 1) from None
    tree = module.body[0].value  # type: ignore[attr-defined]
    for node in ast.walk(tree):  # back to the expression's own columns
        if getattr(node, "lineno", None) == 1:
            node.col_offset -= 1  # type: ignore[attr-defined]
        if getattr(node, "end_lineno", None) == 1:
            node.end_col_offset -= 1  # type: ignore[attr-defined]
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    if _depth(tree) > MAX_DEPTH:
        raise ExpressionInvalid(f"nested deeper than {MAX_DEPTH} levels", 1, 1)
    names: list[str] = []
    for node in ast.walk(tree):
        if id(node) not in called:
            _check_node(node, names)
    expression = Expression(source, tree, names, max_work)
    if expression.nodes > max_work:
        raise ExpressionInvalid(
            f"{expression.nodes:,} nodes, each a unit of work, over max_work {max_work:,}; "
            "simplify the expression or raise the node's max_work",
            1,
            1,
        )
    return expression


def _depth(tree: ast.AST) -> int:
    """How deep the tree nests (without recursing, so a deep tree cannot exhaust the stack)."""
    deepest, todo = 0, [(tree, 1)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        todo.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _position(source: str, line: int, offset: int) -> tuple[int, int]:
    """A syntax error's place in the source, from its place in the parenthesised text."""
    lines = source.split("\n")
    if line > len(lines):  # at the closing parenthesis: the expression ended too early
        return len(lines), len(lines[-1]) + 1
    return line, max(offset - 1 if line == 1 else offset, 1)


def _check_node(node: ast.AST, names: list[str]) -> None:
    """Refuse what an expression may not contain; collect the names it reads."""
    if not isinstance(node, _ALLOWED_NODES):
        _refuse(node, f"{_describe(node)} is not allowed in an expression")
    if isinstance(node, ast.Name):
        if node.id not in NAMES:
            _refuse(node, f"unknown name {node.id!r}; names: {', '.join(_PACKET_FIELDS)}")
        names.append(node.id)
    elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
        _refuse(
            _attribute_name(node), f"field {node.attr!r}: names starting with '_' are not allowed"
        )
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            _refuse(_attribute_name(node.func), "only functions, not methods; " + _functions())
        elif node.func.id not in FUNCTIONS:
            _refuse(node.func, f"unknown function {node.func.id!r}; {_functions()}")
        if node.keywords:
            _refuse(node, "keyword arguments are not allowed")
    elif isinstance(node, ast.FormattedValue) and node.format_spec is not None:
        _refuse(node, "format specs (`{x:...}`) are not allowed; use round() or str()")
    elif isinstance(node, ast.FormattedValue) and node.conversion != -1:
        # simpleeval ignores them: `f"{kind!r}"` would give sensor, not 'sensor'
        _refuse(node, "conversions (`{x!r}`, `{x!s}`, `{x!a}`) are not allowed; use `{x}`")
    elif isinstance(node, ast.Constant) and isinstance(node.value, bytes):
        _refuse(node, "bytes literals are not allowed")


def _attribute_name(node: ast.expr) -> ast.AST:
    """Where the name after the dot is (for `a.b.clear()`, `clear`), to point at it."""
    if not isinstance(node, ast.Attribute) or node.end_col_offset is None:
        return node
    place = ast.Name(id=node.attr)
    place.lineno = node.end_lineno or node.lineno
    place.col_offset = node.end_col_offset - len(node.attr)
    return place


def _describe(node: ast.AST) -> str:
    words = {
        ast.Lambda: "a lambda",
        ast.ListComp: "a comprehension",
        ast.SetComp: "a comprehension",
        ast.DictComp: "a comprehension",
        ast.GeneratorExp: "a generator",
        ast.NamedExpr: "an assignment (:=)",
        ast.Starred: "unpacking (*)",
        ast.Set: "a set",
        ast.Await: "await",
    }
    return words.get(type(node), f"`{type(node).__name__}`")


def _functions() -> str:
    return "functions: " + ", ".join(sorted(FUNCTIONS))


def _refuse(node: ast.AST, reason: str) -> None:
    line = getattr(node, "lineno", 1)
    column = getattr(node, "col_offset", 0) + 1
    raise ExpressionInvalid(reason, line, column)


def _checked(source: str) -> str:
    compile_expression(source)  # ExpressionInvalid is a ValueError: a bad-config problem
    return source


ExpressionText = Annotated[str, AfterValidator(_checked)]
"""A config option holding an expression: compiled when the graph is validated, so a
mistake is a `bad-config` problem at the option's line, naming the column in the expression."""

MAX_WORK_DESCRIPTION = (
    "Work one evaluation of an expression may do, in units: one per node, per item or "
    "character built or walked, per 64 bits of an integer (docs/processing.md, The work "
    "budget). More fails the packet (on_error applies); an expression whose nodes alone "
    "exceed it is refused."
)
"""The description of the `max_work` option of `filter`, `map` and `route`."""


def check_work(expressions: Mapping[str, str], max_work: int) -> None:
    """Refuse (ValueError, a `bad-config` problem) an expression whose nodes alone spend more
    than `max_work`, named by the option holding it (`expressions`: option -> text)."""
    for option, source in expressions.items():
        try:
            compile_expression(source, max_work)
        except ExpressionInvalid as exc:
            raise ValueError(f"{option}: {exc}") from None
