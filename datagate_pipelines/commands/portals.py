"""`datagate portals check|status`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
from sqlalchemy import func, select

from datagate_pipelines import DatagateError
from datagate_pipelines.commands.common import engine, expected_errors, portal_option, print_json
from datagate_pipelines.config import Portal, load_portals
from datagate_pipelines.exporting.status import failed_purchasing, open_exports
from datagate_pipelines.orchestration.instance import instance
from datagate_pipelines.orchestration.jobs import PORTAL_TAG
from datagate_pipelines.sync.access import check_halopsa_access
from datagate_pipelines.warehouse.force_sync import open_requests_by_portal
from datagate_pipelines.warehouse.models import invoices
from datagate_pipelines.warehouse.models import portals as portals_table


@click.group()
def portals() -> None:
    """Portal configuration, account access and health."""


def check_portal(portal: Portal) -> list[str]:
    """Check one portal's account access, printing what was found; the problems."""
    report = check_halopsa_access(portal, engine())
    for note in report.notes:
        click.echo(f"     {note}")
    return report.problems


@portals.command("check")
@portal_option(required=False)
@expected_errors
def check(portal_id: str | None) -> None:
    """Validate portals.yaml, test HaloPSA account access and ensure the "Datagate" client field.

    Every portal is checked even when one fails; the exit status is 1 if any failed.
    """
    registry = load_portals()
    failed = False
    for error in registry.errors:
        if portal_id in (None, error.portal_id):
            click.echo(f"FAIL {error}")
            failed = True
    selected = [p for p in registry.ids if portal_id in (None, p)]
    if portal_id and not selected and not failed:
        raise DatagateError(f"portal {portal_id}: not in {registry.path}")
    for pid in selected:
        try:
            problems = check_portal(registry.get(pid))
        except DatagateError as exc:
            problems = [str(exc)]
        if problems:
            failed = True
            for problem in problems:
                click.echo(f"FAIL portal {pid}: {problem}")
        else:
            click.echo(f"ok   portal {pid}")
    if failed:
        raise SystemExit(1)


@portals.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@expected_errors
def status(as_json: bool) -> None:
    """Each portal: last successful sync, last run and its state, pending force syncs, held
    invoices, failed exports (and how long the oldest has been failing) and final invoices
    not yet exported."""
    import dagster as dg

    registry = load_portals()
    dagster = instance()
    with engine().connect() as connection:
        synced = dict(
            connection.execute(
                select(portals_table.c.id, portals_table.c.last_successful_sync_at)
            ).all()
        )
        pending = open_requests_by_portal(connection)
        targets = {pid: registry.get(pid).settings.export_targets for pid in registry.ids}
        unexported = open_exports(connection, targets)
        purchasing = failed_purchasing(connection)
        held = dict(
            connection.execute(
                select(invoices.c.portal_id, func.count())
                .where(invoices.c.status == "held")
                .group_by(invoices.c.portal_id)
            ).all()
        )
    now = datetime.now(UTC)
    rows = []
    failing_for: dict[str, str | None] = {}
    for pid in sorted(set(registry.ids) | {e.portal_id for e in registry.errors if e.portal_id}):
        failed = [e for e in unexported if e.portal_id == pid and e.status == "failed"]
        failed_orders = [e for e in purchasing if e.portal_id == pid]
        since = min(
            (e.failing_since for e in [*failed, *failed_orders] if e.failing_since), default=None
        )
        runs = dagster.get_runs(filters=dg.RunsFilter(tags={PORTAL_TAG: pid}), limit=1)
        last = runs[0] if runs else None
        rows.append(
            {
                "portal": pid,
                "valid": pid in registry.portals,
                "last_successful_sync": synced[pid].isoformat() if synced.get(pid) else None,
                "last_run": None
                if last is None
                else {"run_id": last.run_id, "job": last.job_name, "status": last.status.value},
                "pending_force_syncs": pending.get(pid, 0),
                "held_invoices": held.get(pid, 0),
                "failed_exports": len(failed) + len(failed_orders),
                "failed_purchasing_exports": len(failed_orders),
                "oldest_failed_export_since": since.isoformat() if since else None,
                "not_yet_exported": sum(
                    1 for e in unexported if e.portal_id == pid and e.status != "failed"
                ),
            }
        )
        failing_for[pid] = _age(now - since) if since else None
    if as_json:
        print_json(rows)
        return
    for row in rows:
        run = row["last_run"]
        exports_text = f"{row['failed_exports']} failed export(s)"
        if row["failed_purchasing_exports"]:
            exports_text += f" ({row['failed_purchasing_exports']} purchase orders or bills)"
        if row["failed_exports"]:
            exports_text += f" (oldest failing for {failing_for[row['portal']]})"
        if row["not_yet_exported"]:
            exports_text += f", {row['not_yet_exported']} not yet exported"
        click.echo(
            f"{row['portal']}: last successful sync {row['last_successful_sync'] or 'never'}; "
            f"last run {run['job'] + ' ' + run['status'] + ' ' + run['run_id'][:8] if run else 'none'}; "
            f"{row['pending_force_syncs']} pending force sync(s); {row['held_invoices']} held invoice(s); "
            + exports_text
            + ("" if row["valid"] else "; INVALID in portals.yaml (see `datagate portals check`)")
        )


def _age(span: timedelta) -> str:
    """`3 d 4 h`, `5 h 12 min`, `40 min` — how long something has been so."""
    minutes = max(int(span.total_seconds() // 60), 0)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
