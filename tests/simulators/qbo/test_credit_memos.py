"""CreditMemo in the QBO simulator (docs/qbo-api.md §B4): the lines of an invoice, a
positive total left as the customer's credit, numbered in the same DocNumber space."""

from __future__ import annotations

from decimal import Decimal

import pytest

from datagate_simulators.qbo import FakeClock, QBOBackend, QBOFault

REALM = "9130350000000000"


@pytest.fixture
def company():
    backend = QBOBackend(clock=FakeClock())
    return backend.seed_company(
        REALM,
        client_id="app",
        client_secret="secret",
        refresh_token="RT0",
        items=[{"Name": "Managed Services", "UnitPrice": Decimal("100")}],
        customers=[{"DisplayName": "Acme"}],
    )


def form(amount: str, **overrides):
    body = {
        "CustomerRef": {"value": "1"},
        "Line": [
            {
                "Amount": Decimal(amount),
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "NON"}},
            }
        ],
    }
    body.update(overrides)
    return body


def test_a_credit_memo_is_the_customers_unused_credit(company):
    memo = company.create(
        "CreditMemo",
        form("77.01", DocNumber="1003", TxnTaxDetail={"TotalTax": Decimal("5.66")}),
    )
    assert memo["TotalAmt"] == Decimal("82.67")
    assert memo["RemainingCredit"] == memo["Balance"] == Decimal("82.67")
    assert company.get("Customer", "1")["Balance"] == Decimal("-82.67")
    found = company.query("select * from CreditMemo where DocNumber = '1003'")
    assert [m["Id"] for m in found["CreditMemo"]] == [memo["Id"]]


def test_a_negative_invoice_is_refused_but_a_credit_memo_is_not(company):
    with pytest.raises(QBOFault) as refused:
        company.create("Invoice", form("-10.00", DocNumber="2001"))
    assert refused.value.code == "6000"  # the total is below what was paid: nothing
    assert company.create("CreditMemo", form("10.00", DocNumber="2001"))["TotalAmt"] == 10
    with pytest.raises(QBOFault) as negative:
        company.create("CreditMemo", form("-1.00", DocNumber="2002"))
    assert negative.value.code == "6000"


def test_doc_numbers_collide_across_invoices_and_credit_memos(company):
    invoice = company.create("Invoice", form("10.00", DocNumber="3001"))
    with pytest.raises(QBOFault) as duplicate:
        company.create("CreditMemo", form("10.00", DocNumber="3001"))
    assert duplicate.value.code == "6140"
    assert f"TxnType=Invoice with TxnId={invoice['Id']}" in str(duplicate.value)
    memo = company.create("CreditMemo", form("10.00", DocNumber="3002"))
    with pytest.raises(QBOFault) as other_way:
        company.create("Invoice", form("10.00", DocNumber="3002"))
    assert f"TxnType=CreditMemo with TxnId={memo['Id']}" in str(other_way.value)


def test_a_voided_credit_memo_leaves_no_credit(company):
    memo = company.create("CreditMemo", form("10.00", DocNumber="4001"))
    voided = company.void("CreditMemo", {"Id": memo["Id"], "SyncToken": memo["SyncToken"]})
    assert voided["TotalAmt"] == voided["RemainingCredit"] == 0
    assert company.get("Customer", "1")["Balance"] == 0
