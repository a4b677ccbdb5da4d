"""Negative totals are credits, and refusals are recorded exactly (docs/billing.md,
Agreements and invoices; docs/operations.md, Exports).

A final invoice whose total is below zero goes to QBO as a CreditMemo and to HaloPSA as a
standalone credit note, each once; a refusal inside a QBO batch is recorded with QBO's
code and shows in the request log with its bId and DocNumber. Simulators in-process;
SQLite and PostgreSQL.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from datagate_pipelines.exporting.halopsa import export_to_halopsa
from datagate_pipelines.exporting.qbo import export_to_qbo
from datagate_pipelines.exporting.qbo_references import link_period_references
from datagate_pipelines.exporting.status import open_exports
from datagate_pipelines.exporting.verify import verify_halopsa, verify_qbo
from datagate_pipelines.warehouse import models as m
from datagate_pipelines.warehouse.request_log import recording
from datagate_simulators.halopsa.backend.invoices import CREDIT_NOTE_INVOICE_TYPE
from tests.exporting.stack import JULY, finalized_with_a_credit, halo_client, qbo_client


def export_both(engine, halo, qbo, portal, **client_options):
    with halo_client(halo) as client:
        halo_outcome = export_to_halopsa(engine, client, portal.settings, JULY)
    with qbo_client(qbo, **client_options) as client:
        link_period_references(engine, client, portal.settings, JULY)
        qbo_outcome = export_to_qbo(engine, client, portal.settings, JULY)
    return halo_outcome, qbo_outcome


def exports(engine, invoice_id):
    with engine.connect() as c:
        return {
            r.target: r
            for r in c.execute(select(m.exports).where(m.exports.c.invoice_id == invoice_id))
        }


def test_a_negative_total_is_a_credit_memo_and_a_credit_note_each_once(engine, halo, qbo, portal):
    finals, credit = finalized_with_a_credit(engine, halo, portal)
    for _ in range(2):  # a re-run creates nothing more
        halo_outcome, qbo_outcome = export_both(engine, halo, qbo, portal)
        assert not halo_outcome.failed and not qbo_outcome.failed

    memos = [r for r in qbo.company.records("CreditMemo") if r["DocNumber"] == credit.doc_number]
    assert len(memos) == 1
    memo = memos[0]
    assert memo["TotalAmt"] == -credit.total  # our total negated, tax included
    assert memo["RemainingCredit"] == -credit.total  # left unapplied: the customer's credit
    assert memo["TxnTaxDetail"]["TotalTax"] == -credit.tax
    sales = [line for line in memo["Line"] if line["DetailType"] == "SalesItemLineDetail"]
    assert sum(line["Amount"] for line in sales) == -credit.subtotal
    assert credit.doc_number not in {i["DocNumber"] for i in qbo.company.records("Invoice")}
    assert len(qbo.company.records("Invoice")) == len(finals) - 1

    notes = [
        r
        for r in halo.backend.table("Invoice").values()
        if r["thirdpartyinvoicenumber"] == credit.doc_number
    ]
    assert len(notes) == 1 and notes[0]["invoicetype"] == CREDIT_NOTE_INVOICE_TYPE
    assert Decimal(str(notes[0]["total"])).quantize(Decimal("0.01")) == -credit.total
    assert notes[0]["creditlinkedtoinvoiceid"] in (-1, 0, None)  # standalone

    rows = exports(engine, credit.id)
    assert (rows["qbo"].external_type, rows["halopsa"].external_type) == (
        "CreditMemo",
        "credit_note",
    )
    with qbo_client(qbo) as client:
        assert verify_qbo(engine, client, portal.settings, JULY).passed
    with halo_client(halo) as client:
        assert verify_halopsa(engine, client, portal.settings, JULY).passed


def test_credit_note_amounts_can_be_sent_negative(engine, halo, qbo, portal):
    """HaloPSA does not document a credit's sign: the portal setting decides."""
    settings = portal.settings.model_copy(
        update={
            "halopsa": portal.settings.halopsa.model_copy(
                update={"credit_note_amounts": "negative"}
            )
        }
    )
    _finals, credit = finalized_with_a_credit(engine, halo, portal)
    with halo_client(halo) as client:
        outcome = export_to_halopsa(engine, client, settings, JULY)
        assert not outcome.failed
        assert verify_halopsa(engine, client, settings, JULY).passed
    (note,) = [
        r
        for r in halo.backend.table("Invoice").values()
        if r["thirdpartyinvoicenumber"] == credit.doc_number
    ]
    assert Decimal(str(note["total"])).quantize(Decimal("0.01")) == credit.total


def test_a_refusal_inside_a_batch_keeps_qbos_code_and_shows_in_the_request_log(
    engine, halo, qbo, portal, finals
):
    victim = finals[2]
    with qbo_client(qbo) as client:
        link_period_references(engine, client, portal.settings, JULY)
    # Someone's credit memo already holds our invoice's number: QBO refuses the invoice
    # inside the batch (6140, one DocNumber space for both types) and the rest go through.
    customer = qbo.company.records("Customer")[0]
    item = qbo.company.records("Item")[0]
    qbo.company.create(
        "CreditMemo",
        {
            "DocNumber": victim.doc_number,
            "CustomerRef": {"value": customer["Id"]},
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": Decimal("5.00"),
                    "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}},
                }
            ],
        },
    )
    for attempt in (1, 2):
        with recording(engine) as recorder, qbo_client(qbo, recorder=recorder) as client:
            outcome = export_to_qbo(engine, client, portal.settings, JULY)
        reason = outcome.failed[victim.invoice_key]
        assert "used in QBO by CreditMemo" in reason and len(outcome.failed) == 1
        row = exports(engine, victim.id)["qbo"]
        assert row.status == "failed" and row.error_code == "6140" and row.attempts == attempt
        if attempt == 1:
            since = row.failed_since
            assert outcome.exported == len(finals) - 1
        assert row.failed_since == since  # still failing since the first refusal
    with engine.connect() as c:
        logged = c.execute(
            select(m.api_requests.c.status, m.api_requests.c.error, m.api_requests.c.query).where(
                m.api_requests.c.error.like("batch item%")
            )
        ).all()
        (still_open,) = open_exports(c, {"acme": ("qbo",)})
    assert logged, "the refused batch item is in the request log"
    status, error, query = logged[0]
    assert status == 200 and f"DocNumber {victim.doc_number}" in error and "6140" in error
    assert query["bId"] and query["DocNumber"] == victim.doc_number
    assert still_open.invoice_key == victim.invoice_key and still_open.code == "6140"
    assert "6140" in still_open.line() and victim.doc_number in still_open.line()
