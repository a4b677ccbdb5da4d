"""The loader reads the ledger as runs of months, aggregated by the database: consecutive
months become one row, a product with gaps one row per month, and the billed period's own
pairs count only on final invoices (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import insert

from datagate_pipelines.invoicing.inputs import load_billing_inputs
from datagate_pipelines.warehouse.models import billing_ledger, invoices, portals, products

T = datetime(2026, 7, 1, tzinfo=UTC)
JULY = date(2026, 7, 1)


def _invoice(id_: int, period: date, status: str) -> dict:
    return {
        "id": id_,
        "portal_id": "acme",
        "period": period,
        "invoice_key": f"k{id_}",
        "customer_id": 1,
        "customer_name": "C",
        "agreement_key": "1:default",
        "status": status,
        "hold_reasons": [],
        "number": id_ if status == "final" else None,
        "doc_number": str(id_) if status == "final" else None,
        "invoice_date": period,
        "due_date": period,
        "subtotal": 0,
        "tax": 0,
        "total": 0,
        "computed_at": T,
    }


def _product(line: int) -> dict:
    return {
        "portal_id": "acme",
        "product_id": f"line:{line}",
        "source_line_id": line,
        "customer_id": 1,
        "description": "seat",
        "qty": 1,
        "unit_price": 1,
        "start_date": date(2026, 1, 1),
        "billing_cycle": "monthly",
        "created_at": T,
        "updated_at": T,
    }


def test_the_ledger_is_read_as_runs(engine):
    months = [date(2026, m, 1) for m in range(1, 8)]
    with engine.begin() as c:
        c.execute(
            insert(portals).values(
                id="acme", name="Acme", currency="USD", registered_at=T, next_invoice_number=10
            )
        )
        c.execute(insert(products), [_product(7), _product(8), _product(9)])
        c.execute(
            insert(invoices),
            [
                _invoice(1, date(2026, 6, 1), "final"),
                _invoice(2, JULY, "draft"),
                _invoice(3, JULY, "final"),
            ],
        )

        def row(line: int, month: int, invoice: int) -> dict:
            period = JULY if invoice > 1 else date(2026, 6, 1)
            return {
                "portal_id": "acme",
                "product_id": f"line:{line}",
                "service_month": months[month - 1],
                "period": period,
                "invoice_id": invoice,
            }

        c.execute(
            insert(billing_ledger),
            [
                # line:7: January–March, then April on a draft of July (recomputed: not counted)
                *(row(7, m, 1) for m in (1, 2, 3)),
                row(7, 4, 2),
                # line:8: January and March (a gap), May on a final invoice of July (counted)
                row(8, 1, 1),
                row(8, 3, 1),
                row(8, 5, 3),
                # line:9: nothing billed yet
            ],
        )
    with engine.connect() as c:
        ledger = load_billing_inputs(c, "acme", JULY, repairs=False)["ledger"]
    assert list(ledger.columns) == ["product_id", "product_key", "service_month", "through_month"]
    assert [tuple(r)[1:] for r in ledger.itertuples(index=False)] == [
        (7, months[0], months[2]),
        (8, months[0], months[0]),
        (8, months[2], months[2]),
        (8, months[4], months[4]),
    ]
