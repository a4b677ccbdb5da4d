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

from datagate_pipelines.billing.periods import period_label
from datagate_pipelines.orchestration.jobs import PORTAL_TAG, SQL_MODELS_JOB
from datagate_pipelines.orchestration.partitions import billing_partition, portal_partitions
from datagate_pipelines.orchestration.run_failures import RunFailedError, step_errors
from datagate_pipelines.orchestration.tags import FULL_SYNC_TAG

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
    partition: str | None


def ensure_portal_partition(instance: dg.DagsterInstance, portal_id: str) -> None:
    if not instance.has_dynamic_partition(portal_partitions.name, portal_id):
        instance.add_dynamic_partitions(portal_partitions.name, [portal_id])


def _loggers() -> dict[str, Any]:
    """The assets' own lines (terminal.py); Dagster's console logger, with the framework's
    step events, when DATAGATE_LOG_LEVEL=DEBUG."""
    level = os.environ.get("DATAGATE_LOG_LEVEL", "INFO").upper()
    name = "console" if level == "DEBUG" else "terminal"
    return {name: {"config": {"log_level": level}}}


def _execute(
    instance: dg.DagsterInstance,
    job: dg.ReconstructableJob,
    job_name: str,
    partition: str | None,
    tags: Mapping[str, str],
    run_config: Mapping[str, Any] | None = None,
) -> RunOutcome:
    config = {**(run_config or {}), "loggers": _loggers()}
    if partition is not None:
        tags = {"dagster/partition": partition, **tags}
    result = dg.execute_job(job, instance=instance, run_config=config, tags=tags)
    if not result.success:
        raise RunFailedError(result.run_id, job_name, partition, step_errors(result.all_events))
    return RunOutcome(result.run_id, job_name, partition)


def run_sync(
    instance: dg.DagsterInstance,
    portal_id: str,
    *,
    full: bool = False,
    tags: Mapping[str, str] | None = None,
    resources: Mapping[str, Any] | None = None,
) -> RunOutcome:
    """Sync one portal from HaloPSA (`full`: every entity read whole, deletions included).
    `resources` overrides resource config (e.g. retries)."""
    ensure_portal_partition(instance, portal_id)
    return _execute(
        instance,
        job("portal_sync"),
        "portal_sync",
        portal_id,
        {PORTAL_TAG: portal_id, **({FULL_SYNC_TAG: "true"} if full else {}), **(tags or {})},
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


def run_sql_models(
    instance: dg.DagsterInstance, *, resources: Mapping[str, Any] | None = None
) -> RunOutcome:
    """Build the SQL models of dbt_like_sql/ (views over every portal; not partitioned)."""
    return _execute(
        instance,
        job(SQL_MODELS_JOB),
        SQL_MODELS_JOB,
        None,
        {},
        _resource_config(resources),
    )
