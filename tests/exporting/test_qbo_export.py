"""Final invoices exported to the QBO simulator: once each, exact, whatever happens.

Real finalized invoices, a real QBOClient, the simulator in-process; SQLite and PostgreSQL.
Crash and re-run safety (issue 5 §4): killed after QBO accepted a batch and before it was
recorded, a 429 storm, a 5xx burst, an access token expiring mid-run, a rotated refresh
token — every time exactly one QBO invoice per final invoice, numbers unchanged.
"""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from datagate_pipelines.exporting.qbo import export_to_qbo
from datagate_pipelines.exporting.qbo_references import link_period_references
from datagate_pipelines.exporting.verify import verify_qbo
from datagate_pipelines.qbo.token_store import TokenCipher, token_store_for
from datagate_pipelines.warehouse import models as m
from tests.exporting.stack import (
    FIRST_REFRESH_TOKEN,
    JULY,
    QBO_CLIENT_ID,
    QBO_SECRET,
    QBO_URL,
    REALM,
    finalized_invoices,
    portal_config,
    qbo_client,
)


class Crash(Exception):
    """Stands for the process dying at the worst moment."""


def run_export(engine, qbo, portal, *, batch_size=30, client=None, **kwargs):
    own = client is None
    client = client or qbo_client(qbo, batch_size=batch_size)
    try:
        references = link_period_references(engine, client, portal.settings, JULY)
        return export_to_qbo(engine, client, portal.settings, JULY, **kwargs), references
    finally:
        if own:
            client.close()


def qbo_invoices(qbo) -> list[dict]:
    return qbo.company.records("Invoice")


def assert_once_each(qbo, finals):
    assert Counter(i["DocNumber"] for i in qbo_invoices(qbo)) == Counter(
        f.doc_number for f in finals
    )


def export_rows(engine):
    with engine.connect() as c:
        return {
            r.invoice_id: r for r in c.execute(select(m.exports).where(m.exports.c.target == "qbo"))
        }


def doc_numbers(engine):
    with engine.connect() as c:
        return dict(c.execute(select(m.invoices.c.id, m.invoices.c.doc_number)).all())


def test_each_final_invoice_once_in_batches_with_our_numbers_and_totals(
    engine, qbo, portal, finals
):
    with qbo_client(qbo, batch_size=4) as client:
        refs = link_period_references(engine, client, portal.settings, JULY)
        assert not any(r.failed for r in refs.values())
        batches = qbo.backend.stats.get(REALM, "batches")
        calls = client.stats.calls
        outcome = export_to_qbo(engine, client, portal.settings, JULY)
        # One lookup query (DocNumber IN …), then one batch per 4 invoices.
        assert client.stats.calls - calls == 1 + math.ceil(len(finals) / 4)
    assert qbo.backend.stats.get(REALM, "batches") - batches == math.ceil(len(finals) / 4)
    assert outcome.counts()["exported"] == len(finals) and not outcome.failed
    assert_once_each(qbo, finals)
    by_number = {i["DocNumber"]: i for i in qbo_invoices(qbo)}
    company = qbo.company
    for final in finals:
        invoice = by_number[final.doc_number]
        assert invoice["TotalAmt"] == final.total
        assert invoice["TxnTaxDetail"]["TotalTax"] == final.tax
        assert (invoice["TxnDate"], invoice["DueDate"]) == ("2026-08-01", "2026-08-31")
        assert invoice["SalesTermRef"]["name"] == "Net 30"
        assert f"[datagate acme:{final.invoice_key}]" in invoice["PrivateNote"]
        customer = company.read("Customer", invoice["CustomerRef"]["value"])
        assert customer["DisplayName"] == final.customer_name
        sales = [x for x in invoice["Line"] if x["DetailType"] == "SalesItemLineDetail"]
        assert sum(x["Amount"] for x in sales) == final.subtotal
        for x in sales:
            detail = x["SalesItemLineDetail"]
            assert detail["Qty"] * detail["UnitPrice"] == x["Amount"]
            assert detail["TaxCodeRef"]["value"] in ("TAX", "NON")
    rows = export_rows(engine)
    assert {(r.status, r.external_number) for r in rows.values()} == {
        ("exported", f.doc_number) for f in finals
    }
    # A re-run asks QBO nothing and creates nothing.
    with qbo_client(qbo) as client:
        again, _ = run_export(engine, qbo, portal, client=client)
        assert client.stats.calls == 0
    assert not again.created and len(again.already) == len(finals)
    with qbo_client(qbo) as client:
        assert verify_qbo(engine, client, portal.settings, JULY).passed


def test_killed_after_qbo_accepted_a_batch_and_before_it_was_recorded(engine, qbo, portal, finals):
    before = doc_numbers(engine)
    batches = []

    def die_on_the_second_batch(chunk, results):
        batches.append([d.invoice_key for d in chunk])
        if len(batches) == 2:
            raise Crash

    with pytest.raises(Crash):
        run_export(engine, qbo, portal, batch_size=3, after_batch=die_on_the_second_batch)
    # QBO has the first two batches (and whatever else was in flight); we recorded one.
    in_qbo = {i["DocNumber"] for i in qbo_invoices(qbo)}
    assert len(in_qbo) >= 6
    assert Counter(r.status for r in export_rows(engine).values()) == {
        "exported": 3,
        "pending": len(finals) - 3,
    }
    outcome, _ = run_export(engine, qbo, portal, batch_size=3)
    assert set(batches[1]) <= set(outcome.found)
    assert len(outcome.found) == len(in_qbo) - 3
    assert len(outcome.created) == len(finals) - len(in_qbo)
    assert_once_each(qbo, finals)
    assert doc_numbers(engine) == before
    assert {r.status for r in export_rows(engine).values()} == {"exported"}


def test_a_replayed_batch_is_not_executed_twice(engine, qbo, portal, finals):
    """With the export rows lost as well (a restore from backup), the lookup still finds
    the invoices; and a batch re-sent with its requestid is answered from QBO's replay."""
    run_export(engine, qbo, portal, batch_size=5)
    with engine.begin() as c:
        c.execute(m.exports.delete())
    outcome, _ = run_export(engine, qbo, portal, batch_size=5)
    assert len(outcome.found) == len(finals) and not outcome.created
    assert_once_each(qbo, finals)


def test_429_storm_5xx_burst_and_an_expired_access_token(engine, qbo, portal, finals):
    faults = qbo.app.state.fault_plan
    # 3 + 2 refusals of one batch request: within the client's 6 attempts.
    faults.fail_next(3, 429, path_prefix=f"/v3/company/{REALM}/batch")
    faults.fail_next(2, 503, path_prefix=f"/v3/company/{REALM}/batch")
    with qbo_client(qbo, batch_size=3) as client:
        # The client holds a token that QBO then expires (batches run concurrently, so
        # expiring it between batches would race with the ones already sent).
        client.tokens.access_token()
        assert qbo.backend.oauth.expire_access_tokens(REALM) == 1
        outcome, _ = run_export(engine, qbo, portal, client=client)
        assert client.stats.rate_limited == 3 and client.stats.server_errors == 2
        assert client.tokens.refreshes == 2  # the first token, and one after it expired
    assert outcome.exported == len(finals) and not outcome.failed
    assert qbo.app.state.request_stats.count(401) >= 1
    assert_once_each(qbo, finals)


def test_a_rotated_refresh_token_is_stored_and_used(engine, qbo, portal, finals, monkeypatch):
    env = {
        "ACME_QBO_CLIENT_ID": QBO_CLIENT_ID,
        "ACME_QBO_CLIENT_SECRET": QBO_SECRET,
        "ACME_QBO_REFRESH_TOKEN": FIRST_REFRESH_TOKEN,
        "DATAGATE_TOKEN_KEY": TokenCipher.generate_key(),
    }
    oauth = qbo.backend.oauth
    oauth.settings.grace = 0  # a rotated-away refresh token dies at once

    def store():
        from datagate_simulators.server import SyncASGITransport

        return token_store_for(portal, engine, environ=env, transport=SyncASGITransport(qbo.app))

    batches = []

    def rotate_then_die(chunk, results):
        batches.append(chunk)
        if len(batches) == 1:  # QBO rotates the refresh token and the access token expires
            oauth.force_rotation(REALM)
            oauth.expire_access_tokens(REALM)
        elif len(batches) == 2:  # …the refresh with the new one happened; now we die
            raise Crash

    with qbo_client(qbo, tokens=store(), batch_size=4) as client, pytest.raises(Crash):
        run_export(engine, qbo, portal, client=client, after_batch=rotate_then_die, parallel=1)
    rotated = oauth.current_refresh_token(REALM)
    assert rotated != FIRST_REFRESH_TOKEN
    assert oauth.refresh_token_state(FIRST_REFRESH_TOKEN)["current"] is False
    # A new process: portals.yaml's token is dead now, the stored one carries on.
    with qbo_client(qbo, tokens=store(), batch_size=4) as client:
        outcome, _ = run_export(engine, qbo, portal, client=client)
        assert client.tokens.current_refresh_token() == oauth.current_refresh_token(REALM)
    assert len(outcome.found) == 4 and outcome.exported == len(finals) - 4
    assert not outcome.failed
    assert_once_each(qbo, finals)


def test_a_refused_invoice_fails_alone_and_is_sent_again_once_fixed(engine, qbo, portal, finals):
    run_export(engine, qbo, portal)  # links everything; then undo the export of 2 invoices
    victim, other = finals[0], finals[1]
    with qbo_client(qbo) as client:
        for final in (victim, other):
            row = export_rows(engine)[final.id]
            client.delete_invoice(row.external_id)
    with engine.begin() as c:
        c.execute(
            update(m.exports)
            .where(m.exports.c.invoice_id.in_([victim.id, other.id]))
            .values(status="pending")
        )
        # The victim's customer link now points at a customer that does not exist.
        c.execute(
            update(m.qbo_entities)
            .where(
                m.qbo_entities.c.entity == "Customer",
                m.qbo_entities.c.local_key == str(victim.customer_id),
            )
            .values(qbo_id="99999")
        )
    first_request_id = export_rows(engine)[victim.id].request_id
    refused, _ = run_export(engine, qbo, portal)
    reason = refused.failed[victim.invoice_key]
    assert "QBO refused" in reason and "99999" in reason
    assert refused.created == [other.invoice_key] or victim.customer_id == other.customer_id
    row = export_rows(engine)[victim.id]
    # Refused: nothing was created, so the next attempt must not replay the refusal.
    assert row.status == "failed" and row.attempts == 1 and row.request_id != first_request_id
    assert row.error_code == "2500" and row.failed_since is not None  # QBO's invalid reference

    with engine.begin() as c:  # fixed: the stale link is dropped and found again by name
        c.execute(m.qbo_entities.delete().where(m.qbo_entities.c.qbo_id == "99999"))
    fixed, refs = run_export(engine, qbo, portal)
    assert refs["Customer"].matched == [str(victim.customer_id)]
    assert fixed.created == [victim.invoice_key]  # not a replay of the refusal
    live = [i for i in qbo_invoices(qbo)]
    assert Counter(i["DocNumber"] for i in live) == Counter(f.doc_number for f in finals)


def test_total_mismatch_and_a_foreign_doc_number_fail_alone_and_are_never_doubled(
    engine, qbo, portal, finals
):
    mine, foreign = finals[0], finals[1]
    with qbo_client(qbo) as client:
        link_period_references(engine, client, portal.settings, JULY)
    customer = qbo.company.find("Customer", DisplayName=mine.customer_name)
    item = qbo.company.records("Item")[0]
    for final, note in ((mine, f"[datagate acme:{mine.invoice_key}]"), (foreign, "by hand")):
        qbo.company.create(
            "Invoice",
            {
                "DocNumber": final.doc_number,
                "CustomerRef": {"value": customer["Id"]},
                "PrivateNote": note,
                "Line": [
                    {
                        "DetailType": "SalesItemLineDetail",
                        "Amount": Decimal("1.00"),
                        "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}},
                    }
                ],
            },
        )
    for _ in range(2):
        outcome, _ = run_export(engine, qbo, portal)
        assert f"totals 1.00, ours {mine.total}" in outcome.failed[mine.invoice_key]
        assert "which Datagate did not create" in outcome.failed[foreign.invoice_key]
        assert_once_each(qbo, finals)
    assert export_rows(engine)[mine.id].external_id is not None
    assert len(outcome.already) == len(finals) - 2
    with qbo_client(qbo) as client:
        check = verify_qbo(engine, client, portal.settings, JULY)
    assert not check.passed and len(check.not_exported) == 2


def test_income_accounts_per_item_group_then_template_then_default(engine, halo):
    """Without nominal codes in HaloPSA (tests/exporting/test_accounts.py has them)."""
    portal = portal_config(
        qbo_url=QBO_URL,
        income_accounts='{"Voice": "Telecom Revenue", "Connectivity": "Connectivity Revenue"}',
    )
    finals = finalized_invoices(engine, halo, portal)
    with engine.begin() as c:
        c.execute(update(m.items).values(nominal_code=None))
        c.execute(update(m.item_groups).values(nominal_code=None))
    from tests.exporting.stack import qbo_sim

    qbo = qbo_sim(
        accounts=[
            {"Name": "Services", "AccountType": "Income"},
            {"Name": "Telecom Revenue", "AccountType": "Income"},
        ]
    )
    outcome, refs = run_export(engine, qbo, portal)
    accounts = {a["Id"]: a["Name"] for a in qbo.company.records("Account")}
    posted = {
        i["Name"]: accounts[i["IncomeAccountRef"]["value"]] for i in qbo.company.records("Item")
    }
    assert posted["Hosted PBX Seat"] == "Telecom Revenue"  # Voice, by group name
    assert posted["Managed Workstation"] == "Services"  # no mapping, no template account
    missing = refs["Item"].failed
    assert missing and all(
        "portal acme" in why and "'Connectivity Revenue' does not exist in QBO" in why
        for why in missing.values()
    )
    assert any("Fiber 100 Mbps" in why for why in missing.values())
    assert outcome.failed and all("have no QBO item" in why for why in outcome.failed.values())
    assert outcome.exported == len(finals) - len(outcome.failed) > 0


def test_customer_names_are_escaped_matched_and_kept_apart(engine, portal, finals):
    """Two of our customers named "O'Brien & Sons: Dental" (a quote to escape, a colon QBO
    refuses). QBO already has that name (colon made a dash) and the second one's distinct
    name: the first is matched by name; the second is kept apart, meets 6240 on its distinct
    name, and is matched to that."""
    first, second = sorted({f.customer_id for f in finals})[:2]
    with engine.begin() as c:
        c.execute(
            update(m.customers)
            .where(m.customers.c.halo_client_id.in_([first, second]))
            .values(name="O'Brien & Sons: Dental")
        )
    from tests.exporting.stack import qbo_sim

    qbo = qbo_sim(
        customers=[
            {"DisplayName": "O'Brien & Sons- Dental"},
            {"DisplayName": f"O'Brien & Sons- Dental ({second})"},
        ]
    )
    company = qbo.company
    seeded = [company.find("Customer", DisplayName=n)["Id"] for n in (
        "O'Brien & Sons- Dental", f"O'Brien & Sons- Dental ({second})")]  # fmt: skip
    outcome, refs = run_export(engine, qbo, portal)
    assert not outcome.failed
    assert sorted(refs["Customer"].matched) == sorted([str(first), str(second)])
    assert str(first) not in refs["Customer"].created
    with engine.connect() as c:
        links = dict(
            c.execute(
                select(m.qbo_entities.c.local_key, m.qbo_entities.c.qbo_id).where(
                    m.qbo_entities.c.entity == "Customer"
                )
            ).all()
        )
    assert [links[str(first)], links[str(second)]] == seeded
    customers = {f.customer_id for f in finals}
    assert len(company.records("Customer")) == len(customers)
    assert_once_each(qbo, finals)
