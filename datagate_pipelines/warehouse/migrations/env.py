"""Alembic environment: runs against the engine handed over by warehouse.db.migrate()."""

from alembic import context

from datagate_pipelines.warehouse.models import metadata
from datagate_pipelines.warehouse.types import ScaledDecimal, UTCDateTime

engine = context.config.attributes["engine"]


def render_item(kind, obj, autogen_context):  # type: ignore[no-untyped-def]
    # Migrations spell out the storage type so they never depend on application code.
    if kind == "type" and isinstance(obj, ScaledDecimal):
        return "sa.BigInteger()"
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
        compare_type=True,
    )
    context.run_migrations()
