"""HaloPSA ingest: each portal's HaloPSA records mirrored into the warehouse.

One multi-asset, so a sync fetches one token and pages each entity once; any subset can
still be materialized on its own from the UI. Between full syncs, clients and sites are read
incrementally where HaloPSA honours their change filter (sync/incremental.py); every entity
writes only the records whose content changed (warehouse/mirror.py).
"""

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pandera.pandas as pa
from pydantic import Field
from sqlalchemy import Engine, Table

from datagate_pipelines.assets.failures import api_retry_policy, fail_fast_unless_transient
from datagate_pipelines.config import ChangeFilter, HaloPSASettings
from datagate_pipelines.halopsa.client import HaloPSAClient
from datagate_pipelines.orchestration.partitions import portal_partitions
from datagate_pipelines.orchestration.tags import FULL_SYNC_TAG
from datagate_pipelines.resources.halopsa import HaloPSAResource
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.schemas import halopsa as schemas
from datagate_pipelines.schemas.checks import gate, records, to_frame
from datagate_pipelines.sync import halopsa_rows as decode
from datagate_pipelines.sync import incremental
from datagate_pipelines.warehouse import models
from datagate_pipelines.warehouse.mirror import (
    hashed,
    mirror_changes,
    needs_writing,
    stored_records,
)
from datagate_pipelines.warehouse.portals import register_portal
from datagate_pipelines.warehouse.rejects import Reject, log_rejects, record_rejects
from datagate_pipelines.warehouse.request_log import recording
from datagate_pipelines.warehouse.sync_runs import entity_reads, record_entity_read, start_sync

API_RETRY_POLICY = api_retry_policy()


class SyncConfig(dg.Config):
    """Run config of the HaloPSA ingest (the launchpad's `ops: {halopsa_snapshot: {config:
    {full: true}}}`); the run tag `datagate/full-sync: "true"` does the same."""

    full: bool = Field(
        default=False,
        description="A full sync: every entity read whole (records deleted in HaloPSA are "
        "marked deleted only then), as the schedule does every sync.full_every_days.",
    )


def full_sync_requested(context: dg.AssetExecutionContext, config: SyncConfig) -> bool:
    return config.full or context.run.tags.get(FULL_SYNC_TAG, "").lower() == "true"


@dataclass(frozen=True)
class Mirrored:
    """Decoded records bound for one mirror table, with the schema that guards it."""

    table: Table
    schema: pa.DataFrameSchema
    decoded: decode.Decoded


Decode = Callable[[list[dict[str, Any]], str], list[Mirrored]]
#: Lists an entity: (client, the Datagate field's name, extra query parameters).
Fetch = Callable[[HaloPSAClient, str, Mapping[str, Any]], list[dict[str, Any]]]


@dataclass(frozen=True)
class Entity:
    asset: str
    description: str
    fetch: Fetch
    decode: Decode
    # The portal's change filter for this list, where HaloPSA has one (§A6), and the
    # list's HaloPSA name (for the reason when the filter is found ignored).
    change_filter: Callable[[HaloPSASettings], ChangeFilter | None] = lambda _halo: None
    resource: str = ""


def _into(
    table: Table, schema: pa.DataFrameSchema, decoder: Callable[..., decode.Decoded]
) -> Decode:
    return lambda raw, _field: [Mirrored(table, schema, decoder(raw))]


def _fetch_clients(
    client: HaloPSAClient, datagate_field: str, params: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """All clients, with the Datagate checkbox's value (list rows carry only the custom
    fields asked for by id, so the field's id is looked up first)."""
    wanted = {datagate_field.casefold(), f"cf{datagate_field.casefold()}"}
    field_ids = [
        f["id"] for f in client.field_infos() if str(f.get("name", "")).casefold() in wanted
    ]
    return client.clients(include_inactive=True, custom_field_ids=field_ids, params=params)


def _clients(raw: list[dict[str, Any]], datagate_field: str) -> list[Mirrored]:
    return [
        Mirrored(
            models.halo_clients,
            schemas.clients,
            decode.decode_clients(raw, datagate_field=datagate_field),
        )
    ]


def _recurring(raw: list[dict[str, Any]], _field: str) -> list[Mirrored]:
    # Headers and their lines come from one listing: decoded once, stored in two tables.
    headers, lines = decode.decode_recurring_invoices(raw)
    return [
        Mirrored(models.recurring_invoices, schemas.recurring_invoices, headers),
        Mirrored(models.recurring_invoice_lines, schemas.recurring_invoice_lines, lines),
    ]


ENTITIES = [
    Entity(
        "halo_asset_groups",
        "HaloPSA Asset Groups used for items: the item groups of the product filters.",
        lambda c, _f, p: c.asset_groups(params=p),
        _into(models.item_groups, schemas.item_groups, decode.decode_item_groups),
    ),
    Entity(
        "halo_items",
        "HaloPSA items, with their asset group and sales tax id.",
        lambda c, _f, p: c.items(include_inactive=True, params=p),
        _into(models.items, schemas.items, decode.decode_items),
    ),
    Entity(
        "halo_taxes",
        "HaloPSA tax rates (ids referenced by items and invoice lines).",
        lambda c, _f, p: c.taxes(params=p),
        _into(models.halo_taxes, schemas.taxes, decode.decode_taxes),
    ),
    Entity(
        "halo_clients",
        "HaloPSA clients (active and inactive), flagged when ticked with the Datagate field.",
        _fetch_clients,
        _clients,
        lambda halo: halo.change_filters.clients,
        "Client",
    ),
    Entity(
        "halo_sites",
        "HaloPSA sites with their postcode (the zip used for tax).",
        lambda c, _f, p: c.sites(include_inactive=True, params={"includeaddress": True, **p}),
        _into(models.halo_sites, schemas.sites, decode.decode_sites),
        lambda halo: halo.change_filters.sites,
        "Site",
    ),
    Entity(
        "halo_contracts",
        "HaloPSA client contracts with their contract type.",
        lambda c, _f, p: c.contracts(include_inactive=True, params=p),
        _into(models.contracts, schemas.contracts, decode.decode_contracts),
    ),
    Entity(
        "halo_recurring_invoices",
        "HaloPSA recurring invoices (negative ids) and their lines: the source of products.",
        lambda c, _f, p: c.recurring_invoices(
            include_lines=True, params={"includeinactive": True, **p}
        ),
        _recurring,
    ),
]


def stats_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0) for k in after}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            entity.asset,
            description=entity.description,
            group_name="halopsa",
            kinds={"halopsa", "sqlalchemy"},
            owners=["team:billing-ops"],
            partitions_def=portal_partitions,
            tags={"datagate/stage": "ingest"},
            skippable=True,
        )
        for entity in ENTITIES
    ],
    can_subset=True,
    retry_policy=API_RETRY_POLICY,
    pool="halopsa",
)
def halopsa_snapshot(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    halopsa: HaloPSAResource,
) -> Iterator[dg.MaterializeResult]:
    """Page through every HaloPSA entity of the portal and mirror it into the warehouse.

    Only records whose content changed are written. A record missing from a complete
    listing is marked deleted, never removed (incremental listings delete nothing); a
    record that fails decoding or its pandera schema goes to `rejects` with the field and
    reason.
    """
    with fail_fast_unless_transient():
        yield from _snapshot(
            context, full_sync_requested(context, config), portals, warehouse, halopsa
        )


def _snapshot(
    context: dg.AssetExecutionContext,
    full_requested: bool,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    halopsa: HaloPSAResource,
) -> Iterator[dg.MaterializeResult]:
    portal = portals.portal(context.partition_key)
    settings = portal.settings
    engine = warehouse.engine()
    data_as_of = datetime.now(UTC)
    with engine.begin() as connection:
        register_portal(connection, portal)
        mode = start_sync(
            connection,
            portal.id,
            context.run_id,
            data_as_of,
            full_requested=full_requested,
            full_every_days=settings.sync.full_every_days,
        )
        last_reads = entity_reads(connection, portal.id)
    context.log.info(
        f"portal {portal.id}: "
        + (f"full sync ({mode.reason})" if mode.full else "incremental sync")
    )
    field_name = settings.halopsa.datagate_field_name
    overlap = timedelta(minutes=settings.sync.incremental_overlap_minutes)
    selected = {key.to_user_string() for key in context.selected_asset_keys}
    with (
        recording(engine) as recorder,
        halopsa.client(portal, recorder=recorder, run_id=context.run_id) as client,
    ):
        for entity in ENTITIES:
            if entity.asset not in selected:
                continue
            started = time.monotonic()
            before = client.stats.as_dict()
            change_filter = entity.change_filter(settings.halopsa)
            plan = incremental.plan_read(
                change_filter, last_reads.get(entity.asset), full_sync=mode.full, overlap=overlap
            )
            read = incremental.read(
                lambda params, entity=entity: entity.fetch(client, field_name, params),
                plan,
                change_filter,
                entity.resource or entity.asset,
            )
            if read.filter_ignored:
                context.log.warning(
                    f"portal {portal.id}: {entity.asset}: {read.filter_ignored}; read whole "
                    "instead, and incremental reads of it are off until a full sync succeeds"
                )
            metadata, rejected = mirror_entity(
                context,
                engine,
                portal.id,
                entity.asset,
                entity.decode(read.rows, field_name),
                data_as_of,
                complete=read.complete,
            )
            with engine.begin() as connection:
                record_entity_read(
                    connection,
                    portal.id,
                    context.run_id,
                    entity.asset,
                    read_as_of=data_as_of,
                    kind=read.kind,
                    summary=read.summary(),
                    incremental_off=read.filter_ignored,
                )
            calls = stats_delta(before, client.stats.as_dict())
            metadata.update(read_metadata(calls, started, rejected, data_as_of))
            metadata["read"] = dg.MetadataValue.text(read.kind)
            if read.filter_ignored or read.reason:
                metadata["read_reason"] = dg.MetadataValue.text(read.filter_ignored or read.reason)
            context.log.info(
                f"portal {portal.id}: {entity.asset}: {read.kind} read, {len(read.rows)} record(s) "
                f"in {int(calls['pages'])} page(s), {metadata['rows'].value} written, "
                f"{rejected} rejected, {time.monotonic() - started:.1f} s"
            )
            yield dg.MaterializeResult(asset_key=entity.asset, metadata=metadata)


def mirror_entity(
    context: dg.AssetExecutionContext,
    engine: Engine,
    portal_id: str,
    asset: str,
    mirrored_tables: list[Mirrored],
    seen_at: datetime,
    *,
    complete: bool = True,
) -> tuple[dict[str, Any], int]:
    """Gate the changed records through their schemas and mirror them, each table in its
    own transaction with its rejects; the counts as metadata, and how many were rejected.

    Records whose content hash is the stored one are neither checked again nor written.
    """
    metadata: dict[str, Any] = {}
    rejected = 0
    for index, mirrored in enumerate(mirrored_tables):
        decoded = mirrored.decoded
        hashes = hashed(decoded.rows)
        with engine.begin() as connection:
            stored = stored_records(connection, mirrored.table, portal_id)
            changed = needs_writing(hashes, stored)
            checked, schema_rejects = _checked(
                [r for r in decoded.rows if r["halo_id"] in changed], mirrored.schema, decoded
            )
            rejects = [*decoded.rejects, *schema_rejects]
            counts = mirror_changes(
                connection,
                mirrored.table,
                portal_id,
                checked,
                hashes=hashes,
                stored=stored,
                seen_ids=decoded.seen_ids,
                seen_at=seen_at,
                complete=complete,
            )
            record_rejects(
                connection,
                portal_id,
                f"{asset}:{mirrored.table.name}",
                rejects,
                run_id=context.run_id,
            )
        rejected += len(rejects)
        prefix = f"{mirrored.table.name}_" if index else ""
        metadata.update(
            {f"{prefix}{name}": dg.MetadataValue.int(value) for name, value in counts.items()}
        )
        log_rejects(context, portal_id, rejects)
    return metadata, rejected


def _checked(
    rows: list[dict[str, Any]], schema: pa.DataFrameSchema, decoded: decode.Decoded
) -> tuple[list[dict[str, Any]], list[Reject]]:
    """The rows that pass their pandera schema, and the rejects of those that do not."""
    if not rows:
        return [], []  # nothing changed: an empty frame has no dtypes to check
    frame, rejects = gate(
        to_frame(rows, schema), schema, entity=decoded.entity, id_column="halo_id"
    )
    return records(frame), rejects


def read_metadata(
    calls: dict[str, float], started: float, rejected: int, data_as_of: datetime
) -> dict[str, Any]:
    """What every HaloPSA ingest asset reports about its reading: calls, pages, 429s."""
    return {
        "rejects": dg.MetadataValue.int(rejected),
        "pages": dg.MetadataValue.int(int(calls["pages"])),
        "api_calls": dg.MetadataValue.int(int(calls["calls"])),
        "rate_limited_429s": dg.MetadataValue.int(int(calls["rate_limited"])),
        "retries": dg.MetadataValue.int(int(calls["retries"])),
        "duration_seconds": dg.MetadataValue.float(round(time.monotonic() - started, 3)),
        "data_as_of": dg.MetadataValue.timestamp(data_as_of),
    }
