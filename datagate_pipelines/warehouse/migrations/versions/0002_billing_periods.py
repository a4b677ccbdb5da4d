"""billing periods

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 00:50:24.120373
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_periods",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("invoices", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_billing_periods_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "period", name=op.f("pk_billing_periods")),
    )


def downgrade() -> None:
    op.drop_table("billing_periods")
