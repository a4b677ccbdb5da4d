"""Run tags and metadata keys the launchers set and the commands read (no Dagster import:
`portals status` reads them without loading Dagster)."""

# Runs of one portal never overlap: the instance limits runs per value of this tag
# (deploy/dagster*.yaml). Multi-partitioned runs get it from Dagster; portal-only runs
# get it from whoever launches them.
PORTAL_TAG = "dagster/partition/portal"

#: Metadata of the failure an export step ends with when invoices failed to export: how
#: many. `launch` tells such a run ("finished with failed exports") from one that broke.
FAILED_EXPORTS = "datagate/failed_exports"

#: A sync run with this tag set to "true" is a full sync: every entity read whole
#: (`datagate sync --full`, `force-sync --full`).
FULL_SYNC_TAG = "datagate/full-sync"

#: On a nightly closing billing run: the night's sync tick (ISO UTC). The run finalizes only
#: when the portal's latest successful sync started at or after it (invoicing/close_gate.py);
#: runs launched by hand carry no such tag and are not held back.
SYNCED_SINCE_TAG = "datagate/synced-since"
