"""A failed run's root cause, from the events of real (tiny) Dagster runs: the project's
own message, a dg.Failure's description, or a bug's class and message — never Dagster's
wrapper — and every failed step kept for whoever classifies the failure."""

from __future__ import annotations

import dagster as dg

from datagate_pipelines.invoicing.drafts import BillingOrderError
from datagate_pipelines.orchestration.run_failures import RunFailedError, step_errors


@dg.asset
def project_error() -> None:
    try:
        {}["period"]
    except KeyError:
        raise BillingOrderError(
            "portal acme: billing period 2026-01 is before billing_start 2026-11"
        ) from None


@dg.asset
def failure_with_description() -> None:
    try:
        raise ConnectionError("refused")
    except ConnectionError as exc:
        raise dg.Failure(
            description="halopsa portal acme: POST /auth/token failed",
            metadata={"datagate/failed_exports": 3},
        ) from exc


@dg.asset
def bug() -> None:
    {}["missing"]


@dg.asset
def multi_line() -> None:
    raise BillingOrderError("3 rows are bad:\nline 2: x\nline 3: y")


@dg.asset(deps=[project_error])
def downstream() -> None:
    pass


def failed_steps(*assets: dg.AssetsDefinition) -> RunFailedError:
    result = dg.materialize(list(assets), raise_on_error=False)
    assert not result.success
    return RunFailedError(result.run_id, "test", None, step_errors(result.all_events))


def test_the_projects_own_message_not_dagsters_wrapper():
    error = failed_steps(project_error, downstream)
    assert str(error) == "portal acme: billing period 2026-01 is before billing_start 2026-11"
    assert error.failed_steps == ["project_error"]  # downstream never ran: not a failure
    step = error.root_cause
    assert step is not None and step.error_class == "BillingOrderError"
    assert "DagsterExecutionStepExecutionError" in step.trace and "Stack Trace:" in step.trace


def test_a_failure_is_its_description_even_with_a_cause_and_keeps_its_metadata():
    error = failed_steps(failure_with_description)
    assert str(error) == "halopsa portal acme: POST /auth/token failed"
    step = error.root_cause
    assert step is not None and step.error_class == "Failure"
    assert step.metadata == {"datagate/failed_exports": 3}  # for whoever classifies runs


def test_a_bug_keeps_its_class_and_every_failed_step_is_kept():
    error = failed_steps(bug, project_error)
    assert sorted(error.failed_steps) == ["bug", "project_error"]
    messages = {step.step_key: step.line for step in error.steps}
    assert messages["bug"] == "KeyError: 'missing'"
    assert str(error).endswith(" (and 1 more failed step(s))")


def test_a_long_message_is_one_line_and_verbose_has_the_rest():
    error = failed_steps(multi_line)
    assert str(error) == "3 rows are bad: (… 2 more line(s): --verbose)"
    assert "line 3: y" in error.detail()
    assert error.detail().splitlines()[0] == (
        f"test run {error.run_id} failed; in the Dagster UI: Runs → {error.run_id}"
    )
