"""HaloPSA simulator: /api/InvoicePayment and the invoice's payment fields following from it
(docs/halopsa-api.md §A5; the [I] choices are in backend/payments.py)."""

from __future__ import annotations

import httpx
import pytest

from datagate_simulators.halopsa.testing import HaloSim, make_sim


@pytest.fixture
def sim() -> HaloSim:
    return make_sim()


@pytest.fixture
def http(sim: HaloSim):
    with sim.authed_client() as client:
        yield client


@pytest.fixture
def invoice(http: httpx.Client) -> dict:
    client = http.post("/api/Client", json=[{"name": "Acme"}]).json()
    return http.post(
        "/api/Invoice",
        json=[
            {
                "client_id": client["id"],
                "lines": [
                    {"item_shortdescription": "Service", "qty_order": 1, "unit_price": "250.00"}
                ],
            }
        ],
    ).json()


def pay(http: httpx.Client, invoice: dict, amount: str, **fields) -> httpx.Response:
    return http.post(
        "/api/InvoicePayment",
        json=[
            {"invoice_id": invoice["id"], "amount": amount, "date": "2026-08-03T00:00:00", **fields}
        ],
    )


def test_payments_make_the_invoice_part_paid_then_paid(http, invoice):
    assert (invoice["amountdue"], invoice["paymentstatus"]) == (250.0, 0)
    first = pay(http, invoice, "100.00", thirdpartyid="ours-1", method=3)
    assert first.status_code == 201
    assert first.json()["thirdpartyid"] == "ours-1" and first.json()["method"] == 3
    after = http.get(f"/api/Invoice/{invoice['id']}").json()
    assert (after["amountpaid"], after["amountdue"], after["paymentstatus"]) == (100.0, 150.0, 1)
    pay(http, invoice, "150.00")
    after = http.get(f"/api/Invoice/{invoice['id']}").json()
    assert (after["amountpaid"], after["amountdue"], after["paymentstatus"]) == (250.0, 0.0, 2)
    assert after["datepaid"].startswith("2026-08-03")


def test_payments_are_listed_per_invoice_and_deleting_one_reopens_the_invoice(http, invoice):
    paid = pay(http, invoice, "250.00").json()
    listed = http.get("/api/InvoicePayment", params={"invoice_id": invoice["id"]}).json()
    assert [p["id"] for p in listed["invoicepayments"]] == [paid["id"]]
    assert listed["invoicepayments"][0]["client_id"] == invoice["client_id"]
    assert (
        http.get("/api/InvoicePayment", params={"invoice_id": 999}).json()["invoicepayments"] == []
    )
    assert http.delete(f"/api/InvoicePayment/{paid['id']}").status_code == 200
    after = http.get(f"/api/Invoice/{invoice['id']}").json()
    assert (after["amountpaid"], after["amountdue"], after["paymentstatus"]) == (0.0, 250.0, 0)


def test_refused_payments(http, invoice):
    too_much = pay(http, invoice, "250.01")
    assert too_much.status_code == 400 and "amount due" in too_much.text
    assert pay(http, invoice, "0").status_code == 400
    assert pay(http, {"id": 999}, "1.00").status_code == 400  # no such invoice
    http.post(f"/api/Invoice/{invoice['id']}/void", json={})
    voided = pay(http, invoice, "10.00")
    assert voided.status_code == 400 and "voided" in voided.text
    assert http.get("/api/InvoicePayment").json()["invoicepayments"] == []
