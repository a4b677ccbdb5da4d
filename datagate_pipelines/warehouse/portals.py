"""The portal registry in the warehouse, kept in step with portals.yaml."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, select, update

from datagate_pipelines.config import Portal
from datagate_pipelines.warehouse.bulk import upsert
from datagate_pipelines.warehouse.models import portals


def register_portal(connection: Connection, portal: Portal) -> None:
    """Insert the portal, or refresh its name; the invoice sequence is never moved back."""
    settings = portal.settings
    now = datetime.now(UTC)
    upsert(
        connection,
        portals,
        [
            {
                "id": settings.id,
                "name": settings.name,
                "currency": settings.currency,
                "registered_at": now,
                "removed_at": None,
                "next_invoice_number": settings.invoicing.next_number,
            }
        ],
        key=("id",),
        update_columns=("name", "currency", "removed_at"),
    )
    # portals.yaml may move the sequence forward (e.g. to clear numbers used elsewhere).
    connection.execute(
        update(portals)
        .where(
            portals.c.id == settings.id,
            portals.c.next_invoice_number < settings.invoicing.next_number,
        )
        .values(next_invoice_number=settings.invoicing.next_number)
    )


def mark_removed(connection: Connection, portal_id: str) -> None:
    """A portal gone from portals.yaml keeps its data; it is only marked removed."""
    connection.execute(
        update(portals)
        .where(portals.c.id == portal_id, portals.c.removed_at.is_(None))
        .values(removed_at=datetime.now(UTC))
    )


def registered_portal_ids(connection: Connection) -> list[str]:
    return list(
        connection.execute(select(portals.c.id).where(portals.c.removed_at.is_(None))).scalars()
    )
