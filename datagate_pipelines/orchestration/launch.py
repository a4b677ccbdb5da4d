"""Run the pipeline's jobs as Dagster runs on the configured instance (DAGSTER_HOME).

The CLI and the demo use this: every run they make is recorded by the instance and shows
in the UI exactly like a scheduled one. Runs execute in this process (like `dagster asset
materialize`); queued work (force sync) goes through the sensor and the daemon instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository

from datagate_pipelines import DatagateError
from datagate_pipelines.billing.periods import period_label
from datagate_pipelines.orchestration.jobs import FAILED_EXPORTS, PORTAL_TAG
from datagate_pipelines.orchestration.partitions import billing_partition, portal_partitions


class RunFailedError(DatagateError):
    """A Dagster run ended in failure; the message names the run and the failing step.

    `failed_exports` is set when the run did its work but some invoices failed to export
    (a run that "finished with failed exports", exit status 3 for the CLI)."""

    def __init__(self, message: str, *, run_id: str, failed_exports: int | None = None):
        super().__init__(message)
        self.run_id = run_id
        self.failed_exports = failed_exports


# The code location, named as workspace.yaml names it. Runs are rebuilt from this pointer
# (in this process or another), so launching needs no import of the definitions module
# it sits under.
CODE_LOCATION_MODULE = "datagate_pipelines.definitions"
CODE_LOCATION_ATTRIBUTE = "defs"


def job(name: str) -> dg.ReconstructableJob:
    """One of the code location's jobs, as Dagster reconstructs it for a run."""
    repository = ReconstructableRepository.for_module(CODE_LOCATION_MODULE, CODE_LOCATION_ATTRIBUTE)
    return repository.get_reconstructable_job(name)


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    job: str
    partition: str


def ensure_portal_partition(instance: dg.DagsterInstance, portal_id: str) -> None:
    if not instance.has_dynamic_partition(portal_partitions.name, portal_id):
        instance.add_dynamic_partitions(portal_partitions.name, [portal_id])


def _execute(
    instance: dg.DagsterInstance,
    job: dg.ReconstructableJob,
    job_name: str,
    partition: str,
    tags: Mapping[str, str],
    run_config: Mapping[str, Any] | None = None,
) -> RunOutcome:
    # In a terminal, show the assets' own progress lines (INFO), not Dagster's step events
    # (DEBUG); DATAGATE_LOG_LEVEL=DEBUG shows everything.
    level = os.environ.get("DATAGATE_LOG_LEVEL", "INFO").upper()
    config = {**(run_config or {}), "loggers": {"console": {"config": {"log_level": level}}}}
    result = dg.execute_job(
        job, instance=instance, run_config=config, tags={"dagster/partition": partition, **tags}
    )
    if not result.success:
        failed_steps = [event for event in result.all_events if event.is_step_failure]
        failures = [
            f"{event.step_key}: {event.event_specific_data.error.message.strip().splitlines()[-1]}"
            for event in failed_steps
            if event.event_specific_data and event.event_specific_data.error
        ]
        detail = failures[0] if failures else "see the run in the Dagster UI"
        raise RunFailedError(
            f"{job_name} run {result.run_id} for {partition} failed: {detail}",
            run_id=result.run_id,
            failed_exports=_failed_exports(failed_steps),
        )
    return RunOutcome(result.run_id, job_name, partition)


def _failed_exports(failed_steps: list[Any]) -> int | None:
    """How many invoices failed to export, when that is all that failed: every failed step
    is an export step that ended with FAILED_EXPORTS (assets/exports.py); else None."""
    total = 0
    for event in failed_steps:
        data = event.event_specific_data.user_failure_data if event.event_specific_data else None
        count = (data.metadata or {}).get(FAILED_EXPORTS) if data is not None else None
        if count is None:
            return None
        total += int(count.value)
    return total or None


def run_sync(
    instance: dg.DagsterInstance,
    portal_id: str,
    *,
    tags: Mapping[str, str] | None = None,
    resources: Mapping[str, Any] | None = None,
) -> RunOutcome:
    """Sync one portal from HaloPSA. `resources` overrides resource config (e.g. retries)."""
    ensure_portal_partition(instance, portal_id)
    return _execute(
        instance,
        job("portal_sync"),
        "portal_sync",
        portal_id,
        {PORTAL_TAG: portal_id, **(tags or {})},
        _resource_config(resources),
    )


def _resource_config(resources: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not resources:
        return None
    return {"resources": {name: {"config": dict(config)} for name, config in resources.items()}}


def run_billing(
    instance: dg.DagsterInstance,
    portal_id: str,
    period: date,
    *,
    finalize: bool = False,
    tags: Mapping[str, str] | None = None,
    resources: Mapping[str, Any] | None = None,
) -> RunOutcome:
    """Bill one period (drafts; with `finalize`, finalize and number a closed period)."""
    ensure_portal_partition(instance, portal_id)
    run_config = {
        "ops": {"invoices": {"config": {"finalize": finalize}}},
        **(_resource_config(resources) or {}),
    }
    return _execute(
        instance,
        job("billing"),
        "billing",
        billing_partition(portal_id, period),
        {
            PORTAL_TAG: portal_id,
            "dagster/partition/period": period.isoformat(),
            "datagate/period": period_label(period),
            **(tags or {}),
        },
        run_config,
    )
