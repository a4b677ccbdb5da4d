"""How a line is priced on the way out, and how an invoice's lines group by site."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from datagate_pipelines.exporting.documents import (
    DocumentLine,
    InvoiceDocument,
    number_text,
    priced,
)
from datagate_pipelines.exporting.qbo import document_payload


def line(qty, price, amount, *, site=None, site_name=None, month=date(2026, 8, 1), tax="0.00"):
    return DocumentLine(
        line_no=1,
        kind="recurring" if qty is not None else "usage",
        description="Managed router",
        service_month=month if qty is not None else None,
        service_date=month,
        site_id=site,
        site_name=site_name,
        item_id=52 if qty is not None else None,
        qty=None if qty is None else D(qty),
        unit_price=None if price is None else D(price),
        amount=D(amount),
        tax_code="TEL",
        tax=D(tax),
    )


@pytest.mark.parametrize(
    ("qty", "price", "amount", "sent", "description"),
    [
        ("10", "24.95", "249.50", ("10", "24.95"), "Managed router"),
        ("0", "24.95", "0.00", ("0", "24.95"), "Managed router"),
        ("2", "-5.00", "-10.00", ("2", "-5.00"), "Managed router"),
        # docs/billing.md's router, 12 of 31 August days: qty 1 at the amount, the truth in words.
        (
            "1",
            "15.00",
            "5.81",
            ("1", "5.81"),
            "Managed router (1 × 15, service month 2026-08, pro rata)",
        ),
        # 4-decimal prices whose product is not whole cents.
        (
            "3",
            "1.3333",
            "4.00",
            ("1", "4.00"),
            "Managed router (3 × 1.3333, service month 2026-08, pro rata)",
        ),
        (None, None, "12.34", ("1", "12.34"), "Managed router"),  # usage: an amount as given
    ],
)
def test_qty_times_unit_price_is_the_amount_exactly(qty, price, amount, sent, description):
    how = priced(line(qty, price, amount))
    assert (how.qty, how.unit_price) == (D(sent[0]), D(sent[1]))
    assert how.qty * how.unit_price == D(amount)
    assert how.description == description


def test_number_text_never_uses_exponents():
    assert [number_text(D(v)) for v in ("10.0000", "24.9500", "0.0000", "100")] == [
        "10",
        "24.95",
        "0",
        "100",
    ]


def document(lines):
    return InvoiceDocument(
        id=7,
        portal_id="acme",
        period=date(2026, 7, 1),
        invoice_key="2026-07:customer:1",
        customer_id=1,
        customer_name="Bayside Dental",
        customer_site_id=10,
        agreement_key="customer:1",
        halo_contract_id=100,
        contract_site_id=None,
        doc_number="INV-1001",
        invoice_date=date(2026, 8, 1),
        due_date=date(2026, 8, 31),
        subtotal=sum((x.amount for x in lines), D("0.00")),
        tax=sum((x.tax for x in lines), D("0.00")),
        total=sum((x.amount + x.tax for x in lines), D("0.00")),
        lines=tuple(lines),
    )


def test_qbo_lines_show_a_subtotal_per_site_in_description_lines():
    doc = document(
        [
            line("10", "24.95", "249.50", site=10, site_name="Main", tax="18.09"),
            line("1", "15.00", "5.81", site=11, site_name="Annex"),
            line("1", "9.99", "3.22", site=10, site_name="Main", tax="0.23"),
        ]
    )
    body = document_payload(doc, customer_id="5", item_ids={"item:52": "9"}, term_id="3")
    kinds = [(x["DetailType"], x.get("Description"), x.get("Amount")) for x in body["Line"]]
    assert kinds == [
        ("DescriptionOnly", "Main:", None),
        ("SalesItemLineDetail", "Managed router", D("249.50")),
        ("SalesItemLineDetail", "Managed router (1 × 9.99, service month 2026-08, pro rata)", D("3.22")),
        ("DescriptionOnly", "Subtotal Main: 252.72", None),
        ("DescriptionOnly", "Annex:", None),
        ("SalesItemLineDetail", "Managed router (1 × 15, service month 2026-08, pro rata)", D("5.81")),
        ("DescriptionOnly", "Subtotal Annex: 5.81", None),
    ]  # fmt: skip
    taxes = [x["SalesItemLineDetail"]["TaxCodeRef"]["value"] for x in body["Line"] if x["DetailType"] == "SalesItemLineDetail"]  # fmt: skip
    assert taxes == ["TAX", "TAX", "NON"]
    assert body["TxnTaxDetail"] == {"TotalTax": D("18.32")}
    assert body["PrivateNote"].endswith("[datagate acme:2026-07:customer:1]")
    assert (body["TxnDate"], body["DueDate"], body["SalesTermRef"]) == (
        "2026-08-01",
        "2026-08-31",
        {"value": "3"},
    )


def test_an_invoice_without_sites_has_no_subtotal_lines():
    body = document_payload(
        document([line("10", "24.95", "249.50")]),
        customer_id="5",
        item_ids={"item:52": "9"},
        term_id="3",
    )
    assert [x["DetailType"] for x in body["Line"]] == ["SalesItemLineDetail"]
