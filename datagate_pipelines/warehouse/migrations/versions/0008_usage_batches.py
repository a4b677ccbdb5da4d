"""usage batches; products read their tax code from the product templates

Every usage charge belongs to an import batch (who, when, which file, a fingerprint of its
content), so the same charges are never imported twice and a batch can be taken back.
Charges imported before batches existed get one batch per (portal, period, file name).

`products.tax_code` is dropped: billing joins the item's product template instead, so a
template import takes effect on the next billing run without a sync.

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-06 16:30:00.000000
"""

import hashlib
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0004"
branch_labels = None
depends_on = None

LIVE = sa.text("removed_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "usage_batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("imported_by", sa.String(length=200), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_by", sa.String(length=200), nullable=True),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_usage_batches_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_batches")),
    )
    op.create_index(
        op.f("ix_usage_batches_portal_id_period_fingerprint"),
        "usage_batches",
        ["portal_id", "period", "fingerprint"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    with op.batch_alter_table("usage_charges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("source_line", sa.Integer(), nullable=True))
    _batch_earlier_charges()
    with op.batch_alter_table("usage_charges", schema=None) as batch_op:
        batch_op.alter_column("batch_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_usage_charges_batch_id_usage_batches"),
            "usage_batches",
            ["batch_id"],
            ["id"],
        )
        batch_op.create_index(batch_op.f("ix_usage_charges_batch_id"), ["batch_id"], unique=False)
        batch_op.drop_column("source")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("tax_code")


def _batch_earlier_charges() -> None:
    """One batch per (portal, period, file name) of the charges imported so far. Their
    fingerprint only has to be unique: a later import of the same content is still caught,
    row by row, as identical to charges already imported."""
    connection = op.get_bind()
    charges = sa.table(
        "usage_charges",
        sa.column("portal_id"),
        sa.column("period"),
        sa.column("source"),
        sa.column("amount"),
        sa.column("imported_at"),
        sa.column("batch_id"),
    )
    batches = sa.table(
        "usage_batches",
        *(
            sa.column(name)
            for name in (
                "id",
                "portal_id",
                "period",
                "fingerprint",
                "source",
                "row_count",
                "total",
                "imported_by",
                "imported_at",
            )
        ),
    )
    groups = connection.execute(
        sa.select(
            charges.c.portal_id,
            charges.c.period,
            charges.c.source,
            sa.func.count(),
            sa.func.sum(charges.c.amount),  # stored in cents
            sa.func.max(charges.c.imported_at),
        ).group_by(charges.c.portal_id, charges.c.period, charges.c.source)
    ).all()
    for portal_id, period, source, rows, cents, imported_at in groups:
        key = f"{portal_id}\x1f{period}\x1f{source}"
        fingerprint = "legacy:" + hashlib.sha256(key.encode()).hexdigest()[:57]
        connection.execute(
            sa.insert(batches).values(
                portal_id=portal_id,
                period=period,
                fingerprint=fingerprint,
                source=source or "(unknown file)",
                row_count=rows,
                total=int(cents or 0),
                imported_by="(before import batches)",
                imported_at=imported_at or datetime.now(UTC),
            )
        )
        batch_id = connection.execute(
            sa.select(batches.c.id).where(batches.c.fingerprint == fingerprint)
        ).scalar_one()
        same_source = charges.c.source.is_(None) if source is None else charges.c.source == source
        connection.execute(
            sa.update(charges)
            .where(charges.c.portal_id == portal_id, charges.c.period == period, same_source)
            .values(batch_id=batch_id)
        )


def downgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tax_code", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE products SET tax_code = (SELECT t.tax_code FROM product_templates AS t "
        "WHERE t.portal_id = products.portal_id AND t.item_id = products.item_id)"
    )
    with op.batch_alter_table("usage_charges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=500), nullable=True))
    op.execute(
        "UPDATE usage_charges SET source = (SELECT b.source FROM usage_batches AS b "
        "WHERE b.id = usage_charges.batch_id)"
    )
    with op.batch_alter_table("usage_charges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_charges_batch_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_usage_charges_batch_id_usage_batches"), type_="foreignkey"
        )
        batch_op.drop_column("source_line")
        batch_op.drop_column("batch_id")
    op.drop_index(op.f("ix_usage_batches_portal_id_period_fingerprint"), table_name="usage_batches")
    op.drop_table("usage_batches")
