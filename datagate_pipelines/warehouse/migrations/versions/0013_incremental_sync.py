"""incremental sync: content hashes on the mirror, per-entity read state, full syncs

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 19:30:00.000000

Every HaloPSA mirror table gets `content_hash` (a listing writes only records whose hash
changed; existing rows have none, so the first sync after the upgrade writes them once).
`sync_entities` keeps, per portal and entity, the data time of the last read and whether
HaloPSA's change filter was found ignored. `sync_runs` and `force_sync_requests` learn full
syncs.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

MIRROR_TABLES = (
    "halo_clients",
    "halo_sites",
    "contracts",
    "item_groups",
    "items",
    "halo_taxes",
    "recurring_invoices",
    "recurring_invoice_lines",
    "halo_suppliers",
    "halo_purchase_orders",
    "halo_purchase_order_lines",
)


def upgrade() -> None:
    for table in MIRROR_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(
            sa.Column("full", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
        batch.add_column(sa.Column("full_reason", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("reads", sa.JSON(), nullable=True))
    with op.batch_alter_table("force_sync_requests") as batch:
        batch.add_column(
            sa.Column("full", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
    op.create_table(
        "sync_entities",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("read_as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_kind", sa.String(length=16), nullable=False),
        sa.Column("incremental_off_reason", sa.Text(), nullable=True),
        sa.Column("incremental_off_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_sync_entities_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "entity", name=op.f("pk_sync_entities")),
    )


def downgrade() -> None:
    op.drop_table("sync_entities")
    with op.batch_alter_table("force_sync_requests") as batch:
        batch.drop_column("full")
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("reads")
        batch.drop_column("full_reason")
        batch.drop_column("full")
    for table in MIRROR_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("content_hash")
