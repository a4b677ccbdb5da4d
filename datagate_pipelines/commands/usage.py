"""`datagate usage list|remove`: the usage import batches of a period, and taking one back."""

from __future__ import annotations

from datetime import date, datetime

import click

from datagate_pipelines.billing.periods import period_label
from datagate_pipelines.commands.common import (
    PERIOD,
    engine,
    expected_errors,
    operator_name,
    portal_option,
    print_json,
)
from datagate_pipelines.commands.imports import report_materialization
from datagate_pipelines.config import load_portals
from datagate_pipelines.imports.usage_batches import UsageBatch, list_batches, remove_batch

PERIOD_OPTION = click.option(
    "--period", type=PERIOD, required=True, help="The billing period, YYYY-MM."
)


@click.group()
def usage() -> None:
    """Usage import batches: list them, take one back while the period is draft."""


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M}"


@usage.command("list")
@portal_option()
@PERIOD_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array for scripts.")
@expected_errors
def list_(portal_id: str, period: date, as_json: bool) -> None:
    """Each batch imported for the period: id, when (UTC), who, file, rows, total; removed
    batches stay listed as removed."""
    load_portals().get(portal_id)
    with engine().connect() as connection:
        batches = list_batches(connection, portal_id, period)
    if as_json:
        print_json([_document(batch) for batch in batches])
        return
    if not batches:
        click.echo(f"portal {portal_id}: no usage imported for {period_label(period)}")
        return
    rows = [("batch", "imported (UTC)", "by", "file", "rows", "total", "")]
    for b in batches:
        removed = f"removed {_when(b.removed_at)} by {b.removed_by}" if b.removed_at else ""
        rows.append(
            (
                str(b.id),
                _when(b.imported_at),
                b.imported_by,
                b.source,
                str(b.row_count),
                str(b.total),
                removed,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [
            cell.rjust(width) if i in (0, 4, 5) else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        click.echo("  ".join(cells).rstrip())
    live = [b for b in batches if b.removed_at is None]
    click.echo(
        f"{len(live)} batch(es) in use: {sum(b.row_count for b in live)} charge(s), "
        f"total {sum((b.total for b in live), start=0):.2f}"
    )


def _document(batch: UsageBatch) -> dict:
    return {
        "batch": batch.id,
        "portal": batch.portal_id,
        "period": period_label(batch.period),
        "file": batch.source,
        "rows": batch.row_count,
        "total": str(batch.total),
        "imported_by": batch.imported_by,
        "imported_at": batch.imported_at.isoformat(),
        "removed_by": batch.removed_by,
        "removed_at": batch.removed_at.isoformat() if batch.removed_at else None,
    }


@usage.command("remove")
@portal_option()
@PERIOD_OPTION
@click.option("--batch", "batch_id", type=int, required=True, help="The batch id (`usage list`).")
@expected_errors
def remove(portal_id: str, period: date, batch_id: int) -> None:
    """Take a batch back: its charges are deleted (the batch stays listed as removed). Only
    while the period has no final invoice; bill the period again to update its drafts."""
    load_portals().get(portal_id)
    with engine().begin() as connection:
        batch = remove_batch(connection, portal_id, period, batch_id, removed_by=operator_name())
    click.echo(
        f"removed batch {batch.id} ({batch.source}: {batch.row_count} charge(s), total "
        f"{batch.total}) from portal {portal_id}, period {period_label(period)}; "
        f"bill the period again to update its drafts"
    )
    report_materialization(
        "usage_charges",
        portal_id,
        period,
        description=f"removed batch {batch.id} ({batch.source})",
        metadata={"removed_batch": batch.id, "charges": -batch.row_count},
    )
