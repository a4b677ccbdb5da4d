"""SQL models as assets: one per file in dbt_like_sql/, its upstream read from the SQL.

The views span every portal, so these assets are not partitioned. Building a model also
rebuilds the models on top of it that exist (PostgreSQL will not drop a view others read).
"""

import base64
from collections.abc import Callable, Sequence
from pathlib import Path

import dagster as dg
from sqlalchemy import Engine

from datagate_pipelines.assets.failures import fail_fast_unless_transient
from datagate_pipelines.invoicing.aging import markdown_table, read_aging, svg_chart
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.warehouse import sql_models

# The asset that writes each warehouse table a model may read. Tables left out (portals,
# request log, rejects, tokens, ...) are operational and give no dependency.
TABLE_ASSETS: dict[str, tuple[str, ...]] = {
    "halo_clients": ("halo_clients",),
    "halo_sites": ("halo_sites",),
    "halo_taxes": ("halo_taxes",),
    "contracts": ("halo_contracts",),
    "items": ("halo_items",),
    "item_groups": ("halo_asset_groups",),
    "recurring_invoices": ("halo_recurring_invoices",),
    "recurring_invoice_lines": ("halo_recurring_invoices",),
    "customers": ("customers",),
    "sites": ("sites",),
    "products": ("products",),
    "product_sites": ("product_sites",),
    "agreements": ("agreements",),
    "tax_rates": ("tax_rates",),
    "product_templates": ("product_templates",),
    "usage_charges": ("usage_charges",),
    "invoices": ("invoices",),
    "invoice_lines": ("invoice_lines",),
    # Drafts and their ledger rows are written together by invoice_lines.
    "billing_ledger": ("invoice_lines",),
    "billing_periods": ("invoice_lines",),
    "exports": ("halo_invoice_export", "qbo_invoice_export"),
    "qbo_entities": ("qbo_customers", "qbo_items", "qbo_terms"),
    "payment_applications": ("qbo_payments",),
    "invoice_payment_states": ("qbo_payments",),
    "halo_payment_exports": ("halo_invoice_payments",),
    # Finalizations and exports write their events (approvals and holds come from operators).
    "audit_events": ("invoices", "halo_invoice_export", "qbo_invoice_export"),
}


def _aging_metadata(engine: Engine) -> dict[str, dg.MetadataValue]:
    with engine.connect() as connection:
        report = read_aging(connection)
    chart = base64.b64encode(svg_chart(report).encode()).decode()
    return {
        "aging": dg.MetadataValue.md(markdown_table(report)),
        "aging_chart": dg.MetadataValue.md(f"![AR aging](data:image/svg+xml;base64,{chart})"),
        "total_owed": dg.MetadataValue.text(f"{report.total:.2f}"),
    }


# Columns a model reads that another asset than the table's writer fills: ar_aging reads the
# balances and payment statuses qbo_payments writes onto invoices.
MODEL_DEPS: dict[str, tuple[str, ...]] = {"ar_aging": ("qbo_payments",)}

# Models whose asset shows more than its row count and schema: what operators read there.
MODEL_METADATA: dict[str, Callable[[Engine], dict[str, dg.MetadataValue]]] = {
    "ar_aging": _aging_metadata,
}


def upstream_keys(model: sql_models.SQLModel) -> list[dg.AssetKey]:
    """The assets a model reads: the writers of its tables, and the models it builds on."""
    keys = {key for table in model.tables for key in TABLE_ASSETS.get(table, ())}
    keys |= set(model.models) | set(MODEL_DEPS.get(model.name, ()))
    return [dg.AssetKey(key) for key in sorted(keys)]


def sql_model_assets(directory: str | Path | None = None) -> list[dg.AssetsDefinition]:
    """One asset per SQL model (default folder: dbt_like_sql/ or DATAGATE_SQL_MODELS_DIR)."""
    models = sql_models.discover(directory)
    taken = {key for keys in TABLE_ASSETS.values() for key in keys}
    for model in models:
        if model.name in taken:
            raise sql_models.SQLModelError(
                model.path, f"{model.name} is already the key of a pipeline asset"
            )
    return [_model_asset(model, sql_models.downstream(models, model.name)) for model in models]


def _model_asset(
    model: sql_models.SQLModel, dependents: Sequence[sql_models.SQLModel]
) -> dg.AssetsDefinition:
    @dg.asset(
        name=model.name,
        deps=upstream_keys(model),
        group_name="sql",
        kinds={"sql"},
        owners=["team:billing-ops"],
        description=model.description,
        tags={"datagate/materialized": model.materialized},
    )
    def _build(warehouse: WarehouseResource) -> dg.MaterializeResult:
        with fail_fast_unless_transient():
            built = sql_models.materialize(warehouse.engine(), model, dependents=dependents)
            report = MODEL_METADATA.get(model.name, lambda _engine: {})(warehouse.engine())
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(built.row_count),
                "dagster/column_schema": dg.MetadataValue.table_schema(
                    dg.TableSchema(
                        columns=[
                            dg.TableColumn(name, type or "unknown") for name, type in built.columns
                        ]
                    )
                ),
                "materialized_as": dg.MetadataValue.text(built.materialized),
                "sql": dg.MetadataValue.md(f"```sql\n{model.sql}\n```"),
                **report,
            }
        )

    return _build
