"""QBO payments recorded on the HaloPSA invoices we exported: exactly once, changes and
removals replaced, refusals recorded and tried again. Both simulators in-process; SQLite
and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select, update

from datagate_pipelines.exporting.halopsa_payments import write_back_payments
from datagate_pipelines.warehouse import models as m
from tests.exporting.payments_stack import (
    credit,
    export_everywhere,
    pay,
    qbo_invoice_ids,
    refresh,
    rows,
)
from tests.exporting.stack import halo_client


def write_back(engine, halo, portal):
    with halo_client(halo) as client:
        return write_back_payments(engine, client, portal.settings)


def halo_invoice(engine, halo, invoice_id: int) -> dict:
    with engine.connect() as c:
        halo_id = c.execute(
            select(m.exports.c.external_id).where(
                m.exports.c.invoice_id == invoice_id, m.exports.c.target == "halopsa"
            )
        ).scalar_one()
    return halo.backend.get("Invoice", halo_id)


def halo_payments(halo) -> list[dict]:
    return list(halo.backend.table("InvoicePayment").values())


def test_each_payment_is_recorded_on_its_halopsa_invoice_once(engine, halo, qbo, portal, finals):
    export_everywhere(engine, portal, qbo, halo)
    ids = qbo_invoice_ids(engine)
    paid, partly = finals[0], finals[1]
    pay(qbo, ids[paid.id], paid.total, PaymentMethodRef={"value": "2", "name": "Check"})
    pay(qbo, ids[partly.id], "25.00")
    refresh(engine, qbo, portal)
    outcome = write_back(engine, halo, portal)
    assert outcome.counts()["recorded"] == 2 and outcome.failed == {}
    full = halo_invoice(engine, halo, paid.id)
    assert (Decimal(str(full["amountpaid"])), full["amountdue"], full["paymentstatus"]) == (
        paid.total,
        0.0,
        2,
    )
    part = halo_invoice(engine, halo, partly.id)
    assert (Decimal(str(part["amountpaid"])), part["paymentstatus"]) == (Decimal("25.00"), 1)
    references = sorted(p["thirdpartyid"] for p in halo_payments(halo))
    assert all(r.startswith("datagate:qbo-payment:") for r in references)

    assert write_back(engine, halo, portal).counts()["already_recorded"] == 2  # a re-run
    assert len(halo_payments(halo)) == 2


def test_a_run_killed_after_the_create_finds_the_payment_instead_of_adding_one(
    engine, halo, qbo, portal, finals
):
    export_everywhere(engine, portal, qbo, halo)
    pay(qbo, qbo_invoice_ids(engine)[finals[0].id], "40.00")
    refresh(engine, qbo, portal)
    write_back(engine, halo, portal)
    with engine.begin() as c:  # what a run killed between the create and its record leaves
        c.execute(update(m.halo_payment_exports).values(status="pending", halo_payment_id=None))
    outcome = write_back(engine, halo, portal)
    assert outcome.counts()["found_in_halopsa"] == 1 and outcome.created == []
    assert len(halo_payments(halo)) == 1
    (row,) = rows(engine, m.halo_payment_exports)
    assert row.status == "exported" and row.halo_payment_id == halo_payments(halo)[0]["id"]


def test_a_changed_or_removed_payment_is_replaced_in_halopsa(engine, halo, qbo, portal, finals):
    export_everywhere(engine, portal, qbo, halo)
    ids = qbo_invoice_ids(engine)
    payment = pay(qbo, ids[finals[0].id], "40.00", TotalAmt=Decimal("40.00"))
    gone = pay(qbo, ids[finals[1].id], "15.00")
    refresh(engine, qbo, portal)
    write_back(engine, halo, portal)
    current = qbo.company.read("Payment", payment["Id"])
    qbo.company.update(
        "Payment",
        {
            "Id": current["Id"],
            "SyncToken": current["SyncToken"],
            "sparse": True,
            "Line": [
                {
                    "Amount": Decimal("30.00"),
                    "LinkedTxn": [{"TxnId": ids[finals[0].id], "TxnType": "Invoice"}],
                }
            ],
        },
    )
    qbo.company.delete("Payment", {"Id": gone["Id"], "SyncToken": gone["SyncToken"]})
    refresh(engine, qbo, portal)
    outcome = write_back(engine, halo, portal)
    assert len(outcome.removed) == 2 and len(outcome.created) == 1
    assert Decimal(str(halo_invoice(engine, halo, finals[0].id)["amountpaid"])) == Decimal("30.00")
    assert halo_invoice(engine, halo, finals[1].id)["amountpaid"] == 0.0
    assert [p["amount"] for p in halo_payments(halo)] == [30.0]
    versions = [
        (r.qbo_payment_id, r.version, r.status) for r in rows(engine, m.halo_payment_exports)
    ]
    assert sorted(versions) == sorted(
        [(payment["Id"], 1, "removed"), (gone["Id"], 1, "removed"), (payment["Id"], 2, "exported")]
    )


def test_a_credit_applied_in_qbo_shows_in_halopsa_with_the_credit_method(
    engine, halo, qbo, portal, finals
):
    export_everywhere(engine, portal, qbo, halo)
    settings = portal.settings.model_copy(
        update={
            "payments": portal.settings.payments.model_copy(update={"halopsa_credit_method": 7})
        }
    )
    credit(qbo, qbo_invoice_ids(engine)[finals[2].id], finals[2].total)
    refresh(engine, qbo, portal)
    with halo_client(halo) as client:
        write_back_payments(engine, client, settings)
    (recorded,) = halo_payments(halo)
    assert recorded["method"] == 7
    assert halo_invoice(engine, halo, finals[2].id)["paymentstatus"] == 2


def test_halopsa_refusing_a_payment_is_recorded_and_tried_again(engine, halo, qbo, portal, finals):
    export_everywhere(engine, portal, qbo, halo)
    ids = qbo_invoice_ids(engine)
    refused, accepted = finals[0], finals[1]
    halo.backend.void_invoice(halo_invoice(engine, halo, refused.id)["id"])  # voided in HaloPSA
    pay(qbo, ids[refused.id], "10.00")
    pay(qbo, ids[accepted.id], "10.00")
    refresh(engine, qbo, portal)
    outcome = write_back(engine, halo, portal)
    (reason,) = outcome.failed.values()
    assert "voided" in reason
    assert len(outcome.created) == 1  # the other payment is not held up
    again = write_back(engine, halo, portal)
    assert len(again.failed) == 1
    failed = [r for r in rows(engine, m.halo_payment_exports) if r.status == "failed"]
    assert [(r.attempts, "voided" in r.last_error) for r in failed] == [(2, True)]
    assert len(halo_payments(halo)) == 1


def test_payments_wait_for_their_invoice_to_reach_halopsa(engine, halo, qbo, portal, finals):
    export_everywhere(engine, portal, qbo)  # QBO only, for now
    pay(qbo, qbo_invoice_ids(engine)[finals[0].id], "10.00")
    refresh(engine, qbo, portal)
    waiting = write_back(engine, halo, portal)
    assert list(waiting.waiting.values()) == ["its invoice is not in HaloPSA yet"]
    assert halo_payments(halo) == []
    export_everywhere(engine, portal, qbo, halo)
    assert write_back(engine, halo, portal).counts()["recorded"] == 1
