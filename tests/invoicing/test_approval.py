"""Approval, manual holds and the audit trail through the warehouse (SQLite and PostgreSQL):
docs/billing.md's worked example billed per contract, approved, held, released, refused."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError

from datagate_pipelines.config import Portal
from datagate_pipelines.invoicing.approval import (
    ApprovalError,
    ApprovalStaleError,
    approvals_of,
    approve_period,
    periods_awaiting_approval,
    waits_for_approval,
)
from datagate_pipelines.invoicing.approved import finalize_approved
from datagate_pipelines.invoicing.drafts import compute_drafts
from datagate_pipelines.invoicing.finalize import ApprovalRequiredError, finalize_period
from datagate_pipelines.invoicing.fingerprint import draft_digests, fingerprint
from datagate_pipelines.invoicing.holds import HoldError, hold_invoice, release_invoice
from datagate_pipelines.invoicing.review import period_review
from datagate_pipelines.warehouse import models as m
from datagate_pipelines.warehouse.audit import read_events
from tests.invoicing.test_billing_flow import AUGUST, JULY, TAX_RATES, TEMPLATES, USAGE
from tests.sync.halo_records import bayside_tenant, line
from tests.sync.test_apply import portal, sync_all

AFTER_JULY = date(2026, 8, 2)
AFTER_AUGUST = date(2026, 9, 2)
PBX = "2026-07:contract:100"  # PBX seat, SIP trunk, fax line
ROUTER = "2026-07:contract:101"  # the router, from 2026-08-20
USAGE_ONLY = "2026-07:customer:1:no-contract"  # the July call usage


def manual(p: Portal) -> Portal:
    settings = p.settings
    return Portal(
        settings.model_copy(
            update={"invoicing": settings.invoicing.model_copy(update={"approval": "manual"})}
        )
    )


@pytest.fixture
def acme(engine, tmp_path):
    """Bayside Dental billed per contract (three invoices in July), approval manual."""
    from datagate_pipelines.imports.product_templates import import_product_templates
    from datagate_pipelines.imports.tax_rates import import_tax_rates
    from datagate_pipelines.imports.usage import import_usage

    p = manual(portal(sync="{use_default_agreement: false}"))
    sync_all(engine, p, bayside_tenant())
    usage = tmp_path / "usage-2026-07.csv"
    usage.write_text(USAGE)
    with engine.begin() as c:
        import_tax_rates(c, TAX_RATES)
        import_product_templates(c, "acme", TEMPLATES)
        import_usage(c, "acme", JULY, usage, imported_by="test")
    sync_all(engine, p)
    with engine.begin() as c:
        compute_drafts(c, p.settings, JULY)
    return p


def statuses(engine, period=JULY):
    with engine.connect() as c:
        return dict(
            c.execute(
                select(m.invoices.c.invoice_key, m.invoices.c.status).where(
                    m.invoices.c.period == period
                )
            ).all()
        )


def count(engine, table):
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar_one()


def approve(engine, p, period=JULY, **kwargs):
    with engine.begin() as c:
        return approve_period(
            c,
            p.settings,
            period,
            approved_by="alice",
            today=kwargs.pop("today", AFTER_JULY),
            **kwargs,
        )


def test_manual_approval_finalizes_nothing_until_approved(engine, acme):
    assert set(statuses(engine)) == {PBX, ROUTER, USAGE_ONLY}
    with pytest.raises(ApprovalRequiredError, match="waits for approval"), engine.begin() as c:
        finalize_period(c, acme.settings, JULY, today=AFTER_JULY)
    with pytest.raises(
        ApprovalRequiredError, match="datagate review --portal acme --period 2026-07"
    ):
        finalize_approved(engine, acme.settings, JULY, today=AFTER_JULY)
    with engine.connect() as c:
        assert waits_for_approval(c, "acme", JULY)
        waiting = periods_awaiting_approval(c, ["acme"], AFTER_JULY)
    assert [(w.period, w.since, w.drafts) for w in waiting] == [(JULY, date(2026, 8, 1), 3)]
    assert set(statuses(engine).values()) == {"draft"}


def test_approve_then_finalize_numbers_the_approved_drafts(engine, acme):
    with engine.connect() as c:
        reviewed = period_review(c, acme.settings, JULY).fingerprint
    approval = approve(engine, acme, reviewed_fingerprint=reviewed, note="checked with finance")
    assert (approval.status, approval.fingerprint, approval.approved_by) == (
        "pending",
        reviewed,
        "alice",
    )
    assert approval.total == Decimal("376.46")  # the worked example's total, over 3 invoices
    with engine.connect() as c:
        assert not waits_for_approval(c, "acme", JULY)
    done = finalize_approved(engine, acme.settings, JULY, today=AFTER_JULY)
    assert sorted(done.outcome.finalized) == sorted([PBX, ROUTER, USAGE_ONLY])
    assert set(statuses(engine).values()) == {"final"}
    with engine.connect() as c:
        (settled,) = approvals_of(c, "acme", JULY)
        events = read_events(c, "acme")
        finished = c.execute(
            select(m.billing_periods.c.finalized_at).where(m.billing_periods.c.period == JULY)
        ).scalar_one()
    assert (settled.status, settled.outcome) == ("finalized", "finalized 3")
    assert finished is not None
    assert [e.action for e in events] == ["approve", "finalize", "finalize", "finalize"]
    approve_event = events[0]
    assert approve_event.actor == "alice" and approve_event.period == JULY
    assert approve_event.details["fingerprint"] == reviewed
    assert approve_event.details["note"] == "checked with finance"
    assert approve_event.details["total"] == "376.46"
    finals = {e.invoice_key: e for e in events[1:]}
    assert set(finals) == {PBX, ROUTER, USAGE_ONLY}
    assert all(e.actor == f"alice (approval {approval.id})" for e in finals.values())
    assert sorted(e.details["after"]["number"] for e in finals.values()) == ["1001", "1002", "1003"]
    # carried out once: a re-executed run finds it settled and finalizes nothing more
    again = finalize_approved(engine, acme.settings, JULY, approval_id=approval.id)
    assert again.outcome.finalized == []


def test_approve_except_leaves_those_drafts_for_later(engine, acme):
    approval = approve(engine, acme, excepted=[ROUTER])
    assert sorted(approval.invoices) == [PBX, USAGE_ONLY] and approval.excepted == [ROUTER]
    finalize_approved(engine, acme.settings, JULY, today=AFTER_JULY)
    assert statuses(engine) == {PBX: "final", USAGE_ONLY: "final", ROUTER: "draft"}
    with engine.connect() as c:
        closed = c.execute(select(m.billing_periods.c.finalized_at)).scalar_one()
        assert closed is None  # the period is not done while a draft is left
        assert waits_for_approval(c, "acme", JULY)
    later = approve(engine, acme)
    assert list(later.invoices) == [ROUTER]
    finalize_approved(engine, acme.settings, JULY, today=AFTER_JULY)
    assert set(statuses(engine).values()) == {"final"}


def test_drafts_changed_after_approval_refuse_it_and_say_what_changed(engine, acme):
    approval = approve(engine, acme)
    # A sync moves a line: the SIP trunk's quantity goes from 2 to 3, and the drafts are
    # recomputed before the approval's run.
    tenant = bayside_tenant()
    lines = tenant["recurring_invoices"][0]["lines"]
    lines[1] = line(2, 51, 3, 39.99, site_id=11, contract_id=100, start="2026-07-15T00:00:00")
    sync_all(engine, acme, tenant)
    with engine.begin() as c:
        compute_drafts(c, acme.settings, JULY)
    with pytest.raises(ApprovalStaleError) as refused:
        finalize_approved(engine, acme.settings, JULY, today=AFTER_JULY)
    message = str(refused.value)
    assert f"approval {approval.id} by alice no longer matches the drafts" in message
    assert f"{PBX}: total" in message and "nothing was finalized" in message
    assert set(statuses(engine).values()) == {"draft"}
    with engine.connect() as c:
        (settled,) = approvals_of(c, "acme", JULY)
        events = read_events(c, "acme")
        next_number = c.execute(select(m.portals.c.next_invoice_number)).scalar_one()
    assert settled.status == "refused" and PBX in settled.outcome
    assert next_number == 1001  # no number was given
    assert [e.action for e in events] == ["approve", "approval_refused"]
    assert any(PBX in change for change in events[1].details["changes"])
    # a new approval of the drafts as they are now goes through
    approve(engine, acme)
    assert (
        len(finalize_approved(engine, acme.settings, JULY, today=AFTER_JULY).outcome.finalized) == 3
    )


@pytest.mark.parametrize(
    "case, expected",
    [
        ("open", "is still open: it can be approved from 2026-08-01"),
        ("never billed", "billing period 2026-08 was never billed"),
        ("already final", "is already final (3 invoices)"),
        ("unknown except", "--except 2026-07:contract:999: no draft invoice with that key"),
        ("stale fingerprint", "the drafts changed since the review that showed fingerprint 0000"),
        ("approved twice", "is already approved (approval"),
        ("auto portal", "finalizes without approval (invoicing.approval: auto)"),
        ("all held", "nothing to approve: every invoice not yet final is held or left out"),
    ],
)
def test_bad_approvals_write_nothing(engine, acme, case, expected):
    kwargs: dict = {}
    target, who = JULY, acme
    if case == "open":
        kwargs["today"] = date(2026, 7, 31)
    elif case == "never billed":
        target = AUGUST
        kwargs["today"] = AFTER_AUGUST
    elif case == "already final":
        approve(engine, acme)
        finalize_approved(engine, acme.settings, JULY, today=AFTER_JULY)
    elif case == "unknown except":
        kwargs["excepted"] = ["2026-07:contract:999"]
    elif case == "stale fingerprint":
        kwargs["reviewed_fingerprint"] = "0000000000000000"
    elif case == "approved twice":
        approve(engine, acme)
    elif case == "auto portal":
        who = portal(sync="{use_default_agreement: false}")
    elif case == "all held":
        kwargs["excepted"] = [ROUTER, USAGE_ONLY]
        with engine.begin() as c:
            hold_invoice(c, "acme", PBX, "disputed", "bob")
    with engine.connect() as c:
        before = (
            c.execute(select(func.count()).select_from(m.approvals)).scalar_one(),
            c.execute(select(func.count()).select_from(m.audit_events)).scalar_one(),
        )
    with pytest.raises(ApprovalError) as refused:
        approve(engine, who, target, **kwargs)
    assert expected in str(refused.value)
    assert str(refused.value).startswith("portal acme")
    with engine.connect() as c:
        after = (
            c.execute(select(func.count()).select_from(m.approvals)).scalar_one(),
            c.execute(select(func.count()).select_from(m.audit_events)).scalar_one(),
        )
    assert after == before


def test_a_manual_hold_survives_recomputation_and_blocks_later_periods(engine, acme):
    with engine.begin() as c:
        hold_invoice(c, "acme", PBX, "customer disputes the seat count", "bob")
        compute_drafts(c, acme.settings, JULY)  # recomputed: the hold stays
    with engine.connect() as c:
        held = c.execute(select(m.invoices).where(m.invoices.c.invoice_key == PBX)).one()
    assert held.status == "held"
    assert held.hold_reasons == ["manual hold by bob: customer disputes the seat count"]
    # July: the held invoice is not approved, the others are finalized
    approval = approve(engine, acme)
    assert PBX not in approval.invoices
    finalize_approved(engine, acme.settings, JULY, today=AFTER_JULY)
    assert statuses(engine) == {PBX: "held", ROUTER: "final", USAGE_ONLY: "final"}
    # August: contract 100's invoice waits for July's (rule 4); the others go out
    with engine.begin() as c:
        compute_drafts(c, acme.settings, AUGUST)
    approve(engine, acme, AUGUST, today=AFTER_AUGUST)
    august = finalize_approved(engine, acme.settings, AUGUST, today=AFTER_AUGUST)
    assert list(august.outcome.blocked) == ["contract:100"]
    assert statuses(engine, AUGUST)["2026-08:contract:100"] == "draft"
    # released: a draft again, approved and finalized; then August's follows
    with engine.begin() as c:
        assert release_invoice(c, "acme", PBX, "carol", "seat count confirmed") == "draft"
    approve(engine, acme)
    finalize_approved(engine, acme.settings, JULY, today=AFTER_AUGUST)
    approve(engine, acme, AUGUST, today=AFTER_AUGUST)
    finalize_approved(engine, acme.settings, AUGUST, today=AFTER_AUGUST)
    assert set(statuses(engine).values()) == set(statuses(engine, AUGUST).values()) == {"final"}
    with engine.connect() as c:
        trail = read_events(c, "acme", invoice_key=PBX)
        holds = c.execute(select(m.invoice_holds)).one()
    assert [e.action for e in trail] == ["hold", "release", "finalize"]
    hold_event, release_event = trail[0], trail[1]
    assert (
        hold_event.actor == "bob"
        and hold_event.details["reason"] == "customer disputes the seat count"
    )
    assert hold_event.details["before"]["status"] == "draft"
    assert hold_event.details["after"]["status"] == "held"
    assert (
        release_event.actor == "carol" and release_event.details["note"] == "seat count confirmed"
    )
    assert (holds.released_by, holds.held_by) == ("carol", "bob")


def test_holds_that_cannot_be(engine, acme):
    with engine.begin() as c:
        hold_invoice(c, "acme", ROUTER, "check the install date", "bob")
    cases = [
        (lambda c: hold_invoice(c, "acme", ROUTER, "again", "bob"), "is already held by bob"),
        (lambda c: hold_invoice(c, "acme", "2026-07:contract:999", "x", "bob"), "no invoice"),
        (lambda c: hold_invoice(c, "acme", PBX, "  ", "bob"), "give a reason"),
        (lambda c: release_invoice(c, "acme", PBX, "bob"), "has no manual hold to release"),
    ]
    for attempt, expected in cases:
        with pytest.raises(HoldError, match=expected), engine.begin() as c:
            attempt(c)
    approve(engine, acme)
    finalize_approved(engine, acme.settings, JULY, today=AFTER_JULY)
    events = count(engine, m.audit_events)
    with (
        pytest.raises(HoldError, match=f"invoice {PBX} is final \\(number 100"),
        engine.begin() as c,
    ):
        hold_invoice(c, "acme", PBX, "too late", "bob")
    assert count(engine, m.audit_events) == events
    assert count(engine, m.invoice_holds) == 1


def test_a_billing_hold_released_by_hand_stays_held_for_its_data(engine, acme):
    with engine.begin() as c:
        c.execute(m.tax_rates.delete().where(m.tax_rates.c.zip == "94110"))
        compute_drafts(c, acme.settings, JULY)
        hold_invoice(c, "acme", PBX, "looks high", "bob")
        assert release_invoice(c, "acme", PBX, "bob") == "held"
        reasons = c.execute(
            select(m.invoices.c.hold_reasons).where(m.invoices.c.invoice_key == PBX)
        ).scalar_one()
    assert reasons and not any("manual hold" in r for r in reasons)


def test_the_fingerprint_follows_the_drafts(engine, acme):
    with engine.connect() as c:
        first = fingerprint(draft_digests(c, "acme", JULY))
    with engine.begin() as c:
        compute_drafts(c, acme.settings, JULY)
        same = fingerprint(draft_digests(c, "acme", JULY))
        hold_invoice(c, "acme", ROUTER, "check", "bob")
        held = fingerprint(draft_digests(c, "acme", JULY))
    assert len(first) == 16 and first == same  # recomputed unchanged: the same fingerprint
    assert held != first


@pytest.mark.parametrize(
    "statement", ["update audit_events set actor = 'mallory'", "delete from audit_events"]
)
def test_the_audit_trail_is_append_only(engine, acme, statement):
    with engine.begin() as c:
        hold_invoice(c, "acme", ROUTER, "check", "bob")
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as c:
        c.execute(text(statement))
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as c:
        c.execute(update(m.audit_events).values(details={}))
    with engine.connect() as c:
        (event,) = read_events(c, "acme")
    assert (event.actor, event.action, event.invoice_key) == ("bob", "hold", ROUTER)


def test_the_audit_trail_model_reads_like_the_cli(engine, acme):
    from datagate_pipelines.warehouse import sql_models

    with engine.begin() as c:
        hold_invoice(c, "acme", ROUTER, "check the install date", "bob")
        release_invoice(c, "acme", ROUTER, "bob")
    approve(engine, acme)
    finalize_approved(engine, acme.settings, JULY, today=AFTER_JULY)
    (model,) = [model for model in sql_models.discover() if model.name == "audit_trail"]
    sql_models.materialize_all(engine, [model])
    with engine.connect() as c:
        rows = c.execute(
            text(
                "select action, actor, invoice_key, doc_number, invoice_status "
                "from audit_trail order by event_id"
            )
        ).all()
    assert [tuple(r)[:3] for r in rows[:3]] == [
        ("hold", "bob", ROUTER),
        ("release", "bob", ROUTER),
        ("approve", "alice", None),
    ]
    finals = [r for r in rows if r.action == "finalize"]
    assert len(finals) == 3 and all(r.doc_number and r.invoice_status == "final" for r in finals)


def test_flagged_invoices_count_as_reviewed_once_an_operator_acted(engine, acme):
    settings = acme.settings.model_copy(
        update={"review": acme.settings.review.model_copy(update={"flag_change_amount": 0})}
    )

    def review():
        with engine.connect() as c:
            return period_review(c, settings, JULY)

    first = review()
    assert first.state() == "ready for review"
    assert len(first.variance.flagged) == 3  # every new invoice is over 0.00
    assert len(first.unreviewed_flagged()) == 3
    with engine.begin() as c:
        hold_invoice(c, "acme", ROUTER, "check", "bob")
    held = review()
    assert {v.invoice_key for v in held.unreviewed_flagged()} == {PBX, USAGE_ONLY}
    assert held.fingerprint != first.fingerprint
    approve(engine, Portal(settings), excepted=[USAGE_ONLY])
    approved = review()
    assert approved.state() == "approved" and approved.unreviewed_flagged() == []
    document = approved.as_json()
    assert document["unreviewed_flagged"] == 0
    assert {i["invoice_key"]: i["reviewed"] for i in document["invoices"]} == {
        PBX: True,
        ROUTER: True,
        USAGE_ONLY: True,
    }
    rows = approved.csv_text().splitlines()
    assert rows[0].startswith("portal,period,customer_id,customer,agreement,invoice_key")
    assert len(rows) > 3 and all(",2026-07," in row for row in rows[1:])
