"""Partitions: portals (dynamic, kept in step with portals.yaml) and billing periods.

The billing periods start at the earliest `billing_start` of the valid portals in
portals.yaml (DATAGATE_PORTALS_FILE), read once when the code location loads: no period
before it can be billed, so the UI shows none as missing. A portal added later with an
earlier start needs the code location reloaded to add its earlier periods
(docs/operations.md, "Add a portal"); the portal_registry sensor warns until then.

Without a readable portals file or a valid portal there is nothing to bill (and no portal
partition to show), so the periods then start at `FALLBACK_FIRST_PERIOD`: early enough that
the periods of existing partitions stay valid while the file is being fixed, and that no
period of a portal configured later is refused before the next reload.
"""

from datetime import date

import dagster as dg

from datagate_pipelines import DatagateError
from datagate_pipelines.config import PortalRegistry, load_portals

FALLBACK_FIRST_PERIOD = date(2020, 1, 1)


def first_period(registry: PortalRegistry | None = None) -> date:
    """The earliest billing_start of the valid portals (`FALLBACK_FIRST_PERIOD` without any)."""
    if registry is None:
        try:
            registry = load_portals()
        except DatagateError:  # missing or unreadable: the portal_registry sensor says why
            return FALLBACK_FIRST_PERIOD
    starts = [portal.settings.billing_start for portal in registry.portals.values()]
    return min(starts, default=FALLBACK_FIRST_PERIOD)


FIRST_PERIOD = first_period()

portal_partitions = dg.DynamicPartitionsDefinition(name="portal")

# end_offset=1 makes the open month a partition too, so its drafts can be refreshed nightly.
period_partitions = dg.MonthlyPartitionsDefinition(
    start_date=FIRST_PERIOD.isoformat(), end_offset=1
)

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
