"""ledger: what each (product, service month) was billed at, and its repairs (rule 6)

A ledger row now says what it billed — quantity, unit price, amount, tax, tax code, zip
and rate — and is one of three kinds: the first `bill` of a pair, or a later `credit` or
`rebill` of it on another invoice (docs/billing.md rule 6). A pair is still billed once:
the unique key holds for bills only. Rows written before this revision take their terms
from the invoice line that billed them.

Invoice lines gain the kinds `credit` and `rebill` and the number of the invoice a repair
line corrects.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 19:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BILLS = sa.text("kind = 'bill'")
TERMS = ("qty", "unit_price", "amount", "tax", "tax_code", "tax_zip", "tax_rate")


def upgrade() -> None:
    with op.batch_alter_table("billing_ledger", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=8), nullable=False, server_default="bill")
        )
        for name in ("qty", "unit_price", "amount", "tax", "tax_rate"):
            batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("tax_code", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("tax_zip", sa.String(length=32), nullable=True))
        batch_op.drop_constraint(
            batch_op.f("uq_billing_ledger_portal_id_product_id_service_month"), type_="unique"
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_billing_ledger_invoice_id_product_id_service_month_kind"),
            ["invoice_id", "product_id", "service_month", "kind"],
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_billing_ledger_kind"), "kind IN ('bill', 'credit', 'rebill')"
        )
    op.create_index(
        op.f("ix_billing_ledger_portal_id_product_id_service_month"),
        "billing_ledger",
        ["portal_id", "product_id", "service_month"],
        unique=True,
        sqlite_where=BILLS,
        postgresql_where=BILLS,
    )
    _terms_from_invoice_lines()
    with op.batch_alter_table("invoice_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("corrects_invoice", sa.String(length=21), nullable=True))
        batch_op.drop_constraint(batch_op.f("ck_invoice_lines_kind"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_invoice_lines_kind"),
            "kind IN ('recurring', 'usage', 'credit', 'rebill')",
        )


def _terms_from_invoice_lines() -> None:
    """Each existing ledger row is a bill: its terms are its invoice line's."""
    ledger = sa.table(
        "billing_ledger",
        *(sa.column(name) for name in ("invoice_id", "product_id", "service_month", *TERMS)),
    )
    lines = sa.table(
        "invoice_lines",
        *(
            sa.column(name)
            for name in ("invoice_id", "product_id", "service_month", "kind", *TERMS)
        ),
    )

    def of_line(name: str):
        return (
            sa.select(lines.c[name])
            .where(
                lines.c.invoice_id == ledger.c.invoice_id,
                lines.c.product_id == ledger.c.product_id,
                lines.c.service_month == ledger.c.service_month,
                lines.c.kind == "recurring",
            )
            .scalar_subquery()
        )

    op.get_bind().execute(sa.update(ledger).values({name: of_line(name) for name in TERMS}))


def downgrade() -> None:
    op.execute("DELETE FROM invoice_lines WHERE kind IN ('credit', 'rebill')")
    op.execute("DELETE FROM billing_ledger WHERE kind <> 'bill'")
    with op.batch_alter_table("invoice_lines", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_invoice_lines_kind"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_invoice_lines_kind"), "kind IN ('recurring', 'usage')"
        )
        batch_op.drop_column("corrects_invoice")
    op.drop_index(
        op.f("ix_billing_ledger_portal_id_product_id_service_month"),
        table_name="billing_ledger",
        sqlite_where=BILLS,
        postgresql_where=BILLS,
    )
    with op.batch_alter_table("billing_ledger", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_billing_ledger_kind"), type_="check")
        batch_op.drop_constraint(
            batch_op.f("uq_billing_ledger_invoice_id_product_id_service_month_kind"), type_="unique"
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_billing_ledger_portal_id_product_id_service_month"),
            ["portal_id", "product_id", "service_month"],
        )
        for name in ("tax_zip", "tax_code", "tax_rate", "tax", "amount", "unit_price", "qty"):
            batch_op.drop_column(name)
        batch_op.drop_column("kind")
