"""suppliers and purchase orders, nominal codes, QBO tax differences

Revision ID: 0006
Revises: 0008
Create Date: 2026-12-06 16:15:47.233825
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "halo_purchase_order_lines",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("halo_id", sa.BigInteger(), nullable=False),
        sa.Column("purchase_order_id", sa.BigInteger(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=True),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("qty", sa.BigInteger(), nullable=False),
        sa.Column("unit_cost", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("nominal_code", sa.String(length=100), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["portal_id"],
            ["portals.id"],
            name=op.f("fk_halo_purchase_order_lines_portal_id_portals"),
        ),
        sa.PrimaryKeyConstraint("portal_id", "halo_id", name=op.f("pk_halo_purchase_order_lines")),
    )
    op.create_table(
        "halo_purchase_orders",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("halo_id", sa.BigInteger(), nullable=False),
        sa.Column("po_ref", sa.String(length=100), nullable=True),
        sa.Column("supplier_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("goodsin_status", sa.Integer(), nullable=True),
        sa.Column("order_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("currency_code", sa.Integer(), nullable=True),
        sa.Column("total", sa.BigInteger(), nullable=True),
        sa.Column("supplier_invoice", sa.String(length=100), nullable=True),
        sa.Column("supplier_invoice_date", sa.Date(), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_halo_purchase_orders_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "halo_id", name=op.f("pk_halo_purchase_orders")),
    )
    op.create_table(
        "halo_suppliers",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("halo_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("inactive", sa.Boolean(), nullable=False),
        sa.Column("accounts_id", sa.String(length=100), nullable=True),
        sa.Column("email", sa.String(length=300), nullable=True),
        sa.Column("phone", sa.String(length=100), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("currency_code", sa.Integer(), nullable=True),
        sa.Column("list_hash", sa.String(length=64), nullable=False),
        sa.Column("detail_read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_halo_suppliers_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "halo_id", name=op.f("pk_halo_suppliers")),
    )
    op.create_table(
        "purchasing_exports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("document", sa.String(length=16), nullable=False),
        sa.Column("halo_po_id", sa.BigInteger(), nullable=False),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.Column("external_number", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("failed_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("external_type", sa.String(length=16), nullable=True),
        sa.CheckConstraint(
            "document IN ('purchase_order', 'bill')", name=op.f("ck_purchasing_exports_document")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'exported', 'failed')", name=op.f("ck_purchasing_exports_status")
        ),
        sa.CheckConstraint("target IN ('qbo')", name=op.f("ck_purchasing_exports_target")),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_purchasing_exports_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchasing_exports")),
        sa.UniqueConstraint(
            "portal_id",
            "document",
            "halo_po_id",
            "target",
            name=op.f("uq_purchasing_exports_portal_id_document_halo_po_id_target"),
        ),
    )
    with op.batch_alter_table("exports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_total", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("external_tax", sa.BigInteger(), nullable=True))

    with op.batch_alter_table("item_groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("nominal_code", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("purchase_nominal_code", sa.String(length=100), nullable=True)
        )

    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purchase_nominal_code", sa.String(length=100), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_column("purchase_nominal_code")

    with op.batch_alter_table("item_groups", schema=None) as batch_op:
        batch_op.drop_column("purchase_nominal_code")
        batch_op.drop_column("nominal_code")

    with op.batch_alter_table("exports", schema=None) as batch_op:
        batch_op.drop_column("external_tax")
        batch_op.drop_column("external_total")

    op.drop_table("purchasing_exports")
    op.drop_table("halo_suppliers")
    op.drop_table("halo_purchase_orders")
    op.drop_table("halo_purchase_order_lines")
