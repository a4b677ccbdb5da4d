"""`datagate payments` and what `portals status` says about payments and webhooks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from datagate_pipelines.warehouse.webhook_events import store_events
from tests.exporting.payments_stack import export_everywhere, pay, qbo_invoice_ids, refresh
from tests.exporting.stack import (
    PORTAL_YAML,
    QBO_URL,
    QBO_YAML,
    REALM,
    finalized_invoices,
    halo_sim,
    portal_config,
    qbo_sim,
)

# Each test bills, exports and pays a period first: `make test` runs these.
pytestmark = pytest.mark.slow


@pytest.fixture
def paid(engine, engine_url, tmp_path, monkeypatch):
    """July exported to QBO; one invoice paid by check, then that payment deleted and
    another one made; the refreshes in between. The CLI points at the same warehouse."""
    portals_file = tmp_path / "portals.yaml"
    portals_file.write_text(
        PORTAL_YAML.format(
            halo="http://halopsa.test",
            qbo=QBO_YAML.format(realm=REALM, qbo=QBO_URL, income_accounts="{}"),
        )
    )
    monkeypatch.setenv("DATAGATE_PORTALS_FILE", str(portals_file))
    monkeypatch.setenv("DATAGATE_DATABASE_URL", engine_url)
    halo, qbo, portal = halo_sim(), qbo_sim(), portal_config(qbo_url=QBO_URL)
    finals = finalized_invoices(engine, halo, portal)
    export_everywhere(engine, portal, qbo)
    refresh(engine, qbo, portal)
    ids = qbo_invoice_ids(engine)
    first = pay(qbo, ids[finals[0].id], "100.00", PaymentRefNum="CHK-7")
    refresh(engine, qbo, portal)
    qbo.company.delete("Payment", {"Id": first["Id"], "SyncToken": first["SyncToken"]})
    pay(qbo, ids[finals[0].id], "60.00", PaymentRefNum="CHK-8")
    pay(qbo, ids[finals[1].id], finals[1].total)
    refresh(engine, qbo, portal)
    return finals


def test_payments_lists_the_current_applications(cli, paid):
    code, out = cli("payments", "--portal", "acme", "--json")
    assert code == 0
    documents = json.loads(out)
    assert sorted(
        (d["invoice"], d["amount"], d["state"], d["reference"]) for d in documents
    ) == sorted(
        [
            (paid[0].doc_number, "0.00", "removed", "CHK-7"),
            (paid[0].doc_number, "60.00", "applied", "CHK-8"),
            (paid[1].doc_number, f"{paid[1].total:.2f}", "applied", None),
        ]
    )
    assert all(d["current"] and d["kind"] == "payment" and d["halopsa"] is None for d in documents)
    code, out = cli("payments", "--portal", "acme")
    assert code == 0 and f"{60 + paid[1].total:.2f} applied" in out


def test_payments_of_one_invoice_show_every_version_and_its_statuses(cli, paid):
    number = paid[0].doc_number
    code, out = cli("payments", "--portal", "acme", "--invoice", number, "--json")
    assert code == 0
    history = json.loads(out)
    assert sorted((d["reference"], d["state"], d["current"]) for d in history) == [
        ("CHK-7", "applied", False),
        ("CHK-7", "removed", True),
        ("CHK-8", "applied", True),
    ]
    code, out = cli("payments", "--portal", "acme", "--invoice", number)
    lines = [line for line in out.splitlines() if line.startswith(f"{number}: ")]
    assert [line.split(",")[0] for line in lines] == [
        f"{number}: unpaid",
        f"{number}: partly_paid",
        f"{number}: partly_paid",
    ]
    code, out = cli("payments", "--portal", "acme", "--invoice", "INV-9999")
    assert code == 1 and out.strip() == "error: portal acme: no invoice numbered INV-9999"


def test_payments_since_a_date(cli, paid):
    later = (datetime.now(UTC).date() + timedelta(days=400)).isoformat()
    code, out = cli("payments", "--portal", "acme", "--since", later, "--json")
    assert code == 0 and json.loads(out) == []
    assert len(json.loads(cli("payments", "--portal", "acme", "--since", "1d", "--json")[1])) == 3
    code, out = cli("payments", "--portal", "acme", "--since", "last tuesday")
    assert code == 2 and "--since" in out


def test_portals_status_shows_the_last_payment_refresh_and_webhook(cli, engine, paid):
    received = datetime(2026, 8, 3, 17, 0, tzinfo=UTC)
    with engine.begin() as c:
        store_events(
            c,
            [
                {
                    "portal_id": "acme",
                    "realm_id": REALM,
                    "event_id": "e1",
                    "format": "cloudevents",
                    "entity": "Payment",
                    "entity_id": "1",
                    "operation": "Create",
                    "last_updated": received,
                    "deleted_id": None,
                    "received_at": received,
                    "run_key": None,
                    "handled_at": None,
                    "note": None,
                }
            ],
        )
    code, out = cli("portals", "status", "--json")
    assert code == 0
    (row,) = json.loads(out)
    assert row["last_payment_refresh"]["mode"] == "cdc"
    assert row["last_webhook"] == received.isoformat()
    code, out = cli("portals", "status")
    assert code == 0 and "payments refreshed" in out and "last webhook 2026-08-03T17:00:00" in out
