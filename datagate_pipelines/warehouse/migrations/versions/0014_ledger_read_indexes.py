"""the ledger read from its indexes: repairs' candidates and the runs of billed months

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 02:00:00.000000

A partial index on `billing_ledger` holding only the rows a run of months cannot stand for
(credits, re-bills, missing terms, amounts that are not a full month:
`models.irregular_row_where`). The billing loader looks repairs' candidates up through it
instead of scanning every ledger row of the portal; regular rows (nearly all) cost it
nothing when written.

PostgreSQL only: the index of billed pairs also carries each row's `period` and
`invoice_id`, so the loader's runs of billed months (`GROUP BY` product) are read from the
index alone, and the ledger is vacuumed once 2% of its rows are new or dead (an index-only
read skips only the pages vacuum has marked all-visible).
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

INDEX = "ix_billing_ledger_irregular"
BILLED_PAIR = "uq_billing_ledger_billed_pair"
BILLS = sa.text("kind = 'bill' AND released_at IS NULL")
AUTOVACUUM = ("autovacuum_vacuum_insert_scale_factor", "autovacuum_vacuum_scale_factor")
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
    if op.get_bind().dialect.name == "postgresql":
        _billed_pairs(include=["period", "invoice_id"])
        settings = ", ".join(f"{name} = 0.02" for name in AUTOVACUUM)
        op.execute(f"ALTER TABLE billing_ledger SET ({settings})")


def downgrade() -> None:
    op.drop_index(INDEX, table_name="billing_ledger")
    if op.get_bind().dialect.name == "postgresql":
        _billed_pairs(include=[])
        op.execute(f"ALTER TABLE billing_ledger RESET ({', '.join(AUTOVACUUM)})")


def _billed_pairs(include: list[str]) -> None:
    op.drop_index(BILLED_PAIR, table_name="billing_ledger", postgresql_where=BILLS)
    op.create_index(
        BILLED_PAIR,
        "billing_ledger",
        ["portal_id", "product_id", "service_month"],
        unique=True,
        postgresql_where=BILLS,
        postgresql_include=include,
    )
