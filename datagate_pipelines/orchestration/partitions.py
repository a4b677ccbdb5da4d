"""Partitions: portals (dynamic, kept in step with portals.yaml) and billing periods."""

from datetime import date

import dagster as dg

# The earliest billing period any portal may have; portals.yaml's billing_start is later.
FIRST_PERIOD = "2020-01-01"

portal_partitions = dg.DynamicPartitionsDefinition(name="portal")

# end_offset=1 makes the open month a partition too, so its drafts can be refreshed nightly.
period_partitions = dg.MonthlyPartitionsDefinition(start_date=FIRST_PERIOD, end_offset=1)

# Dagster orders dimensions by name: keys read "2026-07-01|acme".
portal_period_partitions = dg.MultiPartitionsDefinition(
    {"period": period_partitions, "portal": portal_partitions}
)


def billing_partition(portal_id: str, period: date) -> str:
    """The key of one portal's billing period, e.g. `2026-07-01|acme`."""
    return str(dg.MultiPartitionKey({"period": period.isoformat(), "portal": portal_id}))


def portal_and_period(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
) -> tuple[str, date]:
    """The portal and billing period a billing or export step runs for."""
    keys = context.partition_key.keys_by_dimension
    return keys["portal"], date.fromisoformat(keys["period"])
