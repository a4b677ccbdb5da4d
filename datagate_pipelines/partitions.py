"""Partitions: portals (dynamic, kept in step with portals.yaml) and billing periods."""

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
