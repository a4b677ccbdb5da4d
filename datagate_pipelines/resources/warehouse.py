"""The warehouse as a Dagster resource."""

from __future__ import annotations

import dagster as dg
from pydantic import Field
from sqlalchemy import Engine

from datagate_pipelines.warehouse.db import redacted, warehouse_engine


class WarehouseResource(dg.ConfigurableResource):
    """The SQL warehouse (SQLite or PostgreSQL), migrated to the newest schema on first use."""

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default DATAGATE_DATABASE_URL, else ./.datagate/warehouse.db",
    )

    def engine(self) -> Engine:
        return warehouse_engine(self.database_url)

    def describe(self) -> str:
        return redacted(str(self.engine().url))
