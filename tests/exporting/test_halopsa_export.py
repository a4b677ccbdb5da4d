"""Final invoices exported to the HaloPSA simulator: once each, whatever happens.

Real finalized invoices (tests/exporting/stack.py), a real HaloPSAClient, the simulator
in-process; on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import select

from datagate_pipelines.exporting.halopsa import export_to_halopsa
from datagate_pipelines.exporting.verify import verify_halopsa
from datagate_pipelines.imports.tax_rates import import_tax_rates
from datagate_pipelines.invoicing.drafts import compute_drafts
from datagate_pipelines.invoicing.finalize import finalize_period
from datagate_pipelines.warehouse import models as m
from tests.exporting.stack import AFTER_JULY, JULY, finalized_invoices, halo_client


class Crash(Exception):
    """Stands for the process dying at the worst moment."""


def halo_invoices(sim) -> list[dict]:
    return list(sim.backend.table("Invoice").values())


def export(engine, sim, portal, **kwargs):
    with halo_client(sim) as client:
        return export_to_halopsa(engine, client, portal.settings, JULY, **kwargs)


def exports(engine):
    with engine.connect() as c:
        return {
            r.invoice_id: r
            for r in c.execute(select(m.exports).where(m.exports.c.target == "halopsa"))
        }


def numbers(engine):
    with engine.connect() as c:
        return dict(c.execute(select(m.invoices.c.id, m.invoices.c.doc_number)).all())


def assert_once_each(sim, finals):
    counts = Counter(r["thirdpartyinvoicenumber"] for r in halo_invoices(sim))
    assert counts == Counter(f.doc_number for f in finals)


def test_every_final_invoice_goes_to_its_contract_once(engine, halo, portal, finals):
    outcome = export(engine, halo, portal)
    assert outcome.counts() == {
        "exported": len(finals),
        "already_there": 0,
        "failed": 0,
        "skipped_held": 0,
        "skipped_draft": 0,
    }
    assert_once_each(halo, finals)
    by_number = {r["thirdpartyinvoicenumber"]: r for r in halo_invoices(halo)}
    recorded = exports(engine)
    for final in finals:
        invoice = by_number[final.doc_number]
        assert invoice["client_id"] == final.customer_id
        assert invoice["contract_id"] == (final.halo_contract_id or 0)
        assert invoice["invoice_date"].startswith("2026-08-01")
        assert invoice["duedate"].startswith(final.due_date.isoformat())
        assert f"[{final.invoice_key}]" in invoice["reference"]
        assert Decimal(str(invoice["total"])) == final.total
        assert {line["contract_id"] for line in invoice["lines"]} == {final.halo_contract_id or -1}
        row = recorded[final.id]
        assert (row.status, row.external_id, row.external_number) == (
            "exported",
            str(invoice["id"]),
            invoice["invoicenumber"],
        )
    # A re-run has nothing to do and asks HaloPSA nothing.
    with halo_client(halo) as client:
        again = export_to_halopsa(engine, client, portal.settings, JULY)
        assert client.stats.calls == 0
    assert again.counts()["already_there"] == len(finals) and not again.created
    with halo_client(halo) as client:
        assert verify_halopsa(engine, client, portal.settings, JULY).passed


def test_killed_between_create_and_record_finds_it_instead_of_creating_again(
    engine, halo, portal, finals
):
    before = numbers(engine)
    created = []

    def die_on_the_third(document, _invoice):
        created.append(document.invoice_key)
        if len(created) == 3:
            raise Crash

    with pytest.raises(Crash):
        export(engine, halo, portal, after_create=die_on_the_third)
    assert len(halo_invoices(halo)) == 3
    assert Counter(r.status for r in exports(engine).values()) == {
        "exported": 2,
        "pending": len(finals) - 2,
    }
    outcome = export(engine, halo, portal)
    assert outcome.found == [created[2]]
    assert len(outcome.created) == len(finals) - 3
    assert_once_each(halo, finals)
    assert numbers(engine) == before
    assert all(r.status == "exported" for r in exports(engine).values())


def test_a_5xx_burst_and_a_429_storm_still_give_one_invoice_each(engine, halo, portal, finals):
    # The create itself is never blindly retried after a 5xx: it is looked up, then re-sent.
    halo.faults.fail_next(2, 503, path_prefix="/api/Invoice", method="POST")
    halo.faults.fail_next(4, 429, path_prefix="/api/Invoice")
    outcome = export(engine, halo, portal)
    assert outcome.exported == len(finals) and not outcome.failed
    assert halo.stats.count(503) == 2 and halo.stats.count(429) == 4
    assert_once_each(halo, finals)


def test_a_refused_invoice_is_recorded_with_the_reason_and_the_others_go_on(
    engine, halo, portal, finals
):
    # An item deleted in HaloPSA after billing: HaloPSA refuses the invoices that use it.
    with engine.connect() as c:
        item_id = c.execute(
            select(m.products.c.item_id)
            .join(m.invoice_lines, m.invoice_lines.c.product_id == m.products.c.product_id)
            .where(m.invoice_lines.c.invoice_id == finals[0].id, m.products.c.item_id.is_not(None))
        ).first()[0]
    item = halo.backend.table("Item").remove(item_id)
    outcome = export(engine, halo, portal)
    assert finals[0].invoice_key in outcome.failed
    assert f"Item {item_id} does not exist" in outcome.failed[finals[0].invoice_key]
    assert outcome.exported == len(finals) - len(outcome.failed)
    row = exports(engine)[finals[0].id]
    assert row.status == "failed" and row.attempts == 1 and "does not exist" in row.last_error
    assert row.error_code == "HTTP 400" and row.failed_since is not None
    with halo_client(halo) as client:
        check = verify_halopsa(engine, client, portal.settings, JULY)
    assert (
        not check.passed and not check.mismatched and len(check.not_exported) == len(outcome.failed)
    )

    halo.backend.table("Item").put(item)  # fixed in HaloPSA
    again = export(engine, halo, portal)
    assert sorted(again.created) == sorted(outcome.failed) and not again.failed
    fixed = exports(engine)[finals[0].id]
    assert fixed.status == "exported" and fixed.error_code is None and fixed.failed_since is None
    assert_once_each(halo, finals)


def test_a_voided_halo_invoice_is_not_created_again(engine, halo, portal, finals):
    created = []

    def crash_first(document, invoice):
        created.append(invoice["id"])
        raise Crash

    with pytest.raises(Crash):
        export(engine, halo, portal, after_create=crash_first)
    with halo_client(halo) as client:
        client.void_invoice(created[0])
    outcome = export(engine, halo, portal)
    assert "was voided in HaloPSA" in outcome.failed[finals[0].invoice_key]
    assert len(halo_invoices(halo)) == len(finals)


def test_held_invoices_wait_until_their_data_is_fixed(engine, halo, portal):
    # The first customer's main-site zip has no tax rate: its invoice goes on hold.
    main_site = next(iter(halo.backend.table("Site").values()))
    zip_code = main_site["delivery_address"]["postcode"].split("-")[0]
    finals = finalized_invoices(engine, halo, portal, skip_zips={zip_code})
    with engine.connect() as c:
        held = c.execute(select(m.invoices).where(m.invoices.c.status == "held")).all()
    assert held
    outcome = export(engine, halo, portal)
    assert outcome.skipped_held == len(held) and outcome.exported == len(finals)
    assert_once_each(halo, finals)

    with engine.begin() as c:
        import_tax_rates(c, f"zip,tax_code,jurisdiction,rate\n{zip_code},TEL,State,0.0625\n")
        compute_drafts(c, portal.settings, JULY)
        finalize_period(c, portal.settings, JULY, today=AFTER_JULY)
        now_final = c.execute(select(m.invoices).where(m.invoices.c.status == "final")).all()
    assert len(now_final) == len(finals) + len(held)
    later = export(engine, halo, portal)
    assert len(later.created) == len(held) and later.skipped_held == 0
    assert_once_each(halo, now_final)
