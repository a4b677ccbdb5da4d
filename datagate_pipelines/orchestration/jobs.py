"""Jobs: what schedules, sensors and the CLI launch."""

import dagster as dg

from datagate_pipelines.orchestration.partitions import portal_partitions, portal_period_partitions

# Runs of one portal never overlap: the instance limits runs per value of this tag
# (deploy/dagster*.yaml). Multi-partitioned runs get it from Dagster; portal-only runs
# get it from whoever launches them.
PORTAL_TAG = "dagster/partition/portal"

portal_sync = dg.define_asset_job(
    "portal_sync",
    selection=dg.AssetSelection.groups("halopsa", "catalog"),
    partitions_def=portal_partitions,
    description="HaloPSA → customers, sites, products, product sites and agreements for one portal.",
    tags={"datagate/kind": "sync"},
)

billing = dg.define_asset_job(
    "billing",
    # The exports follow the invoices in the same run, gated by their blocking money checks;
    # on a drafts-only run they find nothing final to export.
    selection=dg.AssetSelection.assets("invoice_lines", "invoices")
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

payments = dg.define_asset_job(
    "payments",
    selection=dg.AssetSelection.groups("payments"),
    partitions_def=portal_partitions,
    description="Payments recorded in QBO since the last refresh, into the warehouse and onto "
    "the HaloPSA invoices; nightly and on QBO webhooks. Safe to repeat.",
    tags={"datagate/kind": "payments"},
)
