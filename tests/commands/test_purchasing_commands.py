"""`datagate accounts` and `datagate qbo tax-codes` as an operator runs them: portals.yaml,
the environment, the QBO simulator on loopback, the warehouse on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import update

from datagate_pipelines.warehouse import models as m
from datagate_simulators.halopsa.generator import generate_purchasing
from datagate_simulators.server import serve_in_thread
from tests.exporting.stack import (
    IN_PROCESS_URL,
    JULY,
    PORTAL_YAML,
    QBO_URL,
    QBO_YAML,
    REALM,
    finalized_invoices,
    halo_client,
    halo_sim,
    ingest,
    ingest_purchasing,
    portal_config,
    qbo_sim,
    set_environment,
)
from tests.exporting.test_tax_codes import CODE_NAME, TAX_CODES, canadian


@pytest.fixture
def serve(engine_url, tmp_path, monkeypatch) -> Callable:
    """Serve a QBO simulator and write the portals.yaml and environment that point at it."""

    @contextmanager
    def served(qbo, *, qbo_extra: str = "", purchasing: str = "") -> Iterator[None]:
        with serve_in_thread(qbo.app) as server:
            section = QBO_YAML.format(realm=REALM, qbo=server.base_url, income_accounts="{}")
            path = tmp_path / "portals.yaml"
            path.write_text(
                PORTAL_YAML.format(halo=IN_PROCESS_URL, qbo=section + qbo_extra + purchasing)
            )
            set_environment(monkeypatch, engine_url, path)
            yield

    return served


def test_accounts_lists_every_nominal_code_and_its_qbo_account(cli, engine, serve):
    halo = halo_sim(customers=3)
    generate_purchasing(halo.backend, suppliers=4, purchase_orders=12, seed=3, as_of=JULY)
    portal = portal_config(IN_PROCESS_URL, QBO_URL, purchasing="")
    with halo_client(halo) as client:
        ingest(engine, portal, client)
        ingest_purchasing(engine, portal, client)
    with engine.begin() as c:
        c.execute(
            update(m.items).where(m.items.c.halo_id == 1).values(purchase_nominal_code="5999")
        )
    with serve(qbo_sim(), purchasing="    purchasing: {}\n"):
        code, out = cli("accounts", "--portal", "acme")
        assert code == 0, out
        assert "4010" in out and "Voice Services (4010)  [nominal code 4010]" in out
        assert "5100" in out and "purchase order lines" in out
        assert "5999         expense         UNMAPPED  — 1 items" in out
        code, out = cli("accounts", "--portal", "acme", "--unmapped", "--json")
    assert code == 0
    (unmapped,) = json.loads(out)
    assert unmapped["code"] == "5999" and unmapped["account"] is None
    assert "qbo.nominal_accounts" in unmapped["problem"]


def test_the_tax_codes_command_shows_then_applies_the_mapping(cli, engine, serve):
    portal = portal_config(IN_PROCESS_URL, QBO_URL, qbo_extra=TAX_CODES)
    finalized_invoices(engine, halo_sim(), portal)
    qbo = canadian()
    with serve(qbo, qbo_extra=TAX_CODES):
        code, out = cli("qbo", "tax-codes", "--portal", "acme", "--dry-run")
        assert code == 0, out
        assert f"{CODE_NAME}  [create]" in out and "untaxed lines → 'Exempt' [id" in out
        assert qbo.company.find("TaxCode", Name=CODE_NAME) is None
        code, out = cli("qbo", "tax-codes", "--portal", "acme")
        assert code == 0 and "ok   portal acme: 1 tax code(s) created" in out
        code, out = cli("qbo", "tax-codes", "--portal", "acme", "--json")
    assert code == 0 and json.loads(out)["codes"][0]["state"] == "linked"


def test_the_tax_codes_command_refuses_us_companies_and_the_us_mode(cli, engine, serve):
    with serve(qbo_sim(), qbo_extra=TAX_CODES):
        code, out = cli("qbo", "tax-codes", "--portal", "acme", "--dry-run")
    assert code == 1 and "is in the US: use qbo.tax_mode us_automated" in out
    with serve(canadian()):
        code, out = cli("qbo", "tax-codes", "--portal", "acme")
    assert code == 1 and "qbo.tax_mode is not tax_codes" in out
