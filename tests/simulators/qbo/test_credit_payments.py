"""Payments that apply credit memos to invoices (docs/qbo-api.md §B4, §B6), and the CDC
that reports what they change (§6.1, §B7)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from datagate_simulators.qbo import FakeClock, QBOBackend, QBOFault

REALM = "9130350000000000"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def company(clock):
    return QBOBackend(clock=clock).seed_company(
        REALM,
        client_id="app",
        client_secret="secret",
        refresh_token="RT0",
        items=[{"Name": "Managed Services", "UnitPrice": Decimal("100")}],
        customers=[{"DisplayName": "Acme"}, {"DisplayName": "Globex"}],
    )


def sale(amount: str, customer: str = "1") -> dict:
    return {
        "CustomerRef": {"value": customer},
        "Line": [
            {
                "Amount": Decimal(amount),
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
            }
        ],
    }


def apply_credit(company, invoice, memo, amount: str, total: str = "0") -> dict:
    """The $0 payment that applies a credit memo to an invoice (§B4)."""
    return company.create(
        "Payment",
        {
            "CustomerRef": invoice["CustomerRef"],
            "TotalAmt": Decimal(total),
            "Line": [
                {
                    "Amount": Decimal(amount),
                    "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}],
                },
                {
                    "Amount": Decimal(amount),
                    "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}],
                },
            ],
        },
    )


def fault(call, *args) -> QBOFault:
    with pytest.raises(QBOFault) as info:
        call(*args)
    return info.value


def test_a_zero_payment_applies_credit_to_an_invoice(company):
    # §B4: a Payment of TotalAmt 0 linking the Invoice and the CreditMemo.
    invoice = company.create("Invoice", sale("300.00"))
    memo = company.create("CreditMemo", sale("120.00"))
    payment = apply_credit(company, invoice, memo, "120.00")
    assert payment["UnappliedAmt"] == 0
    after = company.read("Invoice", invoice["Id"])
    assert after["Balance"] == Decimal("180.00")
    assert after["LinkedTxn"] == [{"TxnId": payment["Id"], "TxnType": "Payment"}]
    credit = company.read("CreditMemo", memo["Id"])
    assert credit["RemainingCredit"] == credit["Balance"] == 0
    assert credit["SyncToken"] == "1"  # changed, so CDC reports it


def test_credit_rules(company):
    invoice = company.create("Invoice", sale("100.00"))
    memo = company.create("CreditMemo", sale("50.00"))
    other = company.create("CreditMemo", sale("50.00", customer="2"))
    # More credit than the memo has left.
    assert fault(apply_credit, company, invoice, memo, "60.00").code == "6000"
    # More credit than the payment applies to invoices.
    too_much = {
        "CustomerRef": {"value": "1"},
        "TotalAmt": 0,
        "Line": [{"Amount": 10, "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]}],
    }
    assert fault(company.create, "Payment", too_much).code == "6000"
    # Another customer's credit.
    assert fault(apply_credit, company, invoice, other, "10.00").code == "6000"
    # A line takes from credit or pays invoices, not both [I].
    mixed = {
        "CustomerRef": {"value": "1"},
        "TotalAmt": 0,
        "Line": [
            {
                "Amount": 10,
                "LinkedTxn": [
                    {"TxnId": invoice["Id"], "TxnType": "Invoice"},
                    {"TxnId": memo["Id"], "TxnType": "CreditMemo"},
                ],
            }
        ],
    }
    assert fault(company.create, "Payment", mixed).code == "2170"
    # Credit and money together: 30 credit + 70 paid closes the invoice.
    apply_credit(company, invoice, memo, "30.00")
    company.create(
        "Payment",
        {
            "CustomerRef": {"value": "1"},
            "TotalAmt": 70,
            "Line": [{"Amount": 70, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
        },
    )
    assert company.read("Invoice", invoice["Id"])["Balance"] == 0
    assert company.read("CreditMemo", memo["Id"])["RemainingCredit"] == Decimal("20.00")


def test_deleting_the_credit_payment_gives_the_credit_back(company):
    invoice = company.create("Invoice", sale("100.00"))
    memo = company.create("CreditMemo", sale("100.00"))
    payment = apply_credit(company, invoice, memo, "100.00")
    company.delete("Payment", {"Id": payment["Id"], "SyncToken": "0"})
    assert company.read("Invoice", invoice["Id"])["Balance"] == Decimal("100.00")
    assert company.read("CreditMemo", memo["Id"])["RemainingCredit"] == Decimal("100.00")


def test_deleting_an_invoice_gives_the_credit_applied_to_it_back(company):
    # [I]: the $0 payment left with credit and no invoice applies nothing.
    invoice = company.create("Invoice", sale("100.00"))
    memo = company.create("CreditMemo", sale("40.00"))
    payment = apply_credit(company, invoice, memo, "40.00")
    company.delete("Invoice", {"Id": invoice["Id"], "SyncToken": "1"})
    after = company.read("Payment", payment["Id"])
    assert (after["Line"], after["UnappliedAmt"]) == ([], 0)
    assert company.read("CreditMemo", memo["Id"])["RemainingCredit"] == Decimal("40.00")


def test_cdc_reports_credit_memos_and_the_records_a_payment_changed(company, clock):
    # §B7: CreditMemo and Payment are CDC entities; a payment changes its invoice's balance,
    # which bumps the invoice's LastUpdatedTime [I], so CDC reports the invoice too.
    invoice = company.create("Invoice", sale("100.00"))
    memo = company.create("CreditMemo", sale("40.00"))
    since = clock.advance(seconds=10)
    payment = apply_credit(company, invoice, memo, "40.00")
    changes = company.cdc(["Invoice", "Payment", "CreditMemo"], since)
    changed = {
        name: [r["Id"] for r in part[name]]
        for part in changes
        for name in part
        if name[0].isupper()
    }
    assert changed == {
        "Invoice": [invoice["Id"]],
        "Payment": [payment["Id"]],
        "CreditMemo": [memo["Id"]],
    }
