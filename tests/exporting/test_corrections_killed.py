"""Credits and voids killed with SIGKILL at their worst moments, then run again: nothing is
created twice and nothing is lost (docs/operations.md, `datagate credit` / `void`).

The credit or void runs in a child process against both simulators on loopback; the child
kills itself right after QBO answered — the Payment that applies the credit memo, the
void — before anything of it was recorded. The re-run must recognise what QBO did."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import select

from datagate_pipelines.exporting.corrections import void_invoice
from datagate_pipelines.exporting.qbo import export_to_qbo
from datagate_pipelines.warehouse import models as m
from datagate_pipelines.warehouse.audit import read_events
from datagate_simulators.server import serve_in_thread
from tests.exporting.stack import (
    FIRST_REFRESH_TOKEN,
    IN_PROCESS_URL,
    JULY,
    PORTAL_YAML,
    QBO_CLIENT_ID,
    QBO_SECRET,
    QBO_YAML,
    REALM,
    halo_client,
    qbo_client,
    sections,
)
from tests.exporting.test_corrections import export_all

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from decimal import Decimal
    from datagate_pipelines.apiclient.retries import RetryPolicy
    from datagate_pipelines.config import parse_portals
    from datagate_pipelines.exporting.corrections import issue_credit, void_invoice
    from datagate_pipelines.halopsa.client import HaloPSAClient
    from datagate_pipelines.qbo.client import QBOClient
    from datagate_pipelines.qbo.oauth import QBOAuthClient, RefreshingTokens
    from datagate_pipelines.warehouse.db import make_engine

    mode, url, halo_url, qbo_url, number, yaml = sys.argv[1:7]
    engine = make_engine(url)
    portal = parse_portals(yaml).get("acme")
    retry = RetryPolicy(sleep=lambda _s: None)
    halo = HaloPSAClient("acme", client_id="acme-client", client_secret="acme-secret-value",
                         tenant="acme", authorization_server=halo_url + "/auth",
                         resource_server=halo_url + "/api", rate_limit=None, retry=retry)
    oauth = QBOAuthClient("acme", client_id="{client_id}", client_secret="{secret}",
                          token_url=qbo_url + "/oauth2/v1/tokens/bearer")
    qbo = QBOClient("acme", realm_id="{realm}", tokens=RefreshingTokens(oauth, "{token}"),
                    base_url=qbo_url, rate_limit=None, max_concurrent=None, retry=retry)

    def die_after(name, when=lambda args: True):
        original = getattr(QBOClient, name)
        def answered_then_killed(self, *args, **kwargs):
            answer = original(self, *args, **kwargs)
            if when(args):
                os.kill(os.getpid(), signal.SIGKILL)
            return answer
        setattr(QBOClient, name, answered_then_killed)

    if mode == "void":
        die_after("void_invoice")
        void_invoice(engine, portal.settings, number, reason="killed", halo=halo, qbo=qbo)
    else:
        die_after("create", lambda args: args[0] == "Payment")
        issue_credit(engine, portal.settings, number, reason="killed", halo=halo, qbo=qbo,
                     amount=Decimal("10.00"))
    """
).format(client_id=QBO_CLIENT_ID, secret=QBO_SECRET, token=FIRST_REFRESH_TOKEN, realm=REALM)


def run_child(mode, engine_url, halo, qbo, number):
    with serve_in_thread(halo.app) as halo_server, serve_in_thread(qbo.app) as qbo_server:
        qbo_section = QBO_YAML.format(realm=REALM, qbo=qbo_server.base_url, income_accounts="{}")
        text = PORTAL_YAML.format(halo=IN_PROCESS_URL, qbo=qbo_section + sections(None))
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                mode,
                engine_url,
                halo_server.base_url,
                qbo_server.base_url,
                number,
                text,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ},
        )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]


@pytest.mark.slow
def test_a_credit_and_a_void_killed_after_qbo_answered_are_finished_once(
    engine, engine_url, halo, qbo, portal, finals
):
    export_all(engine, halo, qbo, portal)
    credit_killed_after_the_payment(engine, engine_url, halo, qbo, portal, finals[0])
    void_killed_after_qbo_voided(engine, engine_url, halo, qbo, portal, finals[1])


def credit_killed_after_the_payment(engine, engine_url, halo, qbo, portal, invoice):
    run_child("payment", engine_url, halo, qbo, invoice.doc_number)
    with engine.connect() as c:
        (note,) = c.execute(select(m.invoices).where(m.invoices.c.credit_of == invoice.id)).all()
    # The re-run (the period's export, as `bill --export` and the schedule do it).
    with qbo_client(qbo) as client:
        outcome = export_to_qbo(engine, client, portal.settings, JULY)
    assert not outcome.failed
    memos = [r for r in qbo.company.records("CreditMemo") if r["DocNumber"] == note.doc_number]
    assert len(memos) == 1 and memos[0]["RemainingCredit"] == 0
    assert len(qbo.company.records("Payment")) == 1
    with engine.connect() as c:
        states = dict(
            c.execute(
                select(m.exports.c.target, m.exports.c.status).where(
                    m.exports.c.invoice_id == note.id
                )
            ).all()
        )
    assert states == {"halopsa": "exported", "qbo": "exported", "qbo_apply": "exported"}


def void_killed_after_qbo_voided(engine, engine_url, halo, qbo, portal, invoice):
    run_child("void", engine_url, halo, qbo, invoice.doc_number)
    with engine.connect() as c:
        voided_at = c.execute(
            select(m.invoices.c.voided_at).where(m.invoices.c.id == invoice.id)
        ).scalar()
    assert voided_at is None  # killed before it was recorded
    with halo_client(halo) as h, qbo_client(qbo) as q:
        outcome = void_invoice(
            engine, portal.settings, invoice.doc_number, reason="again", halo=h, qbo=q
        )
    assert outcome.recorded
    assert qbo.company.live("Invoice", outcome.qbo_id)["TotalAmt"] == 0
    assert halo.backend.get("Invoice", int(outcome.halo_id))["voided"]
    with engine.connect() as c:
        assert [e.action for e in read_events(c, "acme")].count("void") == 1
