"""the ledger's irregular rows indexed: repairs find them without reading the history

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 02:00:00.000000

A partial index on `billing_ledger` holding only the rows a run of months cannot stand for
(credits, re-bills, missing terms, amounts that are not a full month:
`models.irregular_row_where`). The billing loader looks repairs' candidates up through it
instead of scanning every ledger row of the portal; regular rows (nearly all) cost it
nothing when written.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

INDEX = "ix_billing_ledger_irregular"
# The predicate as of this revision (models.irregular_row_where gives today's).
IRREGULAR = (
    "kind <> 'bill' OR qty IS NULL OR unit_price IS NULL OR amount IS NULL OR tax IS NULL"
    " OR CASE WHEN abs(qty) < 3000000000 AND abs(unit_price) < 3000000000 THEN CASE WHEN "
    "qty * unit_price >= 0 THEN (qty * unit_price + 500000) / 1000000 ELSE -((-(qty * "
    "unit_price) + 500000) / 1000000) END <> amount ELSE 1 = 1 END"
)


def upgrade() -> None:
    op.create_index(
        INDEX,
        "billing_ledger",
        ["portal_id", "product_id", "service_month"],
        sqlite_where=sa.text(IRREGULAR),
        postgresql_where=sa.text(IRREGULAR),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="billing_ledger")
