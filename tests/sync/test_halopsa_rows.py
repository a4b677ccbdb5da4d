"""Decoding HaloPSA records: Halo's conventions, and rejects that name the field."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from datagate_pipelines.sync.halopsa_rows import (
    decode_clients,
    decode_recurring_invoices,
    decode_sites,
)


def test_client_opt_in_by_checkbox_field_and_sentinels():
    records = [
        {
            "id": 1,
            "name": "Bayside Dental",
            "inactive": False,
            "customfields": [
                {"id": 9, "name": "CFDatagate", "type": 6, "value": True, "display": "Yes"}
            ],
            "main_site_id": 10,
            "startbalance": 120.5,
            "startdate": "2026-01-01T00:00:00",
        },
        {
            "id": 2,
            "name": "Not Ticked",
            "customfields": [{"name": "CFDatagate", "value": False}],
            "main_site_id": -1,
        },
        {"id": 3, "name": "No Field", "startdate": "1899-12-30T00:00:00"},
    ]
    decoded = decode_clients(records)
    assert decoded.rejects == []
    by_id = {row["halo_id"]: row for row in decoded.rows}
    assert by_id[1]["opted_in"] is True and by_id[1]["start_balance"] == Decimal("120.50")
    assert by_id[1]["start_date"] == date(2026, 1, 1)
    assert by_id[2]["opted_in"] is False and by_id[2]["main_site_id"] is None
    assert by_id[3]["opted_in"] is False and by_id[3]["start_date"] is None


def test_site_client_id_arrives_as_a_double():
    decoded = decode_sites(
        [
            {
                "id": 10,
                "name": "Main",
                "client_id": 21.0,
                "delivery_address": {"line1": "1 Main St", "postcode": "94107-1234"},
            }
        ]
    )
    row = decoded.rows[0]
    assert row["client_id"] == 21 and row["postcode"] == "94107-1234"
    assert row["address"] == "1 Main St, 94107-1234"


def test_bad_rows_are_rejected_with_field_and_reason_and_still_count_as_seen():
    decoded = decode_sites(
        [
            {"id": 10, "name": "Main", "client_id": 21.5},
            {"id": 11, "client_id": 21},
            {"id": 12, "name": "Dup", "client_id": 21},
            {"id": 12, "name": "Dup again", "client_id": 21},
            {"name": "no id"},
        ]
    )
    reasons = {(r.record_id, r.field): r.reason for r in decoded.rejects}
    assert reasons[("10", "client_id")] == "expected a whole number, got 21.5"
    assert reasons[("11", "name")] == "is missing"
    assert reasons[("12", "id")].startswith("duplicate id")
    assert reasons[(None, "id")] == "is missing"
    assert [row["halo_id"] for row in decoded.rows] == [12]
    assert decoded.seen_ids == {10, 11, 12}


def test_recurring_lines_inherit_the_header_and_refuse_excess_precision():
    headers, lines = decode_recurring_invoices(
        [
            {
                "id": -94,
                "client_id": 21,
                "sitenumber": 0,
                "contract_id": 7,
                "period": 2,
                "lines": [
                    {
                        "id": 1,
                        "ihid": -94,
                        "_itemid": 5,
                        "item_shortdescription": "Hosted PBX seat",
                        "qty_order": 10.0,
                        "unit_price": 24.95,
                        "tax_code": "5",
                        "contract_id": -1,
                        "site": 10,
                        "startdate": "2026-03-01T00:00:00",
                        "enddate": "1899-12-30T00:00:00",
                        "isinactive": False,
                    },
                    {"id": 2, "_itemid": 5, "qty_order": "ten", "unit_price": 1},
                    {"id": 3, "_itemid": 5, "qty_order": 1, "unit_price": 1.23456},
                ],
            }
        ]
    )
    assert headers.rows[0]["halo_id"] == -94 and headers.rows[0]["site_id"] is None
    line = lines.rows[0]
    assert line["recurring_invoice_id"] == -94 and line["client_id"] == 21 and line["period"] == 2
    assert line["contract_id"] == 7 and line["site_id"] == 10
    assert (line["qty"], line["unit_price"]) == (Decimal("10.0000"), Decimal("24.9500"))
    assert line["end_date"] is None and line["halo_tax_code"] == "5"
    assert {(r.record_id, r.field) for r in lines.rejects} == {
        ("2", "qty_order"),
        ("3", "unit_price"),
    }
    assert lines.seen_ids == {1, 2, 3}
    # Lines are stored once: in their own rows and rejects, not again in the header's raw.
    assert "lines" not in headers.rows[0]["raw"] and headers.rows[0]["raw"]["client_id"] == 21
    assert lines.rows[0]["raw"]["item_shortdescription"] == "Hosted PBX seat"
    assert {r.raw["id"] for r in lines.rejects} == {2, 3}
