"""corrections: credit notes against final invoices, voids that release ledger pairs

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 19:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BILLED_PAIR = "uq_billing_ledger_billed_pair"
# 0011's index: bills only. Now bills of invoices that stand.
BILLS_INDEX = "ix_billing_ledger_portal_id_product_id_service_month"
BILLS = sa.text("kind = 'bill'")
BILLS_STANDING = sa.text("kind = 'bill' AND released_at IS NULL")


def upgrade() -> None:
    # Plain ADD COLUMNs: the invoices table is never rebuilt (on SQLite a rebuild would
    # cascade through every table that refers to it).
    op.add_column("invoices", sa.Column("credit_of", sa.Integer(), nullable=True))
    op.add_column("invoices", sa.Column("reason", sa.Text(), nullable=True))
    op.add_column("invoices", sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_invoices_credit_of"), "invoices", ["credit_of"], unique=False)
    # A pair stays billed once among the invoices that stand; a voided invoice's rows are
    # kept (released) and the pair may be billed again.
    with op.batch_alter_table("billing_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("released_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_index(
        BILLS_INDEX, table_name="billing_ledger", sqlite_where=BILLS, postgresql_where=BILLS
    )
    # A credit note's application in QBO is kept like an export (exporting/
    # credit_applications.py). Nothing refers to `exports`: rebuilding it on SQLite is safe.
    with op.batch_alter_table("exports", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_exports_target"), type_="check")
        batch_op.create_check_constraint("target", "target IN ('qbo', 'halopsa', 'qbo_apply')")
    op.create_index(
        BILLED_PAIR,
        "billing_ledger",
        ["portal_id", "product_id", "service_month"],
        unique=True,
        sqlite_where=BILLS_STANDING,
        postgresql_where=BILLS_STANDING,
    )


def downgrade() -> None:
    op.execute("DELETE FROM exports WHERE target = 'qbo_apply'")
    with op.batch_alter_table("exports", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_exports_target"), type_="check")
        batch_op.create_check_constraint("target", "target IN ('qbo', 'halopsa')")
    op.drop_index(BILLED_PAIR, table_name="billing_ledger")
    op.execute("DELETE FROM billing_ledger WHERE released_at IS NOT NULL")
    op.create_index(
        BILLS_INDEX,
        "billing_ledger",
        ["portal_id", "product_id", "service_month"],
        unique=True,
        sqlite_where=BILLS,
        postgresql_where=BILLS,
    )
    with op.batch_alter_table("billing_ledger", schema=None) as batch_op:
        batch_op.drop_column("released_at")
    op.drop_index(op.f("ix_invoices_credit_of"), table_name="invoices")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_column("voided_at")
        batch_op.drop_column("reason")
        batch_op.drop_column("credit_of")
