"""`datagate review|approve|hold|release|audit`: the desk before money leaves.

`review` reads; `approve`, `hold` and `release` check everything first and write nothing
when a check fails (one `error:` line, exit 1); each writes an audit event; `audit` reads
the trail. Who acts is `DATAGATE_OPERATOR`, else the login.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from datagate_pipelines.billing.periods import add_months, period_label
from datagate_pipelines.billing.variance import InvoiceVariance
from datagate_pipelines.commands.common import (
    PERIOD,
    engine,
    expected_errors,
    portal_option,
    print_json,
)
from datagate_pipelines.commands.reports import _since as parse_since
from datagate_pipelines.config import load_portals
from datagate_pipelines.invoicing.approval import approve_period
from datagate_pipelines.invoicing.holds import hold_invoice, release_invoice
from datagate_pipelines.invoicing.review import PeriodReview, period_review
from datagate_pipelines.warehouse.audit import current_operator, read_events


@click.command()
@portal_option()
@click.option("--period", type=PERIOD, required=True, help="The billing period, YYYY-MM.")
@click.option("--flagged", is_flag=True, help="Only the flagged invoices.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write one row per change to this CSV file (for a spreadsheet).",
)
@expected_errors
def review(
    portal_id: str, period: date, flagged: bool, as_json: bool, csv_file: Path | None
) -> None:
    """What changed since the previous period, invoice by invoice and line by line, the
    flagged invoices with their reasons, and the drafts' fingerprint to approve them with."""
    if as_json and csv_file:
        raise click.UsageError("give --json or --csv, not both")
    portal = load_portals().get(portal_id).settings
    with engine().connect() as connection:
        found = period_review(connection, portal, period)
    if as_json:
        print_json(found.as_json(flagged_only=flagged))
        return
    if csv_file:
        csv_file.write_text(found.csv_text(flagged_only=flagged), encoding="utf-8")
        click.echo(
            f"wrote {csv_file} ({len(found.invoices(flagged_only=flagged))} invoices); "
            f"fingerprint {found.fingerprint or '-'}"
        )
        return
    _print_review(found, flagged_only=flagged)


def _print_review(found: PeriodReview, *, flagged_only: bool) -> None:
    variance, portal = found.variance, found.portal
    label = period_label(found.period)
    percent = variance.change_percent
    click.echo(
        f"portal {portal.id} · {label} against {period_label(add_months(found.period, -1))} · "
        f"{found.state()} (approval: {portal.invoicing.approval})"
    )
    click.echo(f"fingerprint: {found.fingerprint or '- (no drafts)'}")
    click.echo(
        f"total {variance.total:.2f} (previous {variance.previous_total:.2f}, "
        f"{variance.change:+.2f}{f', {percent:+.2f}%' if percent is not None else ''}) · "
        f"{len(variance.invoices)} agreements · {len(variance.flagged)} flagged "
        f"({len(found.unreviewed_flagged())} unreviewed)"
    )
    for v in found.invoices(flagged_only=flagged_only):
        click.echo("")
        click.echo(_invoice_heading(v, found))
        for flag in v.flags:
            click.echo(f"  ! {flag}")
        for change in v.changes:
            click.echo(f"  - {change.text}")
        if not v.changes:
            click.echo("  - no change since the previous period")
    counts = {kind: n for kind, n in variance.counts().items() if n}
    click.echo("")
    click.echo("changes: " + (", ".join(f"{kind} {n}" for kind, n in counts.items()) or "none"))
    for approval in found.approvals:
        click.echo(
            f"approval {approval.id} by {approval.approved_by} at "
            f"{approval.approved_at:%Y-%m-%d %H:%M} UTC: {approval.status}"
            + (f" — {approval.outcome}" if approval.outcome else "")
        )
    if found.state() == "ready for review":
        click.echo(
            f"approve: datagate approve --portal {portal.id} --period {label} "
            f"--fingerprint {found.fingerprint}"
        )


def _invoice_heading(v: InvoiceVariance, found: PeriodReview) -> str:
    mark = "[FLAGGED] " if v.flagged else ""
    previous = "none" if v.previous_total is None else f"{v.previous_total:.2f}"
    percent = f", {v.change_percent:+.2f}%" if v.change_percent is not None else ""
    reviewed = " · reviewed" if v.flagged and found.is_reviewed(v) else ""
    return (
        f"{mark}{v.customer_name} · {v.agreement_key} · {v.invoice_key or '(no invoice)'} · "
        f"{v.status}{reviewed}\n  {v.total:.2f} (previous {previous}, {v.change:+.2f}{percent})"
    )


@click.command()
@portal_option()
@click.option("--period", type=PERIOD, required=True, help="The billing period, YYYY-MM.")
@click.option(
    "--fingerprint",
    help="The fingerprint `datagate review` showed: refused when the drafts changed since. "
    "Without it, the drafts as they are now.",
)
@click.option(
    "--except",
    "excepted",
    multiple=True,
    metavar="INVOICE_KEY",
    help="Leave this invoice out (it stays a draft); repeat for several.",
)
@click.option("--note", help="Why, or anything the audit trail should say.")
@expected_errors
def approve(
    portal_id: str,
    period: date,
    fingerprint: str | None,
    excepted: tuple[str, ...],
    note: str | None,
) -> None:
    """Approve a closed period's drafts: they are finalized, numbered and exported by a run
    the approvals sensor launches at the top of the queue (refused, naming what changed,
    if the drafts change before it runs)."""
    portal = load_portals().get(portal_id).settings
    who = current_operator()
    with engine().begin() as connection:
        approval = approve_period(
            connection,
            portal,
            period,
            approved_by=who,
            note=note,
            reviewed_fingerprint=fingerprint,
            excepted=excepted,
        )
    click.echo(
        f"approval {approval.id} recorded: portal {portal_id} {period_label(period)} by {who}, "
        f"{len(approval.invoices)} invoice(s), total {approval.total:.2f}, "
        f"fingerprint {approval.fingerprint}"
    )
    if approval.excepted:
        click.echo(f"left out (they stay drafts): {', '.join(approval.excepted)}")
    click.echo(
        "the approvals sensor launches its finalize_approved run at the top of the queue; "
        f"follow it in the UI or with `datagate audit --portal {portal_id} --since 1h`"
    )


@click.command()
@portal_option()
@click.option("--invoice", "invoice_key", required=True, help="The invoice key.")
@click.option("--reason", required=True, help="Why it is held (kept on the invoice).")
@expected_errors
def hold(portal_id: str, invoice_key: str, reason: str) -> None:
    """Hold a draft invoice: no number, no export, and its agreement's later invoices wait
    too (docs/billing.md rules 4 and 5), until `datagate release`."""
    load_portals().get(portal_id)
    who = current_operator()
    with engine().begin() as connection:
        held = hold_invoice(connection, portal_id, invoice_key, reason, who)
    click.echo(f"held {invoice_key} (portal {portal_id}) by {who}: {held.reason}")


@click.command()
@portal_option()
@click.option("--invoice", "invoice_key", required=True, help="The invoice key.")
@click.option("--reason", "note", help="Why it is released (kept in the audit trail).")
@expected_errors
def release(portal_id: str, invoice_key: str, note: str | None) -> None:
    """Release an invoice's manual hold: it is a draft again (unless its data still holds
    it), to be finalized with the next approval."""
    load_portals().get(portal_id)
    who = current_operator()
    with engine().begin() as connection:
        status = release_invoice(connection, portal_id, invoice_key, who, note or "")
    click.echo(f"released {invoice_key} (portal {portal_id}) by {who}: now {status}")


@click.command()
@portal_option()
@click.option("--since", help="Only since this time (ISO date/time) or this long ago (24h, 7d).")
@click.option("--invoice", "invoice_key", help="Only this invoice's events.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array for scripts.")
@expected_errors
def audit(portal_id: str, since: str | None, invoice_key: str | None, as_json: bool) -> None:
    """The portal's audit trail, oldest first: approvals, holds, releases, finalizations,
    exports (and credits and voids), with who, when, what and the run."""
    load_portals().get(portal_id)
    with engine().connect() as connection:
        events = read_events(
            connection,
            portal_id,
            since=parse_since(since) if since else None,
            invoice_key=invoice_key,
        )
    if as_json:
        print_json([event.as_json() for event in events])
        return
    if not events:
        click.echo(f"portal {portal_id}: no audit events match")
        return
    for event in events:
        what = event.invoice_key or (period_label(event.period) if event.period else "")
        details = ", ".join(
            f"{key}={value}" for key, value in event.details.items() if value not in (None, [], {})
        )
        run = f" [run {event.run_id[:8]}]" if event.run_id else ""
        click.echo(
            f"{event.occurred_at:%Y-%m-%d %H:%M:%S} {event.actor} {event.action} {what}{run}: "
            f"{details}"
        )
