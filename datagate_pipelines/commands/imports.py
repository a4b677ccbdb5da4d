"""`datagate import products|tax-rates|usage`: CSV imports, taken whole or refused whole.

A file with any bad row writes nothing: every bad row is listed (line, column, reason) on
stderr, then one `error:` line, exit status 1. `--dry-run` checks the same and reports the
same, writing nothing. An import that wrote something shows in the Dagster UI as a
materialization of its asset.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from datagate_pipelines import DatagateError
from datagate_pipelines.commands.common import (
    PERIOD,
    engine,
    expected_errors,
    operator_name,
    portal_option,
)
from datagate_pipelines.config import load_portals
from datagate_pipelines.imports.product_templates import (
    EXISTING_CHOICES,
    PRODUCT_TEMPLATE_COLUMNS,
    Existing,
    import_product_templates,
)
from datagate_pipelines.imports.report import ImportRefused, ImportReport
from datagate_pipelines.imports.tax_rates import import_tax_rates
from datagate_pipelines.imports.usage import import_usage
from datagate_pipelines.warehouse.models import items, product_templates, recurring_invoice_lines
from datagate_pipelines.warehouse.portals import register_portal

DRY_RUN = click.option(
    "--dry-run",
    is_flag=True,
    help="Check the file and report what the import would do; write nothing.",
)


@click.group("import")
def import_() -> None:
    """Import CSV files: product templates, tax rates, usage charges (a file with a bad row
    is refused whole)."""


def run_import(
    do: Callable[[Any], ImportReport],
    *,
    asset: str,
    portal_id: str | None = None,
    period: date | None = None,
) -> ImportReport:
    """`do(connection)` in one transaction; its warnings and summary printed, or its bad rows
    (and nothing kept) when it refuses the file."""
    try:
        with engine().begin() as connection:
            report = do(connection)
    except ImportRefused as refused:
        print_problems(refused.report)
        raise
    print_problems(report)
    click.echo(report.summary())
    if report.wrote:
        report_materialization(
            asset,
            portal_id,
            period,
            description=report.summary(),
            metadata={"source": report.source, **report.counts, "warnings": len(report.warnings)},
        )
    return report


def print_problems(report: ImportReport) -> None:
    for warning in report.warnings:
        click.echo(f"warning: {report.source} {warning}", err=True)
    for bad in report.bad:
        click.echo(f"{report.source} {bad}", err=True)


def report_materialization(
    asset: str,
    portal_id: str | None,
    period: date | None,
    *,
    description: str,
    metadata: dict[str, Any],
) -> None:
    """A change made outside a run shows in the Dagster UI as a materialization of its asset
    (of the portal's period partition for usage)."""
    import dagster as dg

    from datagate_pipelines.orchestration.instance import instance
    from datagate_pipelines.orchestration.launch import ensure_portal_partition
    from datagate_pipelines.orchestration.partitions import billing_partition

    dagster = instance()
    if portal_id:
        ensure_portal_partition(dagster, portal_id)
    dagster.report_runless_asset_event(
        dg.AssetMaterialization(
            asset,
            partition=billing_partition(portal_id, period) if portal_id and period else None,
            description=description,
            metadata=metadata,
        )
    )


@import_.command("products")
@click.argument("file", type=click.Path(path_type=Path), required=False)
@portal_option()
@click.option(
    "--template",
    "template",
    type=click.Path(path_type=Path),
    help="Write the template CSV to fill in instead.",
)
@click.option(
    "--existing",
    type=click.Choice(EXISTING_CHOICES),
    default="update",
    show_default=True,
    help="Rows for items that already have a template: replace it, or leave it as it is.",
)
@DRY_RUN
@expected_errors
def products(
    file: Path | None, portal_id: str, template: Path | None, existing: Existing, dry_run: bool
) -> None:
    """Product templates: HaloPSA item → tax code (+ optional income account). They count
    from the next billing run."""
    portal = load_portals().get(portal_id)
    if template is not None:
        count = write_product_template(portal_id, template)
        click.echo(
            f"wrote {template} with {count} item(s); fill in tax_code (and income_account), then import it"
        )
        return
    if file is None:
        raise click.UsageError("give FILE to import, or --template FILE to download the template")

    def do(connection: Any) -> ImportReport:
        if not dry_run:
            register_portal(connection, portal)
        return import_product_templates(
            connection, portal_id, file, existing=existing, dry_run=dry_run
        )

    run_import(do, asset="product_templates", portal_id=portal_id)


def write_product_template(portal_id: str, path: Path) -> int:
    """Every recurring item the portal's lines use, with the tax codes/accounts mapped so far."""
    with engine().connect() as connection:
        used = set(
            connection.execute(
                select(recurring_invoice_lines.c.item_id).where(
                    recurring_invoice_lines.c.portal_id == portal_id,
                    recurring_invoice_lines.c.deleted_at.is_(None),
                )
            ).scalars()
        )
        if not used:
            raise DatagateError(
                f"portal {portal_id}: no recurring-invoice lines yet; run `datagate sync --portal {portal_id}` first"
            )
        mapped = {
            r.item_id: r
            for r in connection.execute(
                select(product_templates).where(product_templates.c.portal_id == portal_id)
            )
        }
        rows = connection.execute(
            select(items.c.halo_id, items.c.name)
            .where(items.c.portal_id == portal_id, items.c.halo_id.in_(used))
            .order_by(items.c.name)
        ).all()
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(PRODUCT_TEMPLATE_COLUMNS)
        for item in rows:
            old = mapped.get(item.halo_id)
            writer.writerow(
                [
                    item.halo_id,
                    item.name,
                    old.tax_code if old else "",
                    (old.income_account or "") if old else "",
                ]
            )
    return len(rows)


@import_.command("tax-rates")
@click.argument("file", type=click.Path(path_type=Path))
@DRY_RUN
@expected_errors
def tax_rates(file: Path, dry_run: bool) -> None:
    """Tax rates: zip,tax_code,jurisdiction,rate (rate as a fraction, e.g. 0.0725)."""
    run_import(lambda c: import_tax_rates(c, file, dry_run=dry_run), asset="tax_rates")


@import_.command("usage")
@click.argument("file", type=click.Path(path_type=Path))
@portal_option()
@click.option("--period", type=PERIOD, required=True, help="The billing period, YYYY-MM.")
@click.option(
    "--allow-duplicates",
    is_flag=True,
    help="Import rows identical to charges already imported for the period (new charges that look the same).",
)
@DRY_RUN
@expected_errors
def usage(file: Path, portal_id: str, period: date, allow_duplicates: bool, dry_run: bool) -> None:
    """Usage charges for a period, as one batch (`datagate usage list` shows them):
    customer_id,customer_name,site_id,description,amount,tax_code,usage_date[,contract_id]."""
    portal = load_portals().get(portal_id)

    def do(connection: Any) -> ImportReport:
        if not dry_run:
            register_portal(connection, portal)
        return import_usage(
            connection,
            portal_id,
            period,
            file,
            imported_by=operator_name(),
            allow_duplicates=allow_duplicates,
            dry_run=dry_run,
        )

    run_import(do, asset="usage_charges", portal_id=portal_id, period=period)
