"""Jobs: what schedules, sensors and the CLI launch."""

import dagster as dg

from datagate_pipelines.partitions import portal_partitions, portal_period_partitions

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
    selection=dg.AssetSelection.assets("invoice_lines", "invoices"),
    partitions_def=portal_period_partitions,
    description="Draft invoices for one portal and billing period; with invoices config "
    "finalize: true, finalize and number a closed period.",
    tags={"datagate/kind": "billing"},
)
