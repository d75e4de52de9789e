"""Problems found in a graph file, where they are, and how they are reported."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from schnitzel.spec.names import shown, shown_plain

__all__ = ["Location", "Problem", "Severity", "ValidationReport"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Location:
    """Where a problem is: file and line when known, and the node or edge it concerns."""

    file: str
    line: int | None = None
    column: int | None = None
    node: str | None = None
    edge: str | None = None
    """An edge as written, `from -> to`."""
    path: str | None = None
    """The key path inside the file, `nodes[2].config.rate_hz`."""

    def prefix(self) -> str:
        """`file:line:column` as compilers print it."""
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a graph. `code` is stable for scripts; `message` is for people."""

    code: str
    message: str
    where: Location
    hint: str = ""
    severity: Severity = "error"

    def render(self) -> str:
        """Compiler-style text: `file:line:col: error [code] node 'x': message` + hint."""
        subject = ""
        if self.where.node is not None:
            subject = f"node {shown(self.where.node)}: "
        elif self.where.edge is not None:
            subject = f"edge {shown_plain(self.where.edge)}: "
        text = f"{self.where.prefix()}: {self.severity} [{self.code}] {subject}{self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text

    def to_json(self) -> dict[str, Any]:
        """The JSON form used by `schnitzel validate --json`."""
        out: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
        }
        out.update(asdict(self.where))
        return out


@dataclass
class ValidationReport:
    """Every problem found in one pass over a graph file."""

    source: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        """Problems that make the graph invalid."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Problems worth knowing that do not stop the graph."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def valid(self) -> bool:
        """True when there are no errors (warnings allowed)."""
        return not self.errors

    def sorted_problems(self) -> list[Problem]:
        """Problems in file order; those without a line last, errors before warnings."""
        return sorted(
            self.problems,
            key=lambda p: (
                p.where.line is None,
                p.where.line or 0,
                p.where.column or 0,
                p.severity != "error",
            ),
        )
