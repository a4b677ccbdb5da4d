"""HaloPSA simulator: suppliers and purchase orders over HTTP, in-process.

docs/halopsa-api.md §A1 (Supplier, schema Company), §A2 (PurchaseOrder); what the spec leaves
open is the simulator's choice, in one place (backend/purchasing.py), marked [I].
"""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from datagate_simulators.halopsa.backend.purchasing import (
    GOODS_IN,
    PO_LINE_QUANTITY,
    PO_LINE_UNIT_COST,
    PO_STATUS,
)
from datagate_simulators.halopsa.generator import (
    ensure_catalog,
    generate_purchasing,
    generate_tenant,
)
from datagate_simulators.halopsa.testing import HaloSim, make_sim


@pytest.fixture
def sim() -> HaloSim:
    return make_sim()


@pytest.fixture
def http(sim: HaloSim):
    with sim.authed_client() as client:
        yield client


def supplier(http: httpx.Client, **fields) -> dict:
    response = http.post("/api/Supplier", json=[{"name": "Ingram Micro", **fields}])
    assert response.status_code == 201
    return response.json()


def test_supplier_lists_are_a_bare_array_unless_paged(http):
    """§A1 [C] SPEC25 wrapper key `suppliers`; [I] PROV reads a bare array from
    `GET Supplier?count=200`."""
    supplier(http)
    assert isinstance(http.get("/api/Supplier", params={"count": 200}).json(), list)
    paged = http.get("/api/Supplier", params={"pageinate": "true", "page_size": 50}).json()
    assert paged["record_count"] == 1 and paged["suppliers"][0]["name"] == "Ingram Micro"


def test_supplier_list_rows_lack_detail_fields_and_any_change_stamp(http):
    """§A1 [C] SPEC25: Company_List has no accounts_id, address, notes, last_modified or
    purchase_tax_code; GET /Supplier/{id} has them."""
    created = supplier(http, accounts_id="V-1", address="1 Main St\nAustin", notes="net 30")
    row = http.get("/api/Supplier").json()[0]
    for hidden in ("accounts_id", "address", "notes", "last_modified", "purchase_tax_code"):
        assert hidden not in row
    detail = http.get(f"/api/Supplier/{created['id']}").json()
    assert (detail["accounts_id"], detail["address"]) == ("V-1", "1 Main St\nAustin")
    assert detail["last_modified"]


def test_a_supplier_needs_a_name(http):
    """§A1: `name` is the one field a supplier cannot do without."""
    response = http.post("/api/Supplier", json=[{"email_address": "a@b.example"}])
    assert response.status_code == 400 and "name" in response.text


def test_purchase_order_lines_take_the_items_cost_and_purchase_nominal_code(sim, http):
    """§A2: the unconfirmed quantity and unit-cost names are the simulator's choice [I];
    the server computes net_total, total_tax, total_price and the header's totals."""
    catalog = ensure_catalog(sim.backend)
    vendor = supplier(http)
    body = {
        "supplier_id": vendor["id"],
        "status": PO_STATUS["approved"],
        "carriage_price": 10,
        "lines": [
            {"item_id": catalog.items["Yealink T54W Phone"], PO_LINE_QUANTITY: 3},
            {
                "name": "Freight",
                PO_LINE_QUANTITY: 1,
                PO_LINE_UNIT_COST: 25.5,
                "accounts_code": "5900",
            },
        ],
    }
    po = http.post("/api/PurchaseOrder", json=[body]).json()
    phone, freight = po["lines"]
    assert (phone["name"], phone[PO_LINE_UNIT_COST], phone["accounts_code"]) == (
        "Yealink T54W Phone",
        121.0,
        "5100",
    )
    assert (phone["net_total"], freight["net_total"]) == (363.0, 25.5)
    assert (po["price"], po["total"], po["po_ref"]) == (388.5, 398.5, "PO00001")
    assert po["supplier_name"] == "Ingram Micro"
    unknown = {**body, "lines": [{"item_id": 999, PO_LINE_QUANTITY: 1}]}
    assert http.post("/api/PurchaseOrder", json=[unknown]).status_code == 400
    assert http.post("/api/PurchaseOrder", json=[{**body, "supplier_id": 999}]).status_code == 400


def test_purchase_order_list_rows_are_full_objects_and_filter_by_status(sim, http):
    """§A2 [C] SPEC25: `purchaseorders` carries full SupplierOrderHeader objects; the list
    takes `po_status` (comma-separated) and `supplier_id`."""
    vendor = supplier(http)
    for status in ("draft", "sent"):
        http.post("/api/PurchaseOrder", json=[{"supplier_id": vendor["id"], "status": PO_STATUS[status],
                                                "lines": [{"name": "x", PO_LINE_QUANTITY: 1, PO_LINE_UNIT_COST: 2}]}])  # fmt: skip
    listed = http.get("/api/PurchaseOrder", params={"pageinate": "true"}).json()["purchaseorders"]
    assert all(row["lines"] for row in listed)
    sent = http.get("/api/PurchaseOrder", params={"po_status": str(PO_STATUS["sent"])}).json()
    assert [row["status"] for row in sent["purchaseorders"]] == [PO_STATUS["sent"]]


def test_goods_in_and_supplier_invoices_tie_to_the_purchase_order(sim, http):
    """§A2 [C] HTS confirmreceipt; InvoiceHeader.purchaseorder_id/supplier_id tie a supplier
    invoice to its PO, listed only with includepoinvoices or purchaseorder_id [I]."""
    vendor = supplier(http)
    po = http.post("/api/PurchaseOrder", json=[{"supplier_id": vendor["id"], "status": PO_STATUS["sent"],
                                                 "lines": [{"name": "x", PO_LINE_QUANTITY: 2, PO_LINE_UNIT_COST: 5}]}]).json()  # fmt: skip
    line = po["lines"][0]["id"]
    partial = http.post(
        "/api/PurchaseOrder/confirmreceipt",
        json={"id": po["id"], "lines": [{"id": line, "quantity_received": 1}]},
    ).json()
    assert partial["goodsin_status"] == GOODS_IN["partial"]
    received = http.post("/api/PurchaseOrder/confirmreceipt", json={"id": po["id"]}).json()
    assert received["goodsin_status"] == GOODS_IN["received"]
    http.post("/api/Invoice", json=[{"supplier_id": vendor["id"], "purchaseorder_id": po["id"],
                                     "thirdpartyinvoicenumber": "SI-77"}])  # fmt: skip
    invoices = http.get(f"/api/PurchaseOrder/{po['id']}").json()["invoices"]
    assert [i["thirdpartyinvoicenumber"] for i in invoices] == ["SI-77"]
    assert http.get("/api/Invoice").json()["invoices"] == []
    assert (
        len(http.get("/api/Invoice", params={"includepoinvoices": "true"}).json()["invoices"]) == 1
    )
    assert (
        http.post("/api/Invoice", json=[{"thirdpartyinvoicenumber": "orphan"}]).status_code == 400
    )


def test_the_generator_makes_the_same_suppliers_and_orders_for_the_same_seed():
    """Deterministic, and it leaves a tenant's customers as they were; every status and
    some supplier names taken by clients (a QBO DisplayName clash)."""
    first, second = make_sim(), make_sim()
    for each in (first, second):
        generate_tenant(each.backend, customers=40, seed=5, as_of=date(2026, 7, 1))
    before = [c["name"] for c in first.backend.table("Client").values()]
    made = [generate_purchasing(s.backend, suppliers=120, purchase_orders=80, seed=5, as_of=date(2026, 7, 1)) for s in (first, second)]  # fmt: skip
    assert made[0].counts == made[1].counts and made[0].counts["supplier_invoices"] > 0
    assert [c["name"] for c in first.backend.table("Client").values()] == before
    orders = [first.backend.get("PurchaseOrder", i) for i in made[0].purchase_order_ids]
    assert orders == [second.backend.get("PurchaseOrder", i) for i in made[1].purchase_order_ids]
    assert {o["status"] for o in orders} == set(PO_STATUS.values())
    names = {s["name"] for s in first.backend.table("Supplier").values()}
    assert names & set(before)
