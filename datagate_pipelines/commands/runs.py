"""`datagate sync|bill|force-sync`: work done as Dagster runs on the configured instance."""

from __future__ import annotations

import getpass
import os
import sys
from datetime import date
from typing import NoReturn

import click

from datagate_pipelines import DatagateError
from datagate_pipelines.billing.periods import add_months, period_label
from datagate_pipelines.commands.common import (
    EXIT_FAILED_EXPORTS,
    MAX_LISTED,
    PERIOD,
    engine,
    expected_errors,
    portal_option,
)
from datagate_pipelines.commands.preflight import (
    check_billing_secrets,
    check_periods,
    check_sync_secrets,
)
from datagate_pipelines.config import PortalSettings, load_portals
from datagate_pipelines.exporting.status import open_exports
from datagate_pipelines.invoicing.approval import waits_for_approval
from datagate_pipelines.invoicing.finalize import ApprovalRequiredError, approval_required_message
from datagate_pipelines.orchestration.instance import instance
from datagate_pipelines.orchestration.run_failures import RunFailedError
from datagate_pipelines.warehouse.force_sync import file_request

FULL_OPTION = click.option(
    "--full",
    is_flag=True,
    help="A full sync: every HaloPSA list read whole, so records deleted there are marked "
    "deleted (the schedule does one every sync.full_every_days).",
)


@click.command()
@portal_option()
@FULL_OPTION
@expected_errors
def sync(portal_id: str, full: bool) -> None:
    """HaloPSA → customers, sites, products and agreements for one portal (a portal_sync run).

    Between full syncs, lists HaloPSA can filter by change date are read incrementally."""
    check_sync_secrets(load_portals().get(portal_id))
    from datagate_pipelines.orchestration.launch import run_sync  # Dagster, once it is needed

    click.echo(f"syncing portal {portal_id}{' (full)' if full else ''} …")
    outcome = run_sync(instance(), portal_id, full=full)
    click.echo(f"ok: portal_sync run {outcome.run_id} succeeded")


def periods_between(first: date, last: date) -> list[date]:
    if last < first:
        raise DatagateError(f"--to {period_label(last)} is before --from {period_label(first)}")
    periods, period = [], first
    while period <= last:
        periods.append(period)
        period = add_months(period, 1)
    return periods


@click.command()
@portal_option()
@click.option("--period", type=PERIOD, help="The billing period, YYYY-MM.")
@click.option("--from", "first", type=PERIOD, help="First period of a range (billed in order).")
@click.option("--to", "last", type=PERIOD, help="Last period of a range.")
@click.option("--export", is_flag=True, help="Finalize, number and export closed periods.")
@expected_errors
def bill(
    portal_id: str, period: date | None, first: date | None, last: date | None, export: bool
) -> None:
    """Build draft invoices for a period (or --from/--to, in period order); with --export,
    finalize, number and export them to HaloPSA and QBO, retrying the exports that failed
    before.

    Exit status: 0 all done; 1 an error (one line); 3 finished, but some invoices failed to
    export — each listed with the target's code and message (the first 20)."""
    if period and (first or last):
        raise click.UsageError("give --period, or --from and --to, not both")
    if not period and not (first and last):
        raise click.UsageError("give --period YYYY-MM, or --from YYYY-MM --to YYYY-MM")
    portal = load_portals().get(portal_id)
    periods = [period] if period else periods_between(first, last)  # type: ignore[arg-type]
    check_periods(portal.settings, periods, export=export)
    if export:
        for each in periods:
            check_approved(portal.settings, each)
    check_billing_secrets(portal, export=export)
    from datagate_pipelines.orchestration.launch import run_billing  # Dagster, once it is needed

    dagster = instance()
    with_failed_exports = []
    for each in periods:
        click.echo(
            f"billing portal {portal_id} {period_label(each)}{' (finalize + export)' if export else ''} …"
        )
        try:
            outcome = run_billing(dagster, portal_id, each, finalize=export)
        except RunFailedError as error:
            if not error.failed_exports:
                raise
            click.echo(f"done with failed exports: billing run {error.run_id}")
            with_failed_exports.append(each)
            continue
        click.echo(f"ok: billing run {outcome.run_id} succeeded")
    if with_failed_exports:
        report_failed_exports(portal.settings, with_failed_exports)


def check_approved(portal: PortalSettings, period: date) -> None:
    """With approval manual, `--export` finalizes only what an approval approved: a period
    with drafts (or none computed yet) and no approval under way is refused before any run."""
    if portal.invoicing.approval != "manual":
        return
    with engine().connect() as connection:
        if waits_for_approval(connection, portal.id, period):
            raise ApprovalRequiredError(approval_required_message(portal.id, period))


def report_failed_exports(portal: PortalSettings, periods: list[date]) -> NoReturn:
    """One line per failed export (the first 20, then a count); exit status 3."""
    with engine().connect() as connection:
        failed = [
            export
            for period in periods
            for export in open_exports(
                connection, {portal.id: portal.export_targets}, period=period
            )
            if export.status == "failed"
        ]
    for export in failed[:MAX_LISTED]:
        click.echo(f"export failed: {export.line()}", err=True)
    if len(failed) > MAX_LISTED:
        click.echo(f"and {len(failed) - MAX_LISTED} more", err=True)
    sys.exit(EXIT_FAILED_EXPORTS)


@click.command("force-sync")
@portal_option()
@FULL_OPTION
@expected_errors
def force_sync(portal_id: str, full: bool) -> None:
    """File a force-sync request; the force_sync sensor runs it at the top of the queue."""
    # An unknown or invalid portal is refused before anything is filed. (A request filed
    # by other means for such a portal is marked failed by the sensor.) Secrets are not
    # checked: the run starts in the code location's environment, not this shell's.
    load_portals().get(portal_id)
    who = os.environ.get("DATAGATE_OPERATOR") or getpass.getuser()
    with engine().begin() as connection:
        request_id = file_request(connection, portal_id, who, full=full)
    click.echo(
        f"{'full ' if full else ''}force-sync request {request_id} filed for portal "
        f"{portal_id} by {who}"
    )
