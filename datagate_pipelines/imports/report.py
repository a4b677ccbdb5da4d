"""What an import did (or, dry run, would do), and its refusal when any row is bad."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from datagate_pipelines import DatagateError
from datagate_pipelines.imports.csv_files import RowProblem

NOUNS = {"charges"}  # counts told as "1 charge", "2 charges"; the others are adjectives


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@dataclass
class ImportReport:
    kind: str  # "tax rates", "product templates", "usage"
    source: str  # the file as the operator named it
    dry_run: bool = False
    # What the rows are, in the order they are told: {"new": 3, "updated": 1, ...}.
    counts: dict[str, int] = field(default_factory=dict)
    detail: str = ""  # what the counts leave out (usage: the total and the batch)
    bad: list[RowProblem] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list)
    wrote: bool = False  # something was written (never on a dry run)

    def summary(self) -> str:
        verb = "would import" if self.dry_run else "imported"
        counts = ", ".join(
            plural(value, name.removesuffix("s")) if name in NOUNS else f"{value} {name}"
            for name, value in self.counts.items()
        )
        return f"{self.kind} from {self.source}: {verb} {counts}{self.detail}"

    def refuse_if_bad(self, hint: str = "") -> None:
        """Raise ImportRefused when any row is bad: the file is taken whole or not at all."""
        if self.bad:
            self.bad.sort()
            raise ImportRefused(self, hint)


class ImportRefused(DatagateError):
    """A file with bad rows: nothing of it is written. `report.bad` lists every bad row."""

    def __init__(self, report: ImportReport, hint: str = ""):
        self.report = report
        rows = len({problem.line for problem in report.bad})
        super().__init__(f"{report.source}: {plural(rows, 'bad row')}, nothing imported{hint}")


def take_once(
    report: ImportReport,
    first: dict[Any, tuple[int, Any]],
    key: Hashable,
    line: int,
    value: Any,
    conflict: Callable[[Any, int, Any, int, Any], RowProblem],
) -> None:
    """Keep the first row of each key. A later row that says the same is taken once, with a
    warning; one that says otherwise is a bad row: `conflict(key, line, value, first line,
    first value)`."""
    if key not in first:
        first[key] = (line, value)
    elif first[key][1] == value:
        report.warnings.append(RowProblem(line, None, f"repeats line {first[key][0]}; taken once"))
    else:
        report.bad.append(conflict(key, line, value, *first[key]))
