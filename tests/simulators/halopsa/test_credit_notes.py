"""Credit notes in the HaloPSA simulator: Invoice records made with `_create_credit_note`
(docs/halopsa-api.md §A4). What the spec leaves open is the simulator's stated choice
(backend/invoices.py, CREDIT_NOTE_FLAG)."""

from __future__ import annotations

import pytest

from datagate_simulators.halopsa.backend.invoices import CREDIT_NOTE_INVOICE_TYPE
from datagate_simulators.halopsa.generator import BaysideDental, bayside_dental
from datagate_simulators.halopsa.testing import make_sim


@pytest.fixture
def sim():
    return make_sim()


@pytest.fixture
def fixture(sim) -> BaysideDental:
    return bayside_dental(sim.backend)


@pytest.fixture
def http(sim):
    with sim.authed_client() as client:
        yield client


def credit(fixture: BaysideDental, **fields):
    return {
        "client_id": fixture.client_id,
        "invoice_date": "2026-08-01",
        "_create_credit_note": True,
        "reference": "Datagate 1003",
        "lines": [{"item_shortdescription": "Credit", "qty_order": 1, "unit_price": 77.01}],
        **fields,
    }


def test_a_credit_note_is_an_invoice_record_listed_only_with_includecredits(http, fixture):
    note = http.post("/api/Invoice", json=[credit(fixture)]).json()
    assert note["invoicetype"] == CREDIT_NOTE_INVOICE_TYPE and note["total"] == 77.01
    assert "_create_credit_note" not in http.get(f"/api/Invoice/{note['id']}").json()
    window = {"start_date": "2026-08-01T00:00:00", "end_date": "2026-08-01T23:59:59"}
    assert http.get("/api/Invoice", params=window).json()["record_count"] == 0
    with_credits = http.get("/api/Invoice", params={**window, "includecredits": "true"}).json()
    assert [row["id"] for row in with_credits["invoices"]] == [note["id"]]
    only_credits = {**window, "includecredits": "true", "includeinvoices": "false"}
    assert http.get("/api/Invoice", params=only_credits).json()["record_count"] == 1


def test_a_linked_credit_note_must_name_an_invoice_of_its_client(http, fixture):
    refused = http.post("/api/Invoice", json=[credit(fixture, creditlinkedtoinvoiceid=999)])
    assert refused.status_code == 400 and "creditlinkedtoinvoiceid" in refused.text
    invoice = http.post(
        "/api/Invoice", json=[{"client_id": fixture.client_id, "invoice_date": "2026-08-01"}]
    ).json()
    linked = http.post(
        "/api/Invoice", json=[credit(fixture, creditlinkedtoinvoiceid=invoice["id"])]
    ).json()
    assert linked["creditlinkedtoinvoiceid"] == invoice["id"]


def test_an_update_does_not_turn_an_invoice_into_a_credit(http, fixture):
    invoice = http.post("/api/Invoice", json=[{"client_id": fixture.client_id}]).json()
    updated = http.post(
        "/api/Invoice", json=[{"id": invoice["id"], "_create_credit_note": True}]
    ).json()
    assert updated["invoicetype"] != CREDIT_NOTE_INVOICE_TYPE
