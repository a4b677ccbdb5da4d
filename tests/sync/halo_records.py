"""Hand-written HaloPSA records for sync tests: Bayside Dental (docs/billing.md's example)."""

from __future__ import annotations

NO_DATE = "1899-12-30T00:00:00"


def client(cid, name, *, ticked=True, inactive=False, main_site_id=-1, startbalance=0):
    return {
        "id": cid,
        "name": name,
        "inactive": inactive,
        "main_site_id": main_site_id,
        "startbalance": startbalance,
        "startdate": "2026-01-01T00:00:00",
        "customfields": [{"id": 1, "name": "CFDatagate", "type": 6, "value": ticked}],
    }


def site(sid, client_id, name, postcode=None):
    return {
        "id": sid,
        "name": name,
        "client_id": float(client_id),
        "delivery_address": {"line1": f"{sid} Market St", "postcode": postcode or ""},
    }


def contract(cid, client_id, type_id, type_name, start="2026-01-01T00:00:00"):
    return {
        "id": cid,
        "client_id": client_id,
        "ref": f"C{cid}",
        "contracttype": type_id,
        "contracttype_name": type_name,
        "start_date": start,
        "end_date": NO_DATE,
        "active": True,
    }


def item(iid, name, group_id, taxcode=5):
    return {
        "id": iid,
        "name": name,
        "assetgroup_id": group_id,
        "taxcode": taxcode,
        "isrecurringitem": True,
        "baseprice": 1,
    }


def line(
    lid,
    item_id,
    qty,
    price,
    *,
    site_id=-1,
    contract_id=-1,
    start=NO_DATE,
    end=NO_DATE,
    inactive=False,
):
    return {
        "id": lid,
        "_itemid": item_id,
        "item_shortdescription": f"line {lid}",
        "qty_order": qty,
        "unit_price": price,
        "tax_code": "5",
        "contract_id": contract_id,
        "site": site_id,
        "startdate": start,
        "enddate": end,
        "isinactive": inactive,
    }


def recurring(rid, client_id, lines, *, contract_id=0, period=2):
    return {
        "id": rid,
        "client_id": client_id,
        "sitenumber": 0,
        "contract_id": contract_id,
        "period": period,
        "lines": lines,
    }


def bayside_tenant():
    """Bayside Dental (ticked), Harbor Vets (not ticked), Old Mill (ticked but inactive)."""
    return {
        "clients": [
            client(1, "Bayside Dental", main_site_id=10, startbalance=120.5),
            client(2, "Harbor Vets", ticked=False, main_site_id=20),
            client(3, "Old Mill", inactive=True),
        ],
        "sites": [
            site(10, 1, "Main", "94107"),
            site(11, 1, "Annex", "94110-2231"),
            site(20, 2, "Harbor", "94133"),
        ],
        "contracts": [
            contract(100, 1, 1, "Telecom"),
            contract(101, 1, 2, "Managed Services"),
            contract(200, 2, 1, "Telecom"),
        ],
        "item_groups": [
            {"id": 1, "name": "Voice"},
            {"id": 2, "name": "Connectivity"},
            {"id": 3, "name": "Hardware"},
        ],
        "items": [
            item(50, "Hosted PBX seat", 1),
            item(51, "SIP trunk", 1),
            item(52, "Managed router", 3),
            item(53, "Fax line", 2),
        ],
        "recurring_invoices": [
            recurring(
                -94,
                1,
                [
                    line(
                        1, 50, 10, 24.95, site_id=10, contract_id=100, start="2026-03-01T00:00:00"
                    ),
                    line(2, 51, 2, 39.99, site_id=11, contract_id=100, start="2026-07-15T00:00:00"),
                    line(3, 52, 1, 15.0, site_id=11, contract_id=101, start="2026-08-20T00:00:00"),
                    line(
                        4,
                        53,
                        1,
                        9.99,
                        site_id=10,
                        start="2025-01-01T00:00:00",
                        end="2026-08-10T00:00:00",
                    ),
                    line(5, 99, 1, 1, site_id=10, contract_id=100),
                ],
            ),
            recurring(-95, 2, [line(6, 50, 1, 24.95, site_id=20, contract_id=200)]),
        ],
    }
