"""qbo token rotation: the previous refresh token, its replacement time, expiry, source

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 01:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("qbo_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_refresh_token", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("previous_replaced_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("refresh_token_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("source", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("qbo_tokens", schema=None) as batch_op:
        batch_op.drop_column("source")
        batch_op.drop_column("refresh_token_expires_at")
        batch_op.drop_column("previous_replaced_at")
        batch_op.drop_column("previous_refresh_token")
