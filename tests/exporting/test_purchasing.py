"""Suppliers, purchase orders and bills exported to the QBO simulator: once each, exact,
refused with a reason an operator can act on; SQLite and PostgreSQL.

HaloPSA simulator tenant → the ingest's steps → vendors linked → POs and bills exported.
Crash safety as for invoices (tests/exporting/test_qbo_export.py): killed after QBO accepted
a batch and before it was recorded, the export records lost, then re-run — every time one
QBO document per HaloPSA purchase order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter

import pytest
from sqlalchemy import select, update

from datagate_pipelines.exporting.purchasing import export_purchases, select_purchases
from datagate_pipelines.exporting.qbo_references import link_items
from datagate_pipelines.exporting.vendors import link_vendors, load_suppliers, write_vendor_ids
from datagate_pipelines.warehouse import models as m
from datagate_simulators.halopsa.backend.purchasing import PO_STATUS
from datagate_simulators.halopsa.generator import generate_purchasing
from datagate_simulators.server import serve_in_thread
from tests.exporting.stack import (
    FIRST_REFRESH_TOKEN,
    IN_PROCESS_URL,
    JULY,
    PORTAL_YAML,
    QBO_CLIENT_ID,
    QBO_SECRET,
    QBO_URL,
    QBO_YAML,
    REALM,
    halo_client,
    halo_sim,
    ingest,
    ingest_purchasing,
    portal_config,
    qbo_client,
    qbo_sim,
    sections,
)

#: The hardware items linked to QBO items (as an invoice export would have): their PO
#: lines are item-based, every other line account-based.
LINKED_ITEMS = ("Yealink T54W Phone", "Meraki MX68 Firewall")


class Crash(Exception):
    """Stands for the process dying at the worst moment."""


def tenant(engine, *, purchasing: str = "", qbo_extra: str = "", suppliers=10, orders=24):
    halo = halo_sim(customers=6)
    made = generate_purchasing(halo.backend, suppliers=suppliers, purchase_orders=orders, seed=4, as_of=JULY)  # fmt: skip
    portal = portal_config(IN_PROCESS_URL, QBO_URL, purchasing=purchasing, qbo_extra=qbo_extra)
    with halo_client(halo) as client:
        ingest(engine, portal, client)
        ingest_purchasing(engine, portal, client)
    return halo, made, portal


def link_hardware(engine, qbo, portal, halo):
    items = halo.backend.table("Item")
    ids = [r["id"] for r in items.values() if r["name"] in LINKED_ITEMS]
    with qbo_client(qbo) as client:
        outcome = link_items(engine, client, portal.settings, ids)
    assert not outcome.failed
    return ids


def run(engine, qbo, portal, *, batch_size=30, client=None, **kwargs):
    own = client is None
    client = client or qbo_client(qbo, batch_size=batch_size)
    try:
        with engine.connect() as c:
            named = {d.supplier_id for d in select_purchases(c, portal.settings).purchase_orders}
            suppliers = load_suppliers(c, portal.id, also=named)
        vendors = link_vendors(engine, client, portal.settings, suppliers)
        return export_purchases(engine, client, portal.settings, **kwargs), vendors
    finally:
        if own:
            client.close()


def due(engine, portal):
    with engine.connect() as c:
        return select_purchases(c, portal.settings)


def assert_once_each(qbo, engine, portal):
    selection = due(engine, portal)
    company = qbo.company
    orders = Counter(r["PrivateNote"].rsplit("[", 1)[1] for r in company.records("PurchaseOrder"))
    bills = Counter(r["PrivateNote"].rsplit("[", 1)[1] for r in company.records("Bill"))
    assert orders == Counter(f"datagate acme:po:{d.id}]" for d in selection.purchase_orders)
    assert bills == Counter(f"datagate acme:bill:{d.id}]" for d in selection.bills)


def export_rows(engine):
    with engine.connect() as c:
        return {(r.document, r.halo_po_id): r for r in c.execute(select(m.purchasing_exports))}


def test_purchase_orders_and_bills_once_each_on_their_vendors_items_and_accounts(engine):
    halo, _made, portal = tenant(engine)
    qbo = qbo_sim()
    linked = link_hardware(engine, qbo, portal, halo)
    outcome, vendors = run(engine, qbo, portal, batch_size=4)
    assert not vendors.failed and not outcome.purchase_orders.failed and not outcome.bills.failed
    selection = due(engine, portal)
    assert len(selection.purchase_orders) >= 10 and len(selection.bills) >= 4
    assert outcome.counts()["purchase_orders_exported"] == len(selection.purchase_orders)
    assert outcome.counts()["bills_exported"] == len(selection.bills)
    assert_once_each(qbo, engine, portal)

    company = qbo.company
    accounts = {a["Id"]: a for a in company.records("Account")}
    item_links = {str(i["Id"]) for i in company.records("Item")}
    by_note = {r["PrivateNote"].rsplit("[", 1)[1]: r for r in company.records("PurchaseOrder")}
    for document in selection.purchase_orders:
        po = by_note[f"datagate acme:po:{document.id}]"]
        source = halo.backend.get("PurchaseOrder", document.id)
        assert po["DocNumber"] == source["po_ref"] and po["TotalAmt"] == document.total
        assert accounts[po["APAccountRef"]["value"]]["AccountType"] == "Accounts Payable"
        vendor = company.read("Vendor", po["VendorRef"]["value"])
        assert vendor["DisplayName"].startswith(source["supplier_name"])
        for line, ours in zip(po["Line"], source["lines"], strict=True):
            if ours["item_id"] in linked:
                detail = line["ItemBasedExpenseLineDetail"]
                assert detail["ItemRef"]["value"] in item_links
                assert detail["Qty"] * detail["UnitPrice"] == line["Amount"]
            else:
                account = accounts[line["AccountBasedExpenseLineDetail"]["AccountRef"]["value"]]
                assert account["AcctNum"] == ours["accounts_code"]  # 5100, 5900 …
    for bill in company.records("Bill"):
        (link,) = bill["LinkedTxn"]
        po = company.read("PurchaseOrder", link["TxnId"])
        assert (
            po["POStatus"] == "Closed"
            and {"TxnId": bill["Id"], "TxnType": "Bill"} in po["LinkedTxn"]
        )
        assert [x["LinkedTxn"][0]["TxnLineId"] for x in bill["Line"]] == [
            x["Id"] for x in po["Line"]
        ]
        assert bill["TotalAmt"] == po["TotalAmt"] and bill["VendorRef"] == po["VendorRef"]
    supplier_invoices = {d.supplier_invoice for d in selection.bills} - {None}
    assert supplier_invoices and supplier_invoices <= {
        b["DocNumber"] for b in company.records("Bill")
    }
    assert {r.status for r in export_rows(engine).values()} == {"exported"}

    # A re-run creates nothing, and asks QBO nothing.
    with qbo_client(qbo) as client:
        again, vendors = run(engine, qbo, portal, client=client)
        assert client.stats.calls == 0
    assert not again.purchase_orders.created and not again.bills.created
    assert vendors.linked > 0 and not vendors.created
    assert_once_each(qbo, engine, portal)


def test_killed_after_qbo_accepted_a_batch_and_before_it_was_recorded(engine):
    _halo, _made, portal = tenant(engine, orders=30)
    qbo = qbo_sim()
    batches = []

    def die_on_the_second_batch(chunk, results):
        batches.append([d.key for d in chunk])
        if len(batches) == 2:
            raise Crash

    with pytest.raises(Crash):
        run(engine, qbo, portal, batch_size=3, after_batch=die_on_the_second_batch, parallel=1)
    in_qbo = len(qbo.company.records("PurchaseOrder"))
    assert in_qbo == 6 and Counter(r.status for r in export_rows(engine).values())["exported"] == 3
    outcome, _ = run(engine, qbo, portal, batch_size=3)
    assert set(batches[1]) <= set(outcome.purchase_orders.found)
    assert_once_each(qbo, engine, portal)
    # The export records lost too (a restore from backup): the lookups find everything.
    with engine.begin() as c:
        c.execute(m.purchasing_exports.delete())
    outcome, _ = run(engine, qbo, portal, batch_size=3)
    assert not outcome.purchase_orders.created and not outcome.bills.created
    assert len(outcome.purchase_orders.found) == len(due(engine, portal).purchase_orders)
    assert_once_each(qbo, engine, portal)


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from datagate_pipelines.apiclient.retries import RetryPolicy
    from datagate_pipelines.config import parse_portals
    from datagate_pipelines.exporting.purchasing import export_purchases
    from datagate_pipelines.exporting.vendors import link_vendors, load_suppliers
    from datagate_pipelines.qbo.client import QBOClient
    from datagate_pipelines.qbo.oauth import QBOAuthClient, RefreshingTokens
    from datagate_pipelines.warehouse.db import make_engine

    url, qbo_url, realm, yaml = sys.argv[1:5]
    engine = make_engine(url)
    portal = parse_portals(yaml).get("acme")
    oauth = QBOAuthClient("acme", client_id="{client_id}", client_secret="{secret}",
                          token_url=qbo_url + "/oauth2/v1/tokens/bearer")
    client = QBOClient("acme", realm_id=realm, tokens=RefreshingTokens(oauth, "{token}"),
                       base_url=qbo_url, batch_size=3, rate_limit=None, max_concurrent=None,
                       retry=RetryPolicy(sleep=lambda _s: None))
    with engine.connect() as c:
        suppliers = load_suppliers(c, "acme")
    link_vendors(engine, client, portal.settings, suppliers)
    answered = []

    def die(chunk, results):
        answered.append(chunk)
        if len(answered) == 3:
            os.kill(os.getpid(), signal.SIGKILL)

    export_purchases(engine, client, portal.settings, after_batch=die, parallel=1)
    """
).format(client_id=QBO_CLIENT_ID, secret=QBO_SECRET, token=FIRST_REFRESH_TOKEN)


@pytest.mark.slow
def test_a_process_killed_with_sigkill_mid_export_loses_nothing_and_doubles_nothing(
    engine, engine_url
):
    """A real kill: the export runs in a child process against the simulator on loopback
    and is SIGKILLed right after QBO answered its third batch."""
    _halo, _made, portal = tenant(engine, orders=30)
    qbo = qbo_sim()
    with serve_in_thread(qbo.app) as server:
        qbo_section = QBO_YAML.format(realm=REALM, qbo=server.base_url, income_accounts="{}")
        text = PORTAL_YAML.format(halo=IN_PROCESS_URL, qbo=qbo_section + sections(""))
        child = subprocess.run(
            [sys.executable, "-c", CHILD, engine_url, server.base_url, REALM, text],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ},
        )
        assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert len(qbo.company.records("PurchaseOrder")) == 9
    assert Counter(r.status for r in export_rows(engine).values())["exported"] == 6
    outcome, _ = run(engine, qbo, portal)
    assert len(outcome.purchase_orders.found) == 3
    assert_once_each(qbo, engine, portal)


def test_each_bad_document_fails_alone_with_its_reason(engine):
    _halo, _made, portal = tenant(engine, purchasing="      currencies: {2: EUR}", qbo_extra="")
    qbo = qbo_sim()
    selection = due(engine, portal)
    orders = selection.purchase_orders
    unknown_supplier, unknown_item, foreign, unmapped = orders[0], orders[1], orders[2], orders[3]
    with engine.begin() as c:
        # A supplier gone from HaloPSA's list; an item the warehouse lost; a line on an
        # account code the chart does not have; an order in euros.
        c.execute(
            update(m.halo_suppliers)
            .where(m.halo_suppliers.c.halo_id == unknown_supplier.supplier_id)
            .values(deleted_at=m.halo_suppliers.c.last_seen_at)
        )
        item_line = next(x for x in unknown_item.lines if x.item_id is not None)
        c.execute(m.items.delete().where(m.items.c.halo_id == item_line.item_id))
        c.execute(
            update(m.halo_purchase_order_lines)
            .where(
                m.halo_purchase_order_lines.c.purchase_order_id == unmapped.id,
                m.halo_purchase_order_lines.c.line_no == unmapped.lines[0].line_no,
            )
            .values(nominal_code="5999", item_id=None)
        )
        c.execute(
            update(m.halo_purchase_orders)
            .where(m.halo_purchase_orders.c.halo_id == foreign.id)
            .values(currency_code=2)
        )
    outcome, _ = run(engine, qbo, portal)
    failed = outcome.purchase_orders.failed
    assert (
        f"supplier {unknown_supplier.supplier_id} is not in the warehouse"
        in failed[unknown_supplier.key]
    )
    assert f"HaloPSA item {item_line.item_id} is not in the warehouse" in failed[unknown_item.key]
    assert "it is in EUR" in failed[foreign.key] and "multi-currency off" in failed[foreign.key]
    assert "nominal code 5999" in failed[unmapped.key]
    assert "qbo.nominal_accounts" in failed[unmapped.key]
    # The others (every order not touched by one of these faults) went on.
    created = {r["PrivateNote"].rsplit("[", 1)[1] for r in qbo.company.records("PurchaseOrder")}
    assert created == {f"datagate acme:{d.key}]" for d in orders if d.key not in failed}
    assert len(created) >= 5
    rows = export_rows(engine)
    assert rows[("purchase_order", unmapped.id)].status == "failed"
    assert "nominal code 5999" in rows[("purchase_order", unmapped.id)].last_error

    # Fixed: the code mapped by name, the euro order into a multi-currency company.
    fixed = portal_config(
        IN_PROCESS_URL,
        QBO_URL,
        purchasing="      currencies: {2: EUR}",
        qbo_extra='      nominal_accounts: {"5999": "Freight and Delivery"}\n',
    )
    again, _ = run(engine, qbo, fixed)
    assert unmapped.key in again.purchase_orders.created
    assert unknown_supplier.key in again.purchase_orders.failed


def test_an_order_in_another_currency_goes_to_a_multi_currency_company(engine):
    _halo, _made, portal = tenant(engine, purchasing="      currencies: {2: EUR}")
    qbo = qbo_sim(multi_currency=True)
    foreign = due(engine, portal).purchase_orders[0]
    with engine.begin() as c:
        c.execute(
            update(m.halo_purchase_orders)
            .where(m.halo_purchase_orders.c.halo_id == foreign.id)
            .values(currency_code=2)
        )
    with qbo_client(qbo) as client:
        with engine.connect() as c:
            suppliers = load_suppliers(c, portal.id)
        link_vendors(engine, client, portal.settings, suppliers)
    vendor_id = qbo.company.find("Vendor", DisplayName=foreign.supplier_name)["Id"]
    qbo.company.update(
        "Vendor",
        {"Id": vendor_id, "SyncToken": "0", "CurrencyRef": {"value": "EUR"}, "sparse": True},
    )
    outcome, _ = run(engine, qbo, portal)
    assert foreign.key in outcome.purchase_orders.created
    euro = [p for p in qbo.company.records("PurchaseOrder") if p["CurrencyRef"]["value"] == "EUR"]
    assert [p["DocNumber"] for p in euro] == [foreign.doc_number]


def test_statuses_follow_the_portals_mapping_and_a_cancelled_export_is_reported(engine):
    halo, _made, portal = tenant(engine)
    qbo = qbo_sim()
    first, _ = run(engine, qbo, portal)
    exported = first.purchase_orders.created[0]
    po_id = int(exported.split(":")[1])
    record = halo.backend.table("PurchaseOrder").get(po_id)
    halo.backend.replace_record("PurchaseOrder", {**record, "status": PO_STATUS["cancelled"]})
    other = next(
        r for r in halo.backend.table("PurchaseOrder").values() if r["status"] == PO_STATUS["draft"]
    )
    halo.backend.replace_record("PurchaseOrder", {**other, "status": 9})
    with halo_client(halo) as client:
        ingest_purchasing(engine, portal, client)
    second, _ = run(engine, qbo, portal)
    assert any(f"purchase order {po_id} was cancelled" in w for w in second.warnings)
    assert any(f"purchase order {other['id']}: HaloPSA status 9" in w for w in second.warnings)
    assert second.counts()["unmapped_statuses"] == 1
    # Mapped by the portal, status 9 means "sent": exported.
    mapped = portal_config(
        IN_PROCESS_URL,
        QBO_URL,
        purchasing="      statuses: {0: draft, 2: approved, 3: sent, 4: received, 5: closed, 6: cancelled, 9: sent}",
    )
    third, _ = run(engine, qbo, mapped)
    assert f"po:{other['id']}" in third.purchase_orders.created


def test_a_bill_whose_link_qbo_dropped_fails_with_its_id_and_is_never_created_again(engine):
    """§B3: QBO has been seen to create a Bill and drop an invalid link without an error.
    Such a bill is ours (found by its marker) but not what we sent: recorded as failed,
    with its QBO id, and never created twice."""
    _halo, _made, portal = tenant(engine)
    qbo = qbo_sim()
    run(engine, qbo, portal)
    victim = due(engine, portal).bills[0]
    bill = next(b for b in qbo.company.records("Bill") if f":{victim.key}]" in b["PrivateNote"])
    with engine.begin() as c:  # as if the answer had been lost …
        c.execute(
            m.purchasing_exports.delete().where(
                m.purchasing_exports.c.document == "bill",
                m.purchasing_exports.c.halo_po_id == victim.id,
            )
        )
    qbo.company.live("Bill", bill["Id"])["LinkedTxn"] = []  # … and the link dropped
    for _ in range(2):
        again, _ = run(engine, qbo, portal)
        reason = again.bills.failed[victim.key]
        assert "is not linked to PurchaseOrder" in reason and "link it in QBO" in reason
        assert not again.bills.created
    row = export_rows(engine)[("bill", victim.id)]
    assert row.status == "failed" and row.external_id == bill["Id"]
    assert_once_each(qbo, engine, portal)


def test_suppliers_become_vendors_once_with_a_suffix_where_the_name_is_taken(engine):
    halo, made, portal = tenant(engine, purchasing="      write_vendor_ids: true", orders=0)
    qbo = qbo_sim(customers=[{"DisplayName": "Ingram Distribution"}])
    qbo.company.create("Employee", {"DisplayName": "Pax8 Cloud"})
    with engine.begin() as c:
        names = ["Ingram Distribution", "Pax8 Cloud", "O'Brien & Sons: Supply"]
        for sid, name in zip(made.supplier_ids, names, strict=False):
            c.execute(
                update(m.halo_suppliers).where(m.halo_suppliers.c.halo_id == sid).values(name=name)
            )
    # A vendor made by a run killed before its link was stored: matched, not doubled.
    qbo.company.create("Vendor", {"DisplayName": "O'Brien & Sons- Supply"})
    with engine.connect() as c:
        suppliers = load_suppliers(c, portal.id)
    with qbo_client(qbo) as client:
        outcome = link_vendors(engine, client, portal.settings, suppliers)
    # Found by name (1), and given the supplier suffix after 6240 (2); the rest created.
    assert not outcome.failed and len(outcome.matched) == 3
    assert len(outcome.created) == len(suppliers) - 3
    first, second, third = made.supplier_ids[:3]
    with engine.connect() as c:
        links = {
            r.local_key: r
            for r in c.execute(select(m.qbo_entities).where(m.qbo_entities.c.entity == "Vendor"))
        }
    assert links[str(first)].name == f"Ingram Distribution (supplier {first})"
    assert links[str(second)].name == f"Pax8 Cloud (supplier {second})"
    assert links[str(third)].name == "O'Brien & Sons- Supply"
    vendors = qbo.company.records("Vendor")
    assert len(vendors) == len(suppliers)
    with qbo_client(qbo) as client:
        again = link_vendors(engine, client, portal.settings, suppliers)
        assert client.stats.calls == 0
    assert again.linked == len(suppliers) and not again.created

    # Written back to HaloPSA's accounts_id, once.
    with halo_client(halo) as client:
        written = write_vendor_ids(engine, client, portal.settings)
        assert len(written.written) == len(suppliers) and not written.failed
        assert write_vendor_ids(engine, client, portal.settings).written == []
    assert halo.backend.get("Supplier", first)["accounts_id"] == links[str(first)].qbo_id
    with halo_client(halo) as client:
        reads, _ = ingest_purchasing(engine, portal, client)
        # accounts_id is a detail field: the stored detail was updated with it.
        assert reads.read == 0
        assert write_vendor_ids(engine, client, portal.settings).written == []
