"""Payments read back from QBO by change data capture: one row per payment application,
history kept, each invoice's status and balance; the call budget; the 30-day fallback;
re-runs that store nothing twice. Real finalized invoices, the QBO simulator in-process;
SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from datagate_pipelines.exporting.payments import payment_status
from datagate_pipelines.warehouse import models as m
from datagate_simulators.qbo import FakeClock, QBOBackend, create_app
from tests.exporting.payments_stack import (
    credit,
    export_everywhere,
    invoice_rows,
    pay,
    qbo_invoice_ids,
    refresh,
    rows,
)
from tests.exporting.stack import (
    FIRST_REFRESH_TOKEN,
    QBO_CLIENT_ID,
    QBO_SECRET,
    REALM,
    QBOSim,
)


def test_status_from_balance():
    total = Decimal("376.46")
    assert payment_status(total, Decimal("0.00")) == "paid"
    assert payment_status(total, Decimal("0.00"), credited=True) == "credited"
    assert payment_status(total, Decimal("100.00")) == "partly_paid"
    assert payment_status(total, total) == "unpaid"
    assert payment_status(total, Decimal("0.00"), voided=True) == "voided"


def test_payments_by_cdc_within_the_call_budget(engine, qbo, portal, finals):
    export_everywhere(engine, portal, qbo)
    first = refresh(engine, qbo, portal)
    # No cursor yet: our open invoices are read (100 Ids a query) instead of CDC.
    assert (first.mode, first.reason) == ("open_invoices", "first refresh")
    assert first.api_calls == 1 and first.statuses == {"unpaid": len(finals)}

    quiet = refresh(engine, qbo, portal)  # nothing changed since
    assert quiet.mode == "cdc" and quiet.api_calls <= 2
    assert (quiet.recorded, quiet.changed) == (0, [])

    ids = qbo_invoice_ids(engine)
    paid, partly = finals[0], finals[1]
    check = {"value": "2", "name": "Check"}
    pay(qbo, ids[paid.id], paid.total, PaymentRefNum="CHK-1001", PaymentMethodRef=check)
    pay(qbo, ids[partly.id], "10.00")
    changed = refresh(engine, qbo, portal)
    assert changed.mode == "cdc" and changed.api_calls == 1
    assert (changed.applied, changed.removed, changed.unmatched) == (2, 0, [])
    assert sorted(changed.changed) == sorted([paid.invoice_key, partly.invoice_key])
    invoices = invoice_rows(engine)
    assert (invoices[paid.id].payment_status, invoices[paid.id].balance) == (
        "paid",
        Decimal("0.00"),
    )
    assert invoices[partly.id].payment_status == "partly_paid"
    assert invoices[partly.id].balance == partly.total - Decimal("10.00")
    assert invoices[finals[2].id].payment_status == "unpaid"
    applications = {a.invoice_id: a for a in rows(engine, m.payment_applications)}
    full = applications[paid.id]
    assert (full.kind, full.state, full.amount, full.method, full.reference) == (
        "payment",
        "applied",
        paid.total,
        "Check",
        "CHK-1001",
    )
    assert full.payment_date is not None and full.qbo_invoice_id == ids[paid.id]

    again = refresh(engine, qbo, portal)  # the same changes read again: nothing stored twice
    assert (again.recorded, again.changed) == (0, [])
    assert len(rows(engine, m.payment_applications)) == 2


def test_removals_voids_deletions_and_credits_keep_their_history(engine, qbo, portal, finals):
    export_everywhere(engine, portal, qbo)
    ids = qbo_invoice_ids(engine)
    refunded, voided, deleted, credited, half = finals[:5]
    refresh(engine, qbo, portal)
    payment = pay(qbo, ids[refunded.id], refunded.total)
    refresh(engine, qbo, portal)
    assert invoice_rows(engine)[refunded.id].payment_status == "paid"

    qbo.company.delete("Payment", {"Id": payment["Id"], "SyncToken": payment["SyncToken"]})
    for final, operation in ((voided, qbo.company.void), (deleted, qbo.company.delete)):
        record = qbo.company.read("Invoice", ids[final.id])
        operation("Invoice", {"Id": record["Id"], "SyncToken": record["SyncToken"]})
    credit(qbo, ids[credited.id], credited.total)
    credit(qbo, ids[half.id], "5.00")
    outcome = refresh(engine, qbo, portal)
    assert outcome.deleted_in_qbo == [deleted.invoice_key]
    invoices = invoice_rows(engine)
    assert invoices[refunded.id].payment_status == "unpaid"
    assert invoices[refunded.id].balance == refunded.total
    assert invoices[voided.id].payment_status == "voided"
    assert invoices[deleted.id].payment_status == "unpaid"  # keeps its last status
    assert invoices[credited.id].payment_status == "credited"
    assert invoices[half.id].payment_status == "partly_paid"

    history = [a for a in rows(engine, m.payment_applications) if a.invoice_id == refunded.id]
    assert [(a.state, a.amount) for a in history] == [
        ("applied", refunded.total),
        ("removed", Decimal("0.00")),
    ]
    states = [s for s in rows(engine, m.invoice_payment_states) if s.invoice_id == refunded.id]
    assert [s.payment_status for s in states] == ["unpaid", "paid", "unpaid"]
    gone = [s for s in rows(engine, m.invoice_payment_states) if s.invoice_id == deleted.id]
    assert gone[-1].qbo_state == "deleted"
    credits = [a for a in rows(engine, m.payment_applications) if a.invoice_id == credited.id]
    assert [(a.kind, a.method) for a in credits] == [("credit", "credit memo")]
    assert credits[0].reference.startswith("credit memo ")

    # A deleted invoice is reported once, not on every refresh.
    assert refresh(engine, qbo, portal).deleted_in_qbo == []


def test_a_payment_for_an_invoice_we_never_exported_is_kept(engine, qbo, portal, finals):
    export_everywhere(engine, portal, qbo)
    refresh(engine, qbo, portal)
    theirs = qbo.company.create(
        "Invoice",
        {
            "CustomerRef": qbo.company.read("Invoice", qbo_invoice_ids(engine)[finals[0].id])[
                "CustomerRef"
            ],
            "DocNumber": "MANUAL-1",
            "Line": [
                {
                    "Amount": Decimal("80.00"),
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
                }
            ],
        },
    )
    payment = pay(qbo, theirs["Id"], "80.00")
    outcome = refresh(engine, qbo, portal)
    assert outcome.unmatched == [f"QBO payment {payment['Id']} on QBO invoice {theirs['Id']}"]
    (kept,) = rows(engine, m.payment_applications)
    assert (kept.invoice_id, kept.qbo_invoice_id, kept.amount) == (
        None,
        theirs["Id"],
        Decimal("80.00"),
    )
    assert Counter(
        r.payment_status for r in invoice_rows(engine).values() if r.status == "final"
    ) == {"unpaid": len(finals)}


@pytest.mark.slow
def test_a_full_cdc_answer_is_read_again_by_paged_queries(engine, qbo, portal, finals):
    # §6.1/§B7: one CDC answer holds at most 1000 objects over all entities.
    export_everywhere(engine, portal, qbo)
    refresh(engine, qbo, portal)
    ids = [qbo_invoice_ids(engine)[f.id] for f in finals]
    for n in range(1100):
        pay(qbo, ids[n % len(ids)], "0.01")
    outcome = refresh(engine, qbo, portal, page_size=500)
    assert outcome.mode == "cdc+query"
    assert outcome.applied == 1100
    # One CDC call; then Payment (1100 rows), Invoice and CreditMemo, 500 rows a page.
    assert outcome.api_calls == 1 + 3 + 1 + 1
    paid = {r.id: r.balance for r in invoice_rows(engine).values() if r.status == "final"}
    assert all(paid[f.id] < f.total for f in finals)
    assert refresh(engine, qbo, portal, page_size=500).recorded == 0


def test_a_cursor_older_than_30_days_reads_our_open_invoices(engine, qbo, portal, finals):
    export_everywhere(engine, portal, qbo)
    refresh(engine, qbo, portal)
    ids = qbo_invoice_ids(engine)
    pay(qbo, ids[finals[0].id], finals[0].total)
    long_ago = datetime.now(UTC) - timedelta(days=40)
    with engine.begin() as c:
        c.execute(
            update(m.qbo_payment_cursors).values(changed_since=long_ago, refreshed_at=long_ago)
        )
    outcome = refresh(engine, qbo, portal)
    assert outcome.mode == "open_invoices" and "older than CDC's 30 days" in outcome.reason
    assert outcome.api_calls == 2  # the open invoices, the payments they link: no CDC call
    assert invoice_rows(engine)[finals[0].id].payment_status == "paid"
    assert refresh(engine, qbo, portal).mode == "cdc"  # the cursor is fresh again


def test_a_cursor_qbo_refuses_falls_back_too(engine, portal, finals):
    clock = FakeClock(datetime.now(UTC))
    backend = QBOBackend(clock=clock)
    backend.seed_company(
        REALM, client_id=QBO_CLIENT_ID, client_secret=QBO_SECRET, refresh_token=FIRST_REFRESH_TOKEN
    )
    qbo = QBOSim(backend, create_app(backend))
    export_everywhere(engine, portal, qbo)
    refresh(engine, qbo, portal)
    clock.advance(days=31)  # QBO's clock moved on; ours did not see it
    pay(qbo, qbo_invoice_ids(engine)[finals[1].id], "1.00")
    outcome = refresh(engine, qbo, portal)
    assert outcome.mode == "open_invoices" and "changedSince" in outcome.reason
    assert invoice_rows(engine)[finals[1].id].payment_status == "partly_paid"


def test_a_refresh_read_again_from_an_older_cursor_stores_nothing_twice(
    engine, qbo, portal, finals
):
    export_everywhere(engine, portal, qbo)
    refresh(engine, qbo, portal)
    with engine.connect() as c:
        before = c.execute(select(m.qbo_payment_cursors)).one()
    ids = qbo_invoice_ids(engine)
    for final in finals[:3]:
        pay(qbo, ids[final.id], "1.00")
    assert refresh(engine, qbo, portal).applied == 3
    with engine.begin() as c:  # as if the refresh's commit had been lost
        c.execute(
            update(m.qbo_payment_cursors).values(
                changed_since=before.changed_since, refreshed_at=before.refreshed_at
            )
        )
    assert refresh(engine, qbo, portal).recorded == 0
    assert len(rows(engine, m.payment_applications)) == 3
    assert len(rows(engine, m.invoice_payment_states)) == len(finals) + 3
