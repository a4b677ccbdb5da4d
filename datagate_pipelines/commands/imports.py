"""`datagate import products|tax-rates|usage`: CSV imports, reported row by row."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import click
from sqlalchemy import select

from datagate_pipelines import DatagateError
from datagate_pipelines.commands.common import PERIOD, engine, expected_errors, portal_option
from datagate_pipelines.config import load_portals
from datagate_pipelines.imports.csv_files import ImportReport
from datagate_pipelines.imports.product_templates import (
    PRODUCT_TEMPLATE_COLUMNS,
    import_product_templates,
)
from datagate_pipelines.imports.tax_rates import import_tax_rates
from datagate_pipelines.imports.usage import import_usage
from datagate_pipelines.orchestration.instance import instance
from datagate_pipelines.orchestration.launch import ensure_portal_partition
from datagate_pipelines.orchestration.partitions import billing_partition
from datagate_pipelines.warehouse.models import items, product_templates, recurring_invoice_lines
from datagate_pipelines.warehouse.portals import register_portal
from datagate_pipelines.warehouse.rejects import record_rejects


@click.group("import")
def import_() -> None:
    """Import CSV files: product templates, tax rates, usage charges."""


def _report(
    report: ImportReport, portal_id: str | None, asset: str, partition: str | None = None
) -> None:
    for bad in report.bad:
        click.echo(f"  bad row: {bad}")
    click.echo(report.summary())
    if report.dry_run:
        return
    if portal_id:
        with engine().begin() as connection:
            record_rejects(
                connection, portal_id, f"import:{asset}:{Path(report.source).name}", report.bad
            )
    # The import shows in the Dagster UI as a materialization of its asset.
    import dagster as dg

    dagster = instance()
    if portal_id:
        ensure_portal_partition(dagster, portal_id)
    dagster.report_runless_asset_event(
        dg.AssetMaterialization(
            asset,
            partition=partition,
            metadata={
                "source": report.source,
                "new": report.new,
                "changed": report.changed,
                "unchanged": report.unchanged,
                "bad_rows": len(report.bad),
            },
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
@click.option("--dry-run", is_flag=True, help="Show what the import would change, write nothing.")
@expected_errors
def products(file: Path | None, portal_id: str, template: Path | None, dry_run: bool) -> None:
    """Product templates: HaloPSA item → tax code (+ optional income account)."""
    portal = load_portals().get(portal_id)
    if template is not None:
        count = write_product_template(portal_id, template)
        click.echo(
            f"wrote {template} with {count} item(s); fill in tax_code (and income_account), then import it"
        )
        return
    if file is None:
        raise click.UsageError("give FILE to import, or --template FILE to download the template")
    with engine().begin() as connection:
        register_portal(connection, portal)
        report = import_product_templates(connection, portal_id, file, dry_run=dry_run)
    _report(report, portal_id, "product_templates")


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
@click.option("--dry-run", is_flag=True, help="Show what the import would change, write nothing.")
@expected_errors
def tax_rates(file: Path, dry_run: bool) -> None:
    """Tax rates: zip,tax_code,jurisdiction,rate (rate as a fraction, e.g. 0.0725)."""
    with engine().begin() as connection:
        report = import_tax_rates(connection, file, dry_run=dry_run)
    _report(report, None, "tax_rates")


@import_.command("usage")
@click.argument("file", type=click.Path(path_type=Path))
@portal_option()
@click.option("--period", type=PERIOD, required=True, help="The billing period, YYYY-MM.")
@click.option("--dry-run", is_flag=True, help="Show what the import would change, write nothing.")
@expected_errors
def usage(file: Path, portal_id: str, period: date, dry_run: bool) -> None:
    """Usage charges for a period: customer_id,customer_name,site_id,description,amount,tax_code,usage_date."""
    portal = load_portals().get(portal_id)
    with engine().begin() as connection:
        register_portal(connection, portal)
        report = import_usage(connection, portal_id, period, file, dry_run=dry_run)
    _report(report, portal_id, "usage_charges", billing_partition(portal_id, period))
