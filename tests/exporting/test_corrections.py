"""Credit notes and voids against exported invoices (docs/billing.md rule 7), through the
HaloPSA and QBO simulators in-process, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from datagate_pipelines.exporting.corrections import issue_credit, void_invoice
from datagate_pipelines.exporting.credit_notes import CorrectionError
from datagate_pipelines.exporting.halopsa import export_to_halopsa
from datagate_pipelines.exporting.qbo import export_to_qbo
from datagate_pipelines.exporting.qbo_references import link_period_references
from datagate_pipelines.exporting.status import open_exports
from datagate_pipelines.invoicing.drafts import compute_drafts
from datagate_pipelines.invoicing.inputs import load_billing_inputs
from datagate_pipelines.warehouse import models as m
from datagate_pipelines.warehouse.audit import read_events
from datagate_simulators.halopsa.backend.invoices import CREDIT_NOTE_INVOICE_TYPE
from tests.exporting.stack import JULY, REALM, halo_client, qbo_client


def export_all(engine, halo, qbo, portal):
    with halo_client(halo) as client:
        export_to_halopsa(engine, client, portal.settings, JULY)
    with qbo_client(qbo) as client:
        link_period_references(engine, client, portal.settings, JULY)
        outcome = export_to_qbo(engine, client, portal.settings, JULY)
    assert not outcome.failed, outcome.failed


def credit(engine, halo, qbo, portal, number, **options):
    with halo_client(halo) as h, qbo_client(qbo) as q:
        return issue_credit(
            engine, portal.settings, number, halo=h, qbo=q, reason="goodwill", **options
        )


def void(engine, halo, qbo, portal, number):
    with halo_client(halo) as h, qbo_client(qbo) as q:
        return void_invoice(engine, portal.settings, number, reason="wrong customer", halo=h, qbo=q)


def qbo_id(engine, invoice_id, target="qbo"):
    with engine.connect() as c:
        return c.execute(
            select(m.exports.c.external_id).where(
                m.exports.c.invoice_id == invoice_id, m.exports.c.target == target
            )
        ).scalar_one()


def rows(engine, table):
    with engine.connect() as c:
        return c.execute(select(table)).all()


def test_a_whole_credit_is_one_credit_memo_applied_to_the_open_invoice(
    engine, halo, qbo, portal, finals
):
    export_all(engine, halo, qbo, portal)
    invoice = finals[0]
    outcome = credit(engine, halo, qbo, portal, invoice.doc_number)
    assert not outcome.failed
    note = outcome.note
    assert note.total == -invoice.total and note.tax == -invoice.tax
    # Numbered from the portal's sequence, after the period's invoices.
    with engine.connect() as c:
        number = c.execute(select(m.invoices.c.number).where(m.invoices.c.id == note.id)).scalar()
    assert number == max(f.number for f in finals) + 1
    memos = [r for r in qbo.company.records("CreditMemo") if r["DocNumber"] == note.doc_number]
    assert len(memos) == 1 and memos[0]["TotalAmt"] == invoice.total
    # Applied: a 0.00 payment links both, the invoice is settled, the credit used.
    qbo_invoice = qbo.company.live("Invoice", qbo_id(engine, invoice.id))
    assert qbo_invoice["Balance"] == 0
    assert qbo.company.live("CreditMemo", memos[0]["Id"])["RemainingCredit"] == 0
    payments = qbo.company.records("Payment")
    assert len(payments) == 1 and payments[0]["TotalAmt"] == 0
    # HaloPSA: a credit note linked to the invoice.
    halo_note = halo.backend.get("Invoice", int(qbo_id(engine, note.id, "halopsa")))
    assert halo_note["invoicetype"] == CREDIT_NOTE_INVOICE_TYPE
    assert halo_note["creditlinkedtoinvoiceid"] == int(qbo_id(engine, invoice.id, "halopsa"))
    # Exported once: running the period's export again creates nothing more.
    export_all(engine, halo, qbo, portal)
    assert len(qbo.company.records("Payment")) == 1
    assert len(qbo.company.records("CreditMemo")) == 1
    # Nothing remains: a second whole credit is refused, writing nothing.
    count = len(rows(engine, m.invoices))
    with pytest.raises(CorrectionError, match="nothing remains uncredited"):
        credit(engine, halo, qbo, portal, invoice.doc_number)
    assert len(rows(engine, m.invoices)) == count
    (event,) = [e for e in read_events(engine.connect(), "acme") if e.action == "credit"]
    assert event.details["credit_note"] == note.doc_number and event.details["reason"] == "goodwill"


def test_line_and_amount_credits_take_exact_cents(engine, halo, qbo, portal, finals):
    export_all(engine, halo, qbo, portal)
    invoice = next(f for f in finals if f.subtotal > D("20"))
    with engine.connect() as c:
        lines = c.execute(
            select(m.invoice_lines).where(m.invoice_lines.c.invoice_id == invoice.id)
        ).all()
    first = next(line for line in lines if line.amount > 0)  # not a discount line
    by_line = credit(engine, halo, qbo, portal, invoice.doc_number, line_nos=[first.line_no])
    assert by_line.note.subtotal == -first.amount and by_line.note.tax == -first.tax
    by_amount = credit(engine, halo, qbo, portal, invoice.doc_number, amount=D("10.00"))
    assert by_amount.note.subtotal == D("-10.00")
    assert sum(c.amount for c in by_amount.note.lines) == D("10.00")
    assert first.line_no not in {c.line_no for c in by_amount.note.lines}  # nothing left there
    memo = [
        r for r in qbo.company.records("CreditMemo") if r["DocNumber"] == by_amount.note.doc_number
    ]
    assert memo[0]["TotalAmt"] == -by_amount.note.total


def test_void_then_the_next_invoice_bills_the_months_again(engine, halo, qbo, portal, finals):
    export_all(engine, halo, qbo, portal)
    invoice = finals[1]
    with engine.connect() as c:
        before = len(load_billing_inputs(c, "acme", JULY)["ledger"])
        pairs = c.execute(
            select(m.billing_ledger).where(m.billing_ledger.c.invoice_id == invoice.id)
        ).all()
    assert pairs
    outcome = void(engine, halo, qbo, portal, invoice.doc_number)
    assert outcome.recorded
    assert qbo.company.live("Invoice", outcome.qbo_id)["TotalAmt"] == 0
    assert halo.backend.get("Invoice", int(outcome.halo_id))["voided"]
    with engine.connect() as c:
        after = load_billing_inputs(c, "acme", JULY)["ledger"]
        kept = c.execute(select(m.invoices).where(m.invoices.c.id == invoice.id)).one()
    assert len(after) == before - len(pairs)  # released: no longer counted as billed
    assert kept.doc_number == invoice.doc_number and kept.voided_at is not None  # never reused
    # August bills the voided July months again, as catch-up, for that agreement.
    with engine.begin() as c:
        compute_drafts(c, portal.settings, JULY.replace(month=8))
        august = c.execute(
            select(m.invoice_lines.c.product_id, m.invoice_lines.c.service_month)
            .join(m.invoices, m.invoices.c.id == m.invoice_lines.c.invoice_id)
            .where(
                m.invoices.c.agreement_key == invoice.agreement_key,
                m.invoices.c.period == JULY.replace(month=8),
            )
        ).all()
    assert {(p.product_id, p.service_month) for p in pairs} <= set(august)
    # Voiding again is refused, and so is crediting it; the number stays taken.
    with pytest.raises(CorrectionError, match="voided already"):
        void(engine, halo, qbo, portal, invoice.doc_number)
    with pytest.raises(CorrectionError, match="is voided; there is nothing to credit"):
        credit(engine, halo, qbo, portal, invoice.doc_number)
    assert [e.action for e in read_events(engine.connect(), "acme")].count("void") == 1


def test_refusals_write_nothing_anywhere(engine, halo, qbo, portal, finals):
    paid, credited = finals[0], finals[2]
    with pytest.raises(CorrectionError, match="not exported to halopsa, qbo"):
        void(engine, halo, qbo, portal, paid.doc_number)
    export_all(engine, halo, qbo, portal)
    # A payment in QBO: the void is refused with "credit instead".
    with qbo_client(qbo) as client:
        customer = qbo.company.live("Invoice", qbo_id(engine, paid.id))["CustomerRef"]
        client.create(
            "Payment",
            {
                "CustomerRef": customer,
                "TotalAmt": "1.00",
                "Line": [
                    {
                        "Amount": "1.00",
                        "LinkedTxn": [{"TxnId": qbo_id(engine, paid.id), "TxnType": "Invoice"}],
                    }
                ],
            },
            request_id=None,
        )
    note = credit(engine, halo, qbo, portal, credited.doc_number, amount=D("1.00")).note
    state = (len(rows(engine, m.invoices)), len(rows(engine, m.audit_events)))
    qbo_state = len(qbo.company.records("CreditMemo")), len(qbo.company.records("Payment"))
    cases = [
        (lambda: void(engine, halo, qbo, portal, paid.doc_number), "credit instead"),
        (lambda: void(engine, halo, qbo, portal, credited.doc_number), "void the credit note"),
        (lambda: void(engine, halo, qbo, portal, "nope"), "no invoice numbered 'nope'"),
        (
            lambda: credit(engine, halo, qbo, portal, note.doc_number),
            "is a credit note; a credit note is not credited",
        ),
        (lambda: credit(engine, halo, qbo, portal, "nope"), "no invoice numbered"),
        (
            lambda: credit(engine, halo, qbo, portal, paid.doc_number, amount=D("100000")),
            "--amount: 100000 is more than remains",
        ),
        (
            lambda: credit(engine, halo, qbo, portal, paid.doc_number, amount=D("0")),
            "more than 0",
        ),
        (
            lambda: credit(engine, halo, qbo, portal, paid.doc_number, line_nos=[99]),
            "--line: line 99 is not on the invoice",
        ),
    ]
    for attempt, message in cases:
        with pytest.raises(CorrectionError, match=message):
            attempt()
    assert (len(rows(engine, m.invoices)), len(rows(engine, m.audit_events))) == state
    assert (
        len(qbo.company.records("CreditMemo")),
        len(qbo.company.records("Payment")),
    ) == qbo_state


def test_two_whole_credits_at_once_make_one_credit_note(engine, halo, qbo, portal, finals):
    export_all(engine, halo, qbo, portal)
    invoice = finals[0]
    outcomes, errors = [], []

    def attempt():
        try:
            outcomes.append(credit(engine, halo, qbo, portal, invoice.doc_number))
        except CorrectionError as error:
            errors.append(str(error))

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 1 and len(errors) == 1 and "nothing remains" in errors[0]
    with engine.connect() as c:
        notes = c.execute(select(m.invoices).where(m.invoices.c.credit_of == invoice.id)).all()
    assert len(notes) == 1
    assert len(qbo.company.records("CreditMemo")) == 1


def pay_in_full(engine, qbo, invoice):
    qbo_invoice = qbo.company.live("Invoice", qbo_id(engine, invoice.id))
    with qbo_client(qbo) as client:
        client.create(
            "Payment",
            {
                "CustomerRef": qbo_invoice["CustomerRef"],
                "TotalAmt": str(qbo_invoice["TotalAmt"]),
                "Line": [
                    {
                        "Amount": str(qbo_invoice["TotalAmt"]),
                        "LinkedTxn": [{"TxnId": qbo_invoice["Id"], "TxnType": "Invoice"}],
                    }
                ],
            },
            request_id=None,
        )


def test_a_paid_invoices_credit_stays_unapplied_and_can_be_voided(
    engine, halo, qbo, portal, finals
):
    export_all(engine, halo, qbo, portal)
    invoice = finals[0]
    pay_in_full(engine, qbo, invoice)
    note = credit(engine, halo, qbo, portal, invoice.doc_number, amount=D("5.00")).note
    (memo,) = qbo.company.records("CreditMemo")
    assert memo["RemainingCredit"] == memo["TotalAmt"] == -note.total  # the customer's credit
    with engine.connect() as c:
        applied = c.execute(
            select(m.exports.c.status, m.exports.c.external_type).where(
                m.exports.c.invoice_id == note.id, m.exports.c.target == "qbo_apply"
            )
        ).one()
    assert tuple(applied) == ("exported", "unapplied")
    # The credit note is voided (its memo in QBO, its note in HaloPSA): all is uncredited again.
    outcome = void(engine, halo, qbo, portal, note.doc_number)
    assert qbo.company.live("CreditMemo", memo["Id"])["TotalAmt"] == 0
    assert halo.backend.get("Invoice", int(outcome.halo_id))["voided"]
    whole = credit(engine, halo, qbo, portal, invoice.doc_number).note
    assert whole.total == -invoice.total


def test_two_voids_at_once_void_once(engine, halo, qbo, portal, finals):
    export_all(engine, halo, qbo, portal)
    invoice = finals[1]
    outcomes, errors = [], []

    def attempt():
        try:
            outcomes.append(void(engine, halo, qbo, portal, invoice.doc_number))
        except CorrectionError as error:
            errors.append(str(error))

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Both may get through the checks; one records the void, the other finds it recorded
    # (or, started late, is refused as voided already).
    assert len(outcomes) + len(errors) == 2
    assert sum(o.recorded for o in outcomes) == 1
    assert all("voided already" in e for e in errors)
    with engine.connect() as c:
        assert [e.action for e in read_events(c, "acme")].count("void") == 1
    assert qbo.company.live("Invoice", qbo_id(engine, invoice.id))["TotalAmt"] == 0


def test_a_failed_application_is_an_open_export_until_the_next_export_applies_it(
    engine, halo, qbo, portal, finals
):
    export_all(engine, halo, qbo, portal)
    invoice = finals[0]
    # QBO keeps failing the Payment that applies the memo (beyond the client's retries).
    qbo.app.state.fault_plan.fail_next(6, 503, path_prefix=f"/v3/company/{REALM}/payment")
    outcome = credit(engine, halo, qbo, portal, invoice.doc_number)
    assert list(outcome.failed) == ["qbo"] and "applying it in QBO" in outcome.failed["qbo"]
    with engine.connect() as c:
        (still_open,) = open_exports(c, {"acme": ("halopsa", "qbo")})
    assert (still_open.doc_number, still_open.target) == (outcome.note.doc_number, "qbo_apply")
    export_all(engine, halo, qbo, portal)  # the next export of the period applies it
    with engine.connect() as c:
        assert open_exports(c, {"acme": ("halopsa", "qbo")}) == []
    assert qbo.company.live("Invoice", qbo_id(engine, invoice.id))["Balance"] == 0
    assert len(qbo.company.records("Payment")) == 1
