"""Why a run failed, in the project's own words: the root error of each failed step.

Dagster wraps an asset's exception ("Error occurred while executing op …") and keeps the
chain as `SerializableErrorInfo` (message, stack, cause, context). An operator needs the
project's message (`billing period 2026-01 is before billing_start 2026-11`), a `dg.Failure`'s
description, or — for a bug — the exception's class and message; the trace and the run id
are for `--verbose` and the UI. `RunFailedError` keeps every failed step with its root
error, so a caller can classify a failure by its step and error class.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from datagate_pipelines import DatagateError
from datagate_pipelines.orchestration.tags import FAILED_EXPORTS

if TYPE_CHECKING:
    import dagster as dg
    from dagster._utils.error import SerializableErrorInfo

# The package whose exceptions carry messages written for operators.
PROJECT_PACKAGE = "datagate_pipelines."
# Exceptions raised by Dagster itself live under this package (its wrappers among them).
DAGSTER_PACKAGE = "dagster."
# dg.Failure: its description is the message.
FAILURE_CLASS = "Failure"


@dataclass(frozen=True)
class StepError:
    """The root error of one failed step (or of the run, when no step failed)."""

    step_key: str | None
    error_class: str  # the exception's class name, e.g. "BillingOrderError", "Failure"
    message: str  # what an operator reads; one or more lines
    trace: str  # the whole chain with stacks, as Dagster recorded it
    # A dg.Failure's metadata, as plain values: what the step says about its failure
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def line(self) -> str:
        """The message on one line: its first line, with a note when more follows."""
        lines = [line for line in self.message.strip().splitlines() if line.strip()]
        if not lines:
            return f"{self.error_class} (no message)"
        more = len(lines) - 1
        return lines[0] + (f" (… {more} more line(s): --verbose)" if more else "")


class RunFailedError(DatagateError):
    """A Dagster run ended in failure. `str()` is the root cause of its first failed step;
    `steps` holds every failed step's root error, `detail()` the run id and the traces."""

    def __init__(self, run_id: str, job: str, partition: str | None, steps: Sequence[StepError]):
        self.run_id = run_id
        self.job = job
        self.partition = partition
        self.steps = tuple(steps)
        super().__init__(self._summary())

    @property
    def failed_steps(self) -> list[str]:
        return [step.step_key for step in self.steps if step.step_key]

    @property
    def failed_exports(self) -> int | None:
        """How many invoices failed to export, when that is all that failed — every failed
        step is an export step that ended with FAILED_EXPORTS (assets/exports.py): a run
        that finished with failed exports (exit status 3); else None."""
        counts = [step.metadata.get(FAILED_EXPORTS) for step in self.steps]
        if not counts or any(count is None for count in counts):
            return None
        return sum(int(count) for count in counts) or None

    @property
    def root_cause(self) -> StepError | None:
        return self.steps[0] if self.steps else None

    def _summary(self) -> str:
        root = self.root_cause
        if root is None:
            return f"{self.job} run {self.run_id} failed; see it in the Dagster UI"
        others = len(self.steps) - 1
        return root.line + (f" (and {others} more failed step(s))" if others else "")

    def detail(self) -> str:
        """The run to open in the UI and each failed step's trace (for `--verbose`)."""
        where = f" for {self.partition}" if self.partition else ""
        lines = [
            f"{self.job} run {self.run_id}{where} failed; in the Dagster UI: Runs → {self.run_id}"
        ]
        for step in self.steps:
            lines.append(f"--- step {step.step_key or '(run)'}: {step.error_class}")
            lines.append(step.trace.rstrip())
        return "\n".join(lines)


def root_error(error: SerializableErrorInfo, step_key: str | None = None) -> StepError:
    """The first error of the chain that is not one of Dagster's wrappers (a dg.Failure is
    the asset's own), else the last one."""
    chain = list(_chain(error))
    root = next((e for e in chain if not _is_wrapper(e)), chain[-1])
    return StepError(step_key, root.cls_name or "Error", _message(root), error.to_string())


def step_errors(events: Iterable[dg.DagsterEvent]) -> list[StepError]:
    """The root error of every failed step, in the order they failed; the run's own error
    when no step failed (e.g. the run could not start)."""
    steps, run_error = [], None
    for event in events:
        if event.is_step_failure:
            steps.append(_step_error(event))
        elif event.is_run_failure:
            error = getattr(event.event_specific_data, "error", None)
            if error is not None:
                run_error = root_error(error)
    return steps or ([run_error] if run_error else [])


def _step_error(event: dg.DagsterEvent) -> StepError:
    data = event.step_failure_data
    failure = data.user_failure_data  # set by a dg.Failure
    description = failure.description if failure else None
    metadata = {k: getattr(v, "value", v) for k, v in (failure.metadata if failure else {}).items()}
    if data.error is None:
        message = description or "failed (no error recorded)"
        return StepError(event.step_key, FAILURE_CLASS, message, message, metadata)
    found = root_error(data.error, event.step_key)
    own_words = description if found.error_class == FAILURE_CLASS else None
    message = own_words or found.message
    return StepError(event.step_key, found.error_class, message, found.trace, metadata)


def _chain(error: SerializableErrorInfo) -> Iterable[SerializableErrorInfo]:
    seen = 0
    current: SerializableErrorInfo | None = error
    while current is not None and seen < 20:
        yield current
        seen += 1
        current = current.cause or current.context


def _is_wrapper(error: SerializableErrorInfo) -> bool:
    return error.cls_name != FAILURE_CLASS and _qualified(error).startswith(DAGSTER_PACKAGE)


def _qualified(error: SerializableErrorInfo) -> str:
    """The exception's qualified class name, as its message starts ("pkg.mod.Class: …")."""
    head = error.message.split(":", 1)[0].strip()
    return head if re.fullmatch(r"[\w.]+", head) else (error.cls_name or "")


def _message(error: SerializableErrorInfo) -> str:
    """The exception's text: without its class for the project's errors and dg.Failure; with
    its short class name otherwise (a bug: `KeyError: 'x'`)."""
    qualified = _qualified(error)
    text = error.message
    if text.startswith(qualified + ":"):
        text = text[len(qualified) + 1 :]
    text = text.strip()
    if qualified.startswith(PROJECT_PACKAGE) or error.cls_name == FAILURE_CLASS:
        return text
    return f"{error.cls_name}: {text}" if text else (error.cls_name or "error")
