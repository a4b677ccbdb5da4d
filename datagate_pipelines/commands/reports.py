"""`datagate invoices|requests|prune-requests`: what was billed and every request made."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import click
from sqlalchemy import desc, func, or_, select

from datagate_pipelines.billing.periods import period_label
from datagate_pipelines.commands.common import (
    MAX_LISTED,
    PERIOD,
    engine,
    expected_errors,
    portal_option,
    print_json,
)
from datagate_pipelines.config import load_portals
from datagate_pipelines.exporting.status import export_states
from datagate_pipelines.invoicing.report import invoice_documents
from datagate_pipelines.warehouse import request_log
from datagate_pipelines.warehouse.models import api_requests


@click.command()
@portal_option()
@click.option("--period", type=PERIOD, required=True, help="The billing period, YYYY-MM.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array for scripts.")
@expected_errors
def invoices(portal_id: str, period: date, as_json: bool) -> None:
    """Each invoice of the period: number, customer, agreement, totals, status (draft, held +
    reasons, final, exported, paid, voided) and, per target, its export (the record's id, or
    why it failed); credit notes name the invoice they credit. Site subtotals and lines with
    --json.

    Repair lines (kind credit / rebill, docs/billing.md rule 6) are summed per invoice they
    correct; --json gives each line's `corrects_invoice`."""
    portal = load_portals().get(portal_id)
    targets = portal.settings.export_targets
    with engine().connect() as connection:
        documents = invoice_documents(connection, portal_id, period, targets=targets)
        states = export_states(connection, portal_id, period, targets)
    for doc in documents:
        doc["exports"] = states.get(doc["invoice_key"], [])
    if as_json:
        print_json(documents)
        return
    if not documents:
        click.echo(f"portal {portal_id}: no invoices for {period_label(period)}")
        return
    header = ["number", "customer", "agreement", "subtotal", "tax", "total", "status", *targets]
    rows = [[*_invoice_cells(doc), *_export_cells(doc, targets)] for doc in documents]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )
    total = sum((Decimal(d["total"]) for d in documents), start=Decimal(0))
    click.echo(f"{len(documents)} invoice(s), total {total:.2f}")
    for line in _repair_summaries(documents)[:MAX_LISTED]:
        click.echo(line)
    held = [d for d in documents if d["hold_reasons"]]
    for doc in held[:MAX_LISTED]:
        click.echo(f"held {doc['invoice_key']}: {'; '.join(doc['hold_reasons'])}")
    failures = [
        f"{doc['number']} → {state['target']}: {state['error']}"
        for doc in documents
        for state in doc["exports"]
        if state["status"] == "failed"
    ]
    for line in failures[:MAX_LISTED]:
        click.echo(f"export failed {line}")
    for doc in documents:
        if doc.get("credits"):
            click.echo(f"{doc['number']}: credit note on {doc['credits']}: {doc['reason']}")
        elif doc["status"] == "voided" and doc.get("reason"):
            click.echo(f"{doc['number']}: voided: {doc['reason']}")
    for doc in documents:
        if doc.get("qbo_tax_difference"):
            click.echo(
                f"{doc['number']}: QBO's tax differs from ours by {doc['qbo_tax_difference']} "
                "(it rounds per tax rate): QBO's figure is kept there"
            )
    if len(failures) > MAX_LISTED:
        click.echo(f"and {len(failures) - MAX_LISTED} more failed export(s)")


def _repair_summaries(documents: list[dict]) -> list[str]:
    """Per invoice with repair lines (docs/billing.md rule 6): how much each corrected
    invoice is credited and billed again, e.g. `1003 corrects 1002: credit -249.50, rebill
    83.17`."""
    out = []
    for doc in documents:
        corrected: dict[str, dict[str, Decimal]] = {}
        for line in doc["lines"]:
            if line["kind"] in ("credit", "rebill"):
                sums = corrected.setdefault(line["corrects_invoice"] or "?", {})
                sums[line["kind"]] = sums.get(line["kind"], Decimal(0)) + Decimal(line["amount"])
        for number, sums in corrected.items():
            parts = ", ".join(f"{kind} {amount:.2f}" for kind, amount in sums.items())
            out.append(f"{doc['number'] or doc['invoice_key']} corrects {number}: {parts}")
    return out


def _invoice_cells(doc: dict) -> list[str]:
    return [
        doc["number"] or "(draft)",
        doc["customer"]["name"],
        doc["agreement"]["key"],
        doc["subtotal"],
        doc["tax"],
        doc["total"],
        doc["status"],
    ]


def _export_cells(doc: dict, targets: tuple[str, ...]) -> list[str]:
    """Per target: `Invoice 145`, `FAILED 6000`, `pending`, `missing` — or `-` (not final)."""
    by_target = {state["target"]: state for state in doc["exports"]}
    cells = []
    for target in targets:
        state = by_target.get(target)
        if state is None:
            cells.append("-")
        elif state["status"] == "exported":
            cells.append(f"{state['type'] or ''} {state['id']}".strip())
        elif state["status"] == "failed":
            cells.append(f"FAILED {state['code'] or ''}".strip())
        else:
            cells.append(state["status"])
    return cells


@click.command()
@portal_option(required=False)
@click.option("--system", type=click.Choice(["halopsa", "qbo"]), help="Only this system.")
@click.option("--status", "status_code", type=int, help="Only this HTTP status.")
@click.option(
    "--since",
    help="Only since this time (ISO date/time) or this long ago (e.g. 24h, 7d).",
)
@click.option(
    "--errors", is_flag=True, help="Only failures (HTTP ≥ 400 or no response), with their message."
)
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="At most this many, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@expected_errors
def requests(
    portal_id: str | None,
    system: str | None,
    status_code: int | None,
    since: str | None,
    errors: bool,
    limit: int,
    as_json: bool,
) -> None:
    """The request log: every call to HaloPSA and QBO (no secrets are ever stored in it)."""
    matching = []
    if portal_id:
        matching.append(api_requests.c.portal_id == portal_id)
    if system:
        matching.append(api_requests.c.system == system)
    if status_code is not None:
        matching.append(api_requests.c.status == status_code)
    if since:
        matching.append(api_requests.c.started_at >= _since(since))
    if errors:
        matching.append(
            or_(
                api_requests.c.status >= 400,
                api_requests.c.status.is_(None),
                api_requests.c.error.is_not(None),
            )
        )
    query = (
        select(api_requests)
        .where(*matching)
        .order_by(desc(api_requests.c.started_at), desc(api_requests.c.id))
        .limit(limit)
    )
    with engine().connect() as connection:
        rows = connection.execute(query).all()
        matched = len(rows)
        if matched >= limit:  # there may be more than shown: say how many
            matched = connection.execute(
                select(func.count()).select_from(api_requests).where(*matching)
            ).scalar_one()
    more = f"showing {len(rows):,} of {matched:,}; use --limit {matched} to see them all"
    records = [
        {
            "time": r.started_at.isoformat(),
            "portal": r.portal_id,
            "system": r.system,
            "direction": r.direction,
            "method": r.method,
            "path": r.path,
            "status": r.status,
            "duration_ms": r.duration_ms,
            "attempt": r.attempt,
            "run_id": r.run_id,
            "error": r.error,
        }
        for r in rows
    ]
    if as_json:
        print_json(records)
        if matched > len(rows):  # on stderr: the JSON array stays whole
            click.echo(more, err=True)
        return
    for r in records:
        line = f"{r['time'][:19]}  {r['portal'] or '-'}  {r['system']:<7} {r['method']:<6} {r['path']}  {r['status'] or '---'}  {r['duration_ms']} ms"
        if r["attempt"] > 1:
            line += f"  attempt {r['attempt']}"
        click.echo(line + (f"\n    {r['error']}" if r["error"] else ""))
    if not records:
        click.echo("no requests match")
    elif matched > len(rows):
        click.echo(more)


_UNITS = {"h": "hours", "d": "days"}


def _since(value: str, option: str = "--since") -> datetime:
    """An ISO date/time (UTC unless it says otherwise), or a span back from now: 24h, 90d."""
    value = value.strip()
    if value[-1:] in _UNITS and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{_UNITS[value[-1]]: int(value[:-1])})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: give an ISO date/time, hours like 24h or days like 90d",
            param_hint=option,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.command("prune-requests")
@click.option(
    "--older-than",
    required=True,
    help="Delete requests started before this: days (90d), hours (24h) or an ISO date/time.",
)
@portal_option(required=False)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@expected_errors
def prune_requests(older_than: str, portal_id: str | None, dry_run: bool) -> None:
    """Keep the request log to a retention: it grows by one row per API call."""
    before = _since(older_than, "--older-than")
    with engine().begin() as connection:
        count = request_log.prune_requests(connection, before, portal_id=portal_id, dry_run=dry_run)
    scope = f" of portal {portal_id}" if portal_id else ""
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} {count} request(s){scope} started before {before.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    )
