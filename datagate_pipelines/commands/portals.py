"""`datagate portals check|status`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click
from sqlalchemy import func, select

from datagate_pipelines import DatagateError
from datagate_pipelines.billing.periods import period_label
from datagate_pipelines.commands.common import engine, expected_errors, portal_option, print_json
from datagate_pipelines.config import Portal, load_portals
from datagate_pipelines.exporting.payment_report import payment_refreshes
from datagate_pipelines.exporting.status import failed_purchasing, open_exports
from datagate_pipelines.invoicing.approval import periods_awaiting_approval
from datagate_pipelines.invoicing.close_gate import refused_closes
from datagate_pipelines.orchestration.run_history import last_runs
from datagate_pipelines.warehouse.force_sync import open_requests_by_portal
from datagate_pipelines.warehouse.models import invoices
from datagate_pipelines.warehouse.models import portals as portals_table
from datagate_pipelines.warehouse.sync_runs import incremental_off
from datagate_pipelines.warehouse.webhook_events import last_webhooks


@click.group()
def portals() -> None:
    """Portal configuration, account access and health."""


def check_portal(portal: Portal) -> bool:
    """Check each target of one portal (HaloPSA; QBO when it has a qbo section), one line
    per target after the portal's; whether every target passed."""
    results = [("HaloPSA", _check_halopsa(portal))]
    if portal.settings.qbo is not None:
        results.append(("QBO", _check_qbo(portal)))
    ok = all(problems == [] for _target, (problems, _notes) in results)
    click.echo(f"{'ok  ' if ok else 'FAIL'} portal {portal.id}")
    for target, (problems, notes) in results:
        lines = [*(f"FAIL {_without_portal(p, portal.id)}" for p in problems), *notes]
        for line in lines or ["ok"]:
            click.echo(f"     {target}: {line}")
    return ok


def _check_halopsa(portal: Portal) -> tuple[list[str], list[str]]:
    """(problems, notes): token, first page of clients, the "Datagate" client field."""
    from datagate_pipelines.sync.access import check_halopsa_access

    try:
        report = check_halopsa_access(portal, engine())
    except DatagateError as exc:
        return [str(exc)], []
    return report.problems, [n.removeprefix("HaloPSA: ") for n in report.notes]


def _check_qbo(portal: Portal) -> tuple[list[str], list[str]]:
    """(problems, notes): a token refresh through the rotating store, a CompanyInfo read."""
    from datagate_pipelines.qbo.access import check_qbo_access

    try:
        access = check_qbo_access(portal, engine())
    except DatagateError as exc:
        return [str(exc)], []
    return [], [access.describe()]


def _without_portal(message: str, portal_id: str) -> str:
    """The portal's line already names it: drop a message's leading `portal X: `."""
    return message.removeprefix(f"portal {portal_id}: ")


@portals.command("check")
@portal_option(required=False)
@expected_errors
def check(portal_id: str | None) -> None:
    """Validate portals.yaml, test HaloPSA (and QBO) access and ensure the "Datagate" client field.

    Each target of each portal is checked and reported on its own line, even when one
    fails; the exit status is 1 if any failed.
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
        if not check_portal(registry.get(pid)):
            failed = True
    if failed:
        raise SystemExit(1)


@portals.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@expected_errors
def status(as_json: bool) -> None:
    """Each portal: last successful sync, last run and its state, pending force syncs, the
    lists read whole because HaloPSA ignored their change filter, held invoices, closed
    periods awaiting approval, periods left open because their nightly close found no sync
    since the night's sync tick, failed exports (and how long the oldest has been failing),
    final invoices not yet exported, the last payment refresh and the last QBO webhook."""
    registry = load_portals()
    with engine().connect() as connection:
        synced = dict(
            connection.execute(
                select(portals_table.c.id, portals_table.c.last_successful_sync_at)
            ).all()
        )
        pending = open_requests_by_portal(connection)
        full_only = incremental_off(connection)
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
        refreshes = payment_refreshes(connection)
        webhooks = last_webhooks(connection)
        manual = [
            p for p in registry.ids if registry.get(p).settings.invoicing.approval == "manual"
        ]
        waiting = periods_awaiting_approval(connection, manual, datetime.now(UTC).date())
        not_closed = refused_closes(connection)
    now = datetime.now(UTC)
    rows = []
    failing_for: dict[str, str | None] = {}
    listed = sorted(set(registry.ids) | {e.portal_id for e in registry.errors if e.portal_id})
    runs = last_runs(listed)
    for pid in listed:
        failed = [e for e in unexported if e.portal_id == pid and e.status == "failed"]
        failed_orders = [e for e in purchasing if e.portal_id == pid]
        since = min(
            (e.failing_since for e in [*failed, *failed_orders] if e.failing_since), default=None
        )
        last = runs.get(pid)
        rows.append(
            {
                "portal": pid,
                "valid": pid in registry.portals,
                "last_successful_sync": synced[pid].isoformat() if synced.get(pid) else None,
                "last_run": None
                if last is None
                else {"run_id": last.run_id, "job": last.job, "status": last.status},
                "pending_force_syncs": pending.get(pid, 0),
                # entities read whole because HaloPSA ignored their change filter, and why
                "incremental_off": full_only.get(pid, {}),
                "held_invoices": held.get(pid, 0),
                # closed periods whose drafts wait for `datagate approve`
                "awaiting_approval": [
                    period_label(w.period) for w in waiting if w.portal_id == pid
                ],
                # periods still open because their nightly close found no fresh sync
                "close_refused": [r.as_json() for r in not_closed if r.portal_id == pid],
                "failed_exports": len(failed) + len(failed_orders),
                "failed_purchasing_exports": len(failed_orders),
                "oldest_failed_export_since": since.isoformat() if since else None,
                "not_yet_exported": sum(
                    1 for e in unexported if e.portal_id == pid and e.status != "failed"
                ),
                "last_payment_refresh": refreshes.get(pid),
                "last_webhook": webhooks[pid].isoformat() if pid in webhooks else None,
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
            + (
                f"; awaiting approval: {', '.join(row['awaiting_approval'])}"
                if row["awaiting_approval"]
                else ""
            )
            + "".join(
                f"; {r['period']} not closed: the nightly close at {r['refused_at'][:19]} waited "
                f"for a sync since {r['waited_for_sync_since'][:19]} (last successful sync "
                f"{(r['last_successful_sync'] or 'never')[:19]})"
                for r in row["close_refused"]
            )
            + "".join(
                f"; incremental off for {entity} until a full sync: {reason}"
                for entity, reason in sorted(row["incremental_off"].items())
            )
            + "; "
            + _payments_text(row)
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


def _payments_text(row: dict[str, Any]) -> str:
    refresh = row["last_payment_refresh"]
    text = (
        f"payments refreshed {refresh['at'][:19]} ({refresh['mode']}, {refresh['api_calls']} QBO call(s))"
        if refresh
        else "payments never refreshed"
    )
    return text + f"; last webhook {row['last_webhook'][:19] if row['last_webhook'] else 'never'}"
