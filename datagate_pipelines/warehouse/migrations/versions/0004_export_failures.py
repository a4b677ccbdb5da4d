"""export failures: the target's code, since when it fails, and what kind of record it is

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 16:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_code", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("failed_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("external_type", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("exports", schema=None) as batch_op:
        batch_op.drop_column("external_type")
        batch_op.drop_column("failed_since")
        batch_op.drop_column("error_code")
