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

from datagate_pipelines.billing.periods import period_label
from datagate_pipelines.errors import DatagateError
from datagate_pipelines.jobs import PORTAL_TAG
from datagate_pipelines.partitions import portal_partitions


class RunFailedError(DatagateError):
    """A Dagster run ended in failure; the message names the run and the failing step."""


def _job(name: str) -> dg.JobDefinition:
    from datagate_pipelines.definitions import defs

    return defs.resolve_job_def(name)


def portal_sync_job() -> dg.JobDefinition:
    return _job("portal_sync")


def billing_job() -> dg.JobDefinition:
    return _job("billing")


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
        failures = [
            f"{event.step_key}: {event.event_specific_data.error.message.strip().splitlines()[-1]}"
            for event in result.all_events
            if event.is_step_failure
            and event.event_specific_data
            and event.event_specific_data.error
        ]
        detail = failures[0] if failures else "see the run in the Dagster UI"
        raise RunFailedError(f"{job_name} run {result.run_id} for {partition} failed: {detail}")
    return RunOutcome(result.run_id, job_name, partition)


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
        dg.reconstructable(portal_sync_job),
        "portal_sync",
        portal_id,
        {PORTAL_TAG: portal_id, **(tags or {})},
        _resource_config(resources),
    )


def _resource_config(resources: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not resources:
        return None
    return {"resources": {name: {"config": dict(config)} for name, config in resources.items()}}


def billing_partition(portal_id: str, period: date) -> str:
    return str(dg.MultiPartitionKey({"period": period.isoformat(), "portal": portal_id}))


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
        dg.reconstructable(billing_job),
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
