"""HaloPSA simulator: upserts, child-array replacement, data conventions.

docs/halopsa-api.md §2, §4.
"""

from __future__ import annotations

import re

import httpx
import pytest

from datagate_simulators.halopsa import NO_DATE
from datagate_simulators.halopsa.generator import BaysideDental, bayside_dental
from datagate_simulators.halopsa.testing import HaloSim, make_sim

HALO_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?$")


@pytest.fixture
def sim() -> HaloSim:
    return make_sim()


@pytest.fixture
def fixture(sim: HaloSim) -> BaysideDental:
    return bayside_dental(sim.backend)


@pytest.fixture
def http(sim: HaloSim):
    with sim.authed_client() as client:
        yield client


# ---------------------------------------------------------------- create / update


def test_post_one_element_array_creates_and_answers_201_with_the_object(http: httpx.Client) -> None:
    """§2 [C] SPEC25: 201 Created with the single object for a one-element array."""
    response = http.post("/api/Client", json=[{"name": "Acme Telecom"}])
    assert response.status_code == 201
    body = response.json()
    assert isinstance(body, dict) and body["id"] > 0 and body["name"] == "Acme Telecom"
    assert http.get(f"/api/Client/{body['id']}").json()["name"] == "Acme Telecom"


def test_post_batch_answers_an_array(http: httpx.Client) -> None:
    """§2 [I] PYH: several elements → an array back, in the order sent."""
    body = http.post("/api/Client", json=[{"name": "A"}, {"id": 0, "name": "B"}]).json()
    assert [c["name"] for c in body] == ["A", "B"]
    assert body[0]["id"] < body[1]["id"]


def test_update_changes_only_the_fields_sent(http: httpx.Client) -> None:
    """§2 [I] N8N: partial updates post id + changed fields."""
    created = http.post(
        "/api/Client", json=[{"name": "Acme", "website": "acme.example", "accountsid": "C-1"}]
    ).json()
    updated = http.post("/api/Client", json=[{"id": created["id"], "website": "acme.test"}]).json()
    assert (updated["name"], updated["website"], updated["accountsid"]) == (
        "Acme",
        "acme.test",
        "C-1",
    )


def test_write_only_flags_are_not_stored(http: httpx.Client) -> None:
    body = http.post(
        "/api/Client", json=[{"name": "X", "_isimport": True, "_validateonly": False}]
    ).json()
    assert "_isimport" not in body and "_validateonly" not in body


def test_custom_fields_are_replaced_whole(
    sim: HaloSim, http: httpx.Client, fixture: BaysideDental
) -> None:
    """§2/§4.9 [C] HAPI #13: posting a subset of customfields clears the ones left out."""
    client_id = fixture.client_id
    http.post(
        "/api/Client",
        json=[
            {
                "id": client_id,
                "customfields": [
                    {"name": "CFDatagate", "value": True},
                    {"name": "CFBillingNotes", "value": "net 15"},
                ],
            }
        ],
    )
    fields = {cf["name"]: cf for cf in http.get(f"/api/Client/{client_id}").json()["customfields"]}
    assert fields["CFBillingNotes"]["value"] == "net 15"
    http.post(
        "/api/Client",
        json=[
            {
                "id": client_id,
                "customfields": [{"id": fixture.catalog.datagate_field_id, "value": True}],
            }
        ],
    )
    fields = {cf["name"]: cf for cf in http.get(f"/api/Client/{client_id}").json()["customfields"]}
    assert fields["CFBillingNotes"]["value"] == ""
    assert (fields["CFDatagate"]["value"], fields["CFDatagate"]["display"]) == (True, "Yes")
    # Posting without customfields leaves them alone.
    http.post("/api/Client", json=[{"id": client_id, "notes": "hi"}])
    assert {
        cf["name"]: cf["value"]
        for cf in http.get(f"/api/Client/{client_id}").json()["customfields"]
    }["CFDatagate"] is True


def test_custom_field_objects_have_halo_shape(http: httpx.Client, fixture: BaysideDental) -> None:
    """§4.9 [C] REAL-RI: id, name (CF…), label, type, value, display, usage."""
    fields = {
        cf["name"]: cf
        for cf in http.get(f"/api/Client/{fixture.other_client_id}").json()["customfields"]
    }
    datagate = fields["CFDatagate"]
    assert {k: datagate[k] for k in ("label", "type", "value", "display", "usage")} == {
        "label": "Datagate",
        "type": 6,
        "value": False,
        "display": "No",
        "usage": 2,
    }
    assert (
        fields["CFCustomerType"]["value"] == -1 and fields["CFCustomerType"]["display"] == ""
    )  # single select unset


def test_custom_field_values_by_name_with_or_without_prefix_and_option_names(
    http: httpx.Client, fixture: BaysideDental
) -> None:
    """§4.9 [R]: values are addressable by name; selection values by option id or name."""
    http.post(
        "/api/Client",
        json=[
            {
                "id": fixture.client_id,
                "customfields": [
                    {"name": "Datagate", "value": "Yes"},
                    {"name": "CFCustomerType", "value": "Telecom"},
                ],
            }
        ],
    )
    fields = {
        cf["name"]: cf for cf in http.get(f"/api/Client/{fixture.client_id}").json()["customfields"]
    }
    assert fields["CFDatagate"]["value"] is True
    assert fields["CFCustomerType"]["display"] == "Telecom" and isinstance(
        fields["CFCustomerType"]["value"], int
    )
    response = http.post(
        "/api/Client",
        json=[{"id": fixture.client_id, "customfields": [{"name": "CFNope", "value": 1}]}],
    )
    assert response.status_code == 400 and "[0].customfields[0]" in response.json()


def test_fieldinfo_usage_2_adds_a_client_field_with_cf_prefix(
    http: httpx.Client, fixture: BaysideDental
) -> None:
    """§4.9 [I]: usage 2 = client field; the stored name gets the CF prefix."""
    created = http.post(
        "/api/FieldInfo",
        json=[{"usage": 2, "name": "PortalCode", "label": "Portal code", "type": 0}],
    ).json()
    assert created["name"] == "CFPortalCode"
    client = http.post(
        "/api/Client",
        json=[{"id": fixture.client_id, "customfields": [{"id": created["id"], "value": "acme"}]}],
    ).json()
    assert {cf["name"]: cf["value"] for cf in client["customfields"]}["CFPortalCode"] == "acme"
    assert (
        http.post("/api/FieldInfo", json=[{"usage": 2, "name": "Portal Code!"}]).status_code == 400
    )
    assert (
        http.post("/api/FieldInfo", json=[{"usage": 2, "name": "CFPortalCode"}]).status_code == 400
    )  # exists
    clients_fields = http.get("/api/FieldInfo", params={"typeid": 2}).json()
    assert {f["name"] for f in clients_fields} == {
        "CFDatagate",
        "CFCustomerType",
        "CFBillingNotes",
        "CFPortalCode",
    }


# ---------------------------------------------------------------- recurring invoices


def test_recurring_invoice_ids_are_negative_and_lines_point_back(
    http: httpx.Client, fixture: BaysideDental
) -> None:
    """§2/§4.4 [C] REAL-RI: negative header ids; ihid on lines = the header id; period 2."""
    body = http.get(f"/api/RecurringInvoice/{fixture.recurring_invoice_id}").json()
    assert body["id"] < 0 and body["period"] == 2 and body["use"] == "invoice"
    assert {line["ihid"] for line in body["lines"]} == {body["id"]}
    created = http.post(
        "/api/RecurringInvoice", json=[{"client_id": fixture.client_id, "lines": []}]
    ).json()
    assert created["id"] < body["id"]


def test_line_conventions(http: httpx.Client, fixture: BaysideDental) -> None:
    """§2/§4.4 [C] REAL-RI: tax_code a string id, -1 for no contract/site, 1899 sentinel dates."""
    lines = http.get(f"/api/RecurringInvoice/{fixture.recurring_invoice_id}").json()["lines"]
    discount = next(line for line in lines if line["unit_price"] < 0)
    assert discount["startdate"] == NO_DATE and discount["enddate"] == NO_DATE
    assert discount["contract_id"] == -1 and discount["site"] == -1
    assert all(isinstance(line["tax_code"], str) for line in lines)
    assert all(isinstance(line["item_tax_code"], int) for line in lines)
    assert [line["sequenceid"] for line in lines] == [1, 2, 3, 4, 5, 6]
    seats = lines[0]
    assert seats["item_shortdescription"] == "Hosted PBX Seat" and seats["qty_order"] == 12.0
    assert seats["net_amount"] == round(12 * 24.95, 2)
    assert seats["tax_amount"] == round(seats["net_amount"] * seats["tax_rate"] / 100, 2)


def test_lines_are_replaced_whole_and_kept_lines_keep_their_ids(
    http: httpx.Client, fixture: BaysideDental
) -> None:
    """§2 [R] REAL-RI script: send every line back; lines left out are removed."""
    header = http.get(f"/api/RecurringInvoice/{fixture.recurring_invoice_id}").json()
    first, second = header["lines"][0], header["lines"][1]
    body = http.post(
        "/api/RecurringInvoice",
        json=[
            {
                "id": header["id"],
                "lines": [
                    {**first, "qty_order": 15},
                    {"id": second["id"]},
                    {"_itemid": first["_itemid"], "qty_order": 1},
                ],
            }
        ],
    ).json()
    assert [line["id"] for line in body["lines"][:2]] == [first["id"], second["id"]]
    assert body["lines"][2]["id"] not in {line["id"] for line in header["lines"]}
    assert (
        body["lines"][0]["qty_order"] == 15.0 and body["lines"][1]["_itemid"] == second["_itemid"]
    )
    assert len(http.get(f"/api/RecurringInvoice/{header['id']}").json()["lines"]) == 3
    assert body["total"] == round(
        sum(line["total_price"] for line in body["lines"] if not line["isinactive"]), 2
    )
    # Leaving lines out of the post entirely keeps them.
    assert (
        len(
            http.post(
                "/api/RecurringInvoice", json=[{"id": header["id"], "reference": "x"}]
            ).json()["lines"]
        )
        == 3
    )


def test_validation_errors_are_keyed_by_path(http: httpx.Client, fixture: BaysideDental) -> None:
    """§5 [C] N8N: 400 {"[0].field": ["message"]}; nothing is written."""
    before = http.get("/api/Client").json()["record_count"]
    response = http.post("/api/Client", json=[{"name": "ok"}, {"notes": "no name"}])
    assert response.status_code == 400 and list(response.json()) == ["[1].name"]
    assert http.get("/api/Client").json()["record_count"] == before
    response = http.post(
        "/api/RecurringInvoice",
        json=[{"client_id": fixture.client_id, "lines": [{"_itemid": 1, "qty_order": "lots"}]}],
    )
    assert response.status_code == 400 and "[0].lines[0].qty_order" in response.json()
    assert http.post("/api/Site", json=[{"name": "x", "client_id": 99999}]).json() == {
        "[0].client_id": ["Client 99999 does not exist."]
    }
    assert http.post("/api/Client", json={"name": "not an array"}).status_code == 400
    assert (
        http.post(
            "/api/Client", content=b"{oops", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )
    assert http.post("/api/Client", json=[{"id": 424242, "name": "ghost"}]).status_code == 400


def test_numeric_strings_are_accepted(http: httpx.Client, fixture: BaysideDental) -> None:
    body = http.post(
        "/api/RecurringInvoice",
        json=[
            {"client_id": str(fixture.client_id), "lines": [{"_itemid": "1", "qty_order": "2.5"}]}
        ],
    ).json()
    assert body["lines"][0]["qty_order"] == 2.5


# ---------------------------------------------------------------- sites, contracts, items


def test_site_client_id_is_a_double(http: httpx.Client, fixture: BaysideDental) -> None:
    """§2 [C] PANO: GET /api/Site returns "client_id": 21.0."""
    raw = http.get(f"/api/Site/{fixture.main_site_id}").text
    assert f'"client_id":{float(fixture.client_id)}' in raw
    site = http.get(f"/api/Site/{fixture.main_site_id}").json()
    assert (
        site["delivery_address"]["postcode"] == "94107"
        and site["invoice_address"]["postcode"] == "94107"
    )
    assert site["clientsite_name"] == "Bayside Dental / Main"
    assert (
        http.get(f"/api/Client/{fixture.client_id}").json()["main_site_id"] == fixture.main_site_id
    )


def test_contract_type_fields(sim: HaloSim, http: httpx.Client, fixture: BaysideDental) -> None:
    """§4.3 [C]: contracttype (id) + contracttype_name; no plain `type`."""
    contract = http.get(f"/api/ClientContract/{fixture.contract_id}").json()
    assert contract["contracttype_name"] == "Telecom" and "type" not in contract
    assert (
        contract["started"] is True
        and contract["expired"] is False
        and contract["end_date"] == NO_DATE
    )
    assert (
        http.post(
            "/api/ClientContract", json=[{"client_id": fixture.client_id, "contracttype": 77}]
        ).status_code
        == 400
    )
    ended = http.post(
        "/api/ClientContract",
        json=[
            {
                "client_id": fixture.client_id,
                "start_date": "2020-01-01T00:00:00Z",
                "end_date": "2021-01-01",
                "active": False,
            }
        ],
    ).json()
    assert ended["expired"] is True and ended["start_date"] == "2020-01-01T00:00:00"
    listed = http.get("/api/ClientContract", params={"client_id": fixture.client_id}).json()
    assert [c["id"] for c in listed["contracts"]] == [
        fixture.contract_id
    ]  # inactive hidden by default
    assert (
        http.get(
            "/api/ClientContract",
            params={"client_id": fixture.client_id, "includeinactive": "true"},
        ).json()["record_count"]
        == 2
    )


def test_item_takes_its_asset_group_defaults(http: httpx.Client, fixture: BaysideDental) -> None:
    """§4.6/§4.7: items belong to an asset group ("Use for Items") with a sales tax default."""
    voice = fixture.catalog.asset_groups["Voice"]
    item = http.post(
        "/api/Item", json=[{"name": "Fax to Email", "assetgroup_id": voice, "baseprice": 3}]
    ).json()
    assert (
        item["assetgroup_name"] == "Voice"
        and item["taxcode_name"] == "Telecom Excise"
        and item["isrecurringitem"] is True
    )
    assert http.post("/api/Item", json=[{"name": "x", "assetgroup_id": 999}]).status_code == 400


def test_timestamps_are_naive_with_variable_fraction(sim: HaloSim, http: httpx.Client) -> None:
    """§6 [C] REAL-RI: no zone suffix, up to 3 fractional digits."""
    client = http.post(
        "/api/Client", json=[{"name": "Stamped", "datecreated": "2023-02-07T17:26:35.480Z"}]
    ).json()
    assert client["datecreated"] == "2023-02-07T17:26:35.48"
    item = http.post("/api/Item", json=[{"name": "Widget"}]).json()
    assert HALO_STAMP.match(item["lastmodified"]) and HALO_STAMP.match(item["datecreated"])


# ---------------------------------------------------------------- invoices


def test_invoice_create_computes_totals_and_keeps_references(
    http: httpx.Client, fixture: BaysideDental
) -> None:
    """§4.5 [I]: the server works out net, tax and totals; reference kept for look-up."""
    items = fixture.catalog.items
    invoice = http.post(
        "/api/Invoice",
        json=[{"client_id": fixture.client_id, "contract_id": fixture.contract_id, "reference": "DG-2026-07-0001", "thirdpartyinvoicenumber": "dg-42",
               "invoice_date": "2026-07-01", "lines": [{"_itemid": items["Hosted PBX Seat"], "qty_order": 2, "unit_price": 10.0}, {"_itemid": items["Multi-Service Discount"], "qty_order": 1, "unit_price": -5}]}],
    ).json()  # fmt: skip
    assert invoice["id"] > 0 and invoice["invoicenumber"]
    assert (
        invoice["lines"][0]["net_amount"] == 20.0 and invoice["lines"][0]["tax_amount"] == 1.0
    )  # Telecom Excise 5%
    assert (invoice["revenue"], invoice["tax_total"], invoice["total"], invoice["amountdue"]) == (
        15.0,
        1.0,
        16.0,
        16.0,
    )
    assert invoice["duedate"] == "2026-07-31T00:00:00"
    found = http.get("/api/Invoice", params={"search": "DG-2026-07-0001"}).json()
    assert [i["id"] for i in found["invoices"]] == [invoice["id"]]
    assert http.get("/api/Invoice", params={"search": "dg-42"}).json()["record_count"] == 1
    voided = http.post(f"/api/Invoice/{invoice['id']}/void")
    assert (
        voided.status_code == 200
        and voided.json()["voided"] is True
        and voided.json()["amountdue"] == 0.0
    )
    assert http.post("/api/Invoice", json=[{"reference": "no client"}]).status_code == 400


def test_delete_and_not_found(http: httpx.Client, fixture: BaysideDental) -> None:
    """§2 [C] SPEC24/25: DELETE → 200; GET of an unknown id → 404."""
    created = http.post("/api/Invoice", json=[{"client_id": fixture.client_id}]).json()
    response = http.delete(f"/api/invoice/{created['id']}")
    assert response.status_code == 200 and response.json()["id"] == created["id"]
    assert http.get(f"/api/Invoice/{created['id']}").status_code == 404
    assert http.delete(f"/api/Invoice/{created['id']}").status_code == 404
    assert http.get("/api/RecurringInvoice/-9999").status_code == 404
    assert http.get("/api/Client/abc").status_code == 404
    assert http.delete(f"/api/RecurringInvoice/{fixture.recurring_invoice_id}").status_code == 200


def test_concurrent_writers_and_readers_over_loopback(sim: HaloSim) -> None:
    """The backend is shared by uvicorn's thread and test threads: no lost or torn writes."""
    import threading

    errors: list[BaseException] = []
    with sim.serve() as server, httpx.Client(base_url=server.base_url) as bootstrap:
        headers = {"Authorization": f"Bearer {sim.token(bootstrap)}"}

        def writer(n: int) -> None:
            try:
                with httpx.Client(base_url=server.base_url, headers=headers) as http:
                    for i in range(15):
                        assert (
                            http.post("/api/Client", json=[{"name": f"w{n}-{i}"}]).status_code
                            == 201
                        )
                        body = http.get(
                            "/api/Client", params={"pageinate": "true", "page_size": 100}
                        ).json()
                        assert body["record_count"] >= i + 1
            except BaseException as exc:
                errors.append(exc)

        def direct() -> None:
            try:
                for i in range(30):
                    sim.backend.create("Client", {"name": f"direct-{i}"})
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)] + [
            threading.Thread(target=direct)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert sim.backend.count("Client") == 3 * 15 + 30
    assert http_nan_is_rejected(sim)


def http_nan_is_rejected(sim: HaloSim) -> bool:
    with sim.authed_client() as http:
        return http.post("/api/Item", json=[{"name": "x", "baseprice": "nan"}]).status_code == 400
