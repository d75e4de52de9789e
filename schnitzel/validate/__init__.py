"""Static, fail-closed validation of graph files: every problem in one pass."""

from schnitzel.validate.graph import ResolvedEdge, ResolvedNode, ValidatedGraph
from schnitzel.validate.problems import Location, Problem, ValidationReport
from schnitzel.validate.validator import (
    ValidationResult,
    load_graph,
    validate_file,
    validate_text,
)

__all__ = [
    "Location",
    "Problem",
    "ResolvedEdge",
    "ResolvedNode",
    "ValidatedGraph",
    "ValidationReport",
    "ValidationResult",
    "load_graph",
    "validate_file",
    "validate_text",
]
