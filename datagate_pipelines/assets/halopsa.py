"""HaloPSA ingest: each portal's HaloPSA records mirrored into the warehouse.

One multi-asset, so a sync fetches one token and pages each entity once; any subset can
still be materialized on its own from the UI.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pandera.pandas as pa
from sqlalchemy import Engine, Table

from datagate_pipelines.assets.failures import api_retry_policy, fail_fast_unless_transient
from datagate_pipelines.halopsa.client import HaloPSAClient
from datagate_pipelines.orchestration.partitions import portal_partitions
from datagate_pipelines.resources.halopsa import HaloPSAResource
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.schemas import halopsa as schemas
from datagate_pipelines.schemas.checks import gate, records, to_frame
from datagate_pipelines.sync import halopsa_rows as decode
from datagate_pipelines.warehouse import models
from datagate_pipelines.warehouse.portals import register_portal
from datagate_pipelines.warehouse.rejects import log_rejects, record_rejects
from datagate_pipelines.warehouse.request_log import recording
from datagate_pipelines.warehouse.sync_runs import start_sync
from datagate_pipelines.warehouse.upsert import mirror_snapshot

API_RETRY_POLICY = api_retry_policy()


@dataclass(frozen=True)
class Mirrored:
    """Decoded records bound for one mirror table, with the schema that guards it."""

    table: Table
    schema: pa.DataFrameSchema
    decoded: decode.Decoded


Decode = Callable[[list[dict[str, Any]], str], list[Mirrored]]


@dataclass(frozen=True)
class Entity:
    asset: str
    description: str
    fetch: Callable[[HaloPSAClient, str], list[dict[str, Any]]]
    decode: Decode


def _into(
    table: Table, schema: pa.DataFrameSchema, decoder: Callable[..., decode.Decoded]
) -> Decode:
    return lambda raw, _field: [Mirrored(table, schema, decoder(raw))]


def _fetch_clients(client: HaloPSAClient, datagate_field: str) -> list[dict[str, Any]]:
    """All clients, with the Datagate checkbox's value (list rows carry only the custom
    fields asked for by id, so the field's id is looked up first)."""
    wanted = {datagate_field.casefold(), f"cf{datagate_field.casefold()}"}
    field_ids = [
        f["id"] for f in client.field_infos() if str(f.get("name", "")).casefold() in wanted
    ]
    return client.clients(include_inactive=True, custom_field_ids=field_ids)


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
        lambda c, _f: c.asset_groups(),
        _into(models.item_groups, schemas.item_groups, decode.decode_item_groups),
    ),
    Entity(
        "halo_items",
        "HaloPSA items, with their asset group and sales tax id.",
        lambda c, _f: c.items(include_inactive=True),
        _into(models.items, schemas.items, decode.decode_items),
    ),
    Entity(
        "halo_taxes",
        "HaloPSA tax rates (ids referenced by items and invoice lines).",
        lambda c, _f: c.taxes(),
        _into(models.halo_taxes, schemas.taxes, decode.decode_taxes),
    ),
    Entity(
        "halo_clients",
        "HaloPSA clients (active and inactive), flagged when ticked with the Datagate field.",
        _fetch_clients,
        _clients,
    ),
    Entity(
        "halo_sites",
        "HaloPSA sites with their postcode (the zip used for tax).",
        lambda c, _f: c.sites(include_inactive=True, params={"includeaddress": True}),
        _into(models.halo_sites, schemas.sites, decode.decode_sites),
    ),
    Entity(
        "halo_contracts",
        "HaloPSA client contracts with their contract type.",
        lambda c, _f: c.contracts(include_inactive=True),
        _into(models.contracts, schemas.contracts, decode.decode_contracts),
    ),
    Entity(
        "halo_recurring_invoices",
        "HaloPSA recurring invoices (negative ids) and their lines: the source of products.",
        lambda c, _f: c.recurring_invoices(include_lines=True, params={"includeinactive": True}),
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
    portals: PortalsResource,
    warehouse: WarehouseResource,
    halopsa: HaloPSAResource,
) -> Iterator[dg.MaterializeResult]:
    """Page through every HaloPSA entity of the portal and mirror it into the warehouse.

    A record missing from a complete listing is marked deleted, never removed; a record
    that fails decoding or its pandera schema goes to `rejects` with the field and reason.
    """
    with fail_fast_unless_transient():
        yield from _snapshot(context, portals, warehouse, halopsa)


def _snapshot(
    context: dg.AssetExecutionContext,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    halopsa: HaloPSAResource,
) -> Iterator[dg.MaterializeResult]:
    portal = portals.portal(context.partition_key)
    engine = warehouse.engine()
    data_as_of = datetime.now(UTC)
    with engine.begin() as connection:
        register_portal(connection, portal)
        start_sync(connection, portal.id, context.run_id, data_as_of)
    field_name = portal.settings.halopsa.datagate_field_name
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
            raw = list(entity.fetch(client, field_name))
            metadata, rejected = mirror_entity(
                context, engine, portal.id, entity.asset, entity.decode(raw, field_name), data_as_of
            )
            calls = stats_delta(before, client.stats.as_dict())
            metadata.update(read_metadata(calls, started, rejected, data_as_of))
            context.log.info(
                f"portal {portal.id}: {entity.asset}: {len(raw)} record(s) in {int(calls['pages'])} page(s), "
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
) -> tuple[dict[str, Any], int]:
    """Gate decoded records through their schemas and mirror them, each table in its own
    transaction with its rejects; the counts as metadata, and how many were rejected."""
    metadata: dict[str, Any] = {}
    rejected = 0
    for index, mirrored in enumerate(mirrored_tables):
        decoded = mirrored.decoded
        frame, schema_rejects = gate(
            to_frame(decoded.rows, mirrored.schema),
            mirrored.schema,
            entity=decoded.entity,
            id_column="halo_id",
        )
        rejects = [*decoded.rejects, *schema_rejects]
        with engine.begin() as connection:
            counts = mirror_snapshot(
                connection,
                mirrored.table,
                portal_id,
                records(frame),
                seen_ids=decoded.seen_ids,
                seen_at=seen_at,
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
