"""the ledger's rows name their invoice with one foreign key: (portal_id, invoice_id)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 05:15:00.000000

A ledger row referred to its portal and to its invoice with a foreign key each. PostgreSQL
checks every key of every inserted row with a query of its own, after the row, so a night's
million draft ledger rows cost two million such checks; measured on PostgreSQL 15, each key
costs more than inserting the row itself. One key on (portal_id, invoice_id), referring to
a unique index on the invoices' (portal_id, id), halves that and says more: the invoice is
of the row's own portal (whose existence the invoice's own key vouches for).

On SQLite the ledger is rebuilt to change its keys (nothing refers to it); its two partial
indexes are dropped before and made again after, with the predicates of their revisions.
"""

from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

INVOICES_KEY = "ix_invoices_portal_id_id"
ONE_KEY = "fk_billing_ledger_portal_id_invoices"
# The partial indexes as of 0014 (the rebuild on SQLite must not lose their predicates).
BILLED_PAIR = "uq_billing_ledger_billed_pair"
BILLS = "kind = 'bill' AND released_at IS NULL"
IRREGULAR_INDEX = "ix_billing_ledger_irregular"
IRREGULAR = (
    "kind <> 'bill' OR qty IS NULL OR unit_price IS NULL OR amount IS NULL OR tax IS NULL"
    " OR CASE WHEN abs(qty) < 3000000000 AND abs(unit_price) < 3000000000 THEN CASE WHEN "
    "qty * unit_price >= 0 THEN (qty * unit_price + 500000) / 1000000 ELSE -((-(qty * "
    "unit_price) + 500000) / 1000000) END <> amount ELSE 1 = 1 END"
)
PAIR = ["portal_id", "product_id", "service_month"]


def upgrade() -> None:
    op.create_index(INVOICES_KEY, "invoices", ["portal_id", "id"], unique=True)
    with _ledger_rebuilt() as batch_op:
        batch_op.drop_constraint("fk_billing_ledger_invoice_id_invoices", type_="foreignkey")
        batch_op.drop_constraint("fk_billing_ledger_portal_id_portals", type_="foreignkey")
        batch_op.create_foreign_key(
            ONE_KEY,
            "invoices",
            ["portal_id", "invoice_id"],
            ["portal_id", "id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with _ledger_rebuilt() as batch_op:
        batch_op.drop_constraint(ONE_KEY, type_="foreignkey")
        batch_op.create_foreign_key(
            "fk_billing_ledger_invoice_id_invoices",
            "invoices",
            ["invoice_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_foreign_key(
            "fk_billing_ledger_portal_id_portals", "portals", ["portal_id"], ["id"]
        )
    op.drop_index(INVOICES_KEY, table_name="invoices")


@contextmanager
def _ledger_rebuilt():
    """`batch_alter_table` on the ledger; on SQLite (where it copies the table) with its
    partial indexes dropped before and made again after."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.drop_index(BILLED_PAIR, table_name="billing_ledger")
        op.drop_index(IRREGULAR_INDEX, table_name="billing_ledger")
    with op.batch_alter_table("billing_ledger", schema=None) as batch_op:
        yield batch_op
    if sqlite:
        op.create_index(
            BILLED_PAIR, "billing_ledger", PAIR, unique=True, sqlite_where=sa.text(BILLS)
        )
        op.create_index(IRREGULAR_INDEX, "billing_ledger", PAIR, sqlite_where=sa.text(IRREGULAR))
