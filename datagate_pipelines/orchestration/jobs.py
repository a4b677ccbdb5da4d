"""Jobs: what schedules, sensors and the CLI launch."""

import dagster as dg

from datagate_pipelines.orchestration.partitions import portal_partitions, portal_period_partitions
from datagate_pipelines.orchestration.tags import PORTAL_TAG

__all__ = ["PORTAL_TAG", "billing", "exports", "portal_sync", "sql_models"]


#: The export steps of the billing job (the `exports` group), which the nightly schedule
#: runs alone for periods whose exports failed.
EXPORT_ASSETS = (
    "qbo_customers",
    "qbo_items",
    "qbo_terms",
    "halo_invoice_export",
    "qbo_invoice_export",
)

portal_sync = dg.define_asset_job(
    "portal_sync",
    selection=dg.AssetSelection.groups("halopsa", "catalog", "purchasing"),
    partitions_def=portal_partitions,
    description="HaloPSA → customers, sites, products, product sites and agreements for one "
    "portal; with purchasing on, suppliers and purchase orders → QBO vendors, POs and bills.",
    tags={"datagate/kind": "sync"},
)

billing = dg.define_asset_job(
    "billing",
    # The exports follow the invoices in the same run, gated by their blocking money checks;
    # on a drafts-only run they find nothing final to export. The review follows the drafts.
    selection=dg.AssetSelection.assets("invoice_lines", "invoices", "invoice_review")
    | dg.AssetSelection.groups("exports"),
    partitions_def=portal_period_partitions,
    description="Draft invoices for one portal and billing period; with invoices config "
    "finalize: true, finalize and number a closed period and export it to HaloPSA and QBO.",
    tags={"datagate/kind": "billing"},
)

exports = dg.define_asset_job(
    "exports",
    selection=dg.AssetSelection.groups("exports"),
    partitions_def=portal_period_partitions,
    description="Export a period's final invoices to HaloPSA and QBO (each exactly once); safe "
    "to repeat.",
    tags={"datagate/kind": "exports"},
)

SQL_MODELS_JOB = "sql_models"

sql_models = dg.define_asset_job(
    SQL_MODELS_JOB,
    selection=dg.AssetSelection.groups("sql"),
    description="Build the SQL models of dbt_like_sql/ (views over every portal's tables).",
    tags={"datagate/kind": "sql"},
)

payments = dg.define_asset_job(
    "payments",
    selection=dg.AssetSelection.groups("payments"),
    partitions_def=portal_partitions,
    description="Payments recorded in QBO since the last refresh, into the warehouse and onto "
    "the HaloPSA invoices; nightly and on QBO webhooks. Safe to repeat.",
    tags={"datagate/kind": "payments"},
)

#: Tag naming the approval a finalize_approved run carries out.
APPROVAL_TAG = "datagate/approval"

finalize_approved = dg.define_asset_job(
    "finalize_approved",
    # Not invoice_lines: the drafts finalized are the drafts approved, never recomputed on
    # the way (a recomputation that changed them would void the approval).
    selection=dg.AssetSelection.assets("invoices", "invoice_review")
    | dg.AssetSelection.groups("exports"),
    partitions_def=portal_period_partitions,
    description="Carry out an approval (`datagate approve`, or the approve_period job): "
    "finalize and number the approved drafts of the period — refused, with what changed, "
    "when they changed since — and export them to HaloPSA and QBO. Launched by the approvals "
    "sensor at the top of the queue.",
    tags={"datagate/kind": "approval"},
)
