"""`datagate portals check|status`."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import func, select

from datagate_pipelines import DatagateError
from datagate_pipelines.commands.common import engine, expected_errors, portal_option, print_json
from datagate_pipelines.config import Portal, load_portals
from datagate_pipelines.exporting.payment_report import payment_refreshes
from datagate_pipelines.orchestration.instance import instance
from datagate_pipelines.orchestration.jobs import PORTAL_TAG
from datagate_pipelines.sync.access import check_halopsa_access
from datagate_pipelines.warehouse.force_sync import open_requests_by_portal
from datagate_pipelines.warehouse.models import invoices
from datagate_pipelines.warehouse.models import portals as portals_table
from datagate_pipelines.warehouse.webhook_events import last_webhooks


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
    invoices, last payment refresh and last QBO webhook."""
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
        held = dict(
            connection.execute(
                select(invoices.c.portal_id, func.count())
                .where(invoices.c.status == "held")
                .group_by(invoices.c.portal_id)
            ).all()
        )
        refreshes = payment_refreshes(connection)
        webhooks = last_webhooks(connection)
    rows = []
    for pid in sorted(set(registry.ids) | {e.portal_id for e in registry.errors if e.portal_id}):
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
                "last_payment_refresh": refreshes.get(pid),
                "last_webhook": webhooks[pid].isoformat() if pid in webhooks else None,
            }
        )
    if as_json:
        print_json(rows)
        return
    for row in rows:
        run = row["last_run"]
        click.echo(
            f"{row['portal']}: last successful sync {row['last_successful_sync'] or 'never'}; "
            f"last run {run['job'] + ' ' + run['status'] + ' ' + run['run_id'][:8] if run else 'none'}; "
            f"{row['pending_force_syncs']} pending force sync(s); {row['held_invoices']} held invoice(s); "
            f"{_payments_text(row)}"
            + ("" if row["valid"] else "; INVALID in portals.yaml (see `datagate portals check`)")
        )


def _payments_text(row: dict[str, Any]) -> str:
    refresh = row["last_payment_refresh"]
    text = (
        f"payments refreshed {refresh['at'][:19]} ({refresh['mode']}, {refresh['api_calls']} QBO call(s))"
        if refresh
        else "payments never refreshed"
    )
    return text + f"; last webhook {row['last_webhook'][:19] if row['last_webhook'] else 'never'}"
