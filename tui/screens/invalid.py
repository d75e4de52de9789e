"""A graph that fails validation: every problem listed, nothing run."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Static

from schnitzel.validate.problems import Problem, ValidationReport

__all__ = ["InvalidGraphApp", "problem_cells"]


class InvalidGraphApp(App[int]):
    """Shows the validation report of a graph that cannot run; exits 1."""

    TITLE = "schnitzel"
    CSS = """
    #summary { height: auto; padding: 0 1; background: $error 30%; }
    #hint { height: 4; padding: 0 1; color: $text-muted; }
    DataTable { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q,escape", "quit_invalid", "Quit")]

    def __init__(self, report: ValidationReport) -> None:
        super().__init__()
        self.report = report

    def compose(self) -> ComposeResult:
        errors, warnings = len(self.report.errors), len(self.report.warnings)
        yield Static(
            Text.assemble(
                (f"{self.report.source} is invalid: ", "bold"),
                f"{errors} error{'s' * (errors != 1)}, "
                f"{warnings} warning{'s' * (warnings != 1)}. Nothing was run.",
            ),
            id="summary",
        )
        yield DataTable(cursor_type="row", id="problems")
        yield Static("Fix the graph file and start again; enter shows a problem's hint.", id="hint")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("", "where", "problem")
        for i, problem in enumerate(self.report.sorted_problems()):
            table.add_row(*problem_cells(problem), key=str(i))
        table.focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        problem = self.report.sorted_problems()[int(str(event.row_key.value))]
        text = Text.assemble((f"[{problem.code}] ", "bold"), problem.message)
        text.append(f"\nhint: {problem.hint}" if problem.hint else "\nno hint for this problem")
        self.query_one("#hint", Static).update(text)  # Text, not markup: codes have brackets

    def action_quit_invalid(self) -> None:
        self.exit(1)


def problem_cells(problem: Problem) -> tuple[Text, str, str]:
    """Severity, location (line, node or edge) and message of one problem."""
    where = problem.where
    place = [f"line {where.line}"] if where.line is not None else []
    if where.node is not None:
        place.append(f"node {where.node}")
    elif where.edge is not None:
        place.append(f"edge {where.edge}")
    elif where.path:
        place.append(where.path)
    style = "bold red" if problem.severity == "error" else "yellow"
    return Text(problem.severity, style=style), ", ".join(place), problem.message
