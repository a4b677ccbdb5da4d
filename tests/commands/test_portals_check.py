"""`datagate portals check`: each target of a portal tested and reported on its own line —
HaloPSA (token, clients, the Datagate field) and QBO (a refresh through the rotating token
store, a CompanyInfo read) — exit 1 when any failed, the portal named once per line."""

from __future__ import annotations

from sqlalchemy import select

from datagate_pipelines.warehouse import models as m
from tests.commands.conftest import QBO_FIRST_REFRESH_TOKEN, QBO_REALM

QBO_OK = f"     QBO: token refreshed, company 'Acme Books' (realm {QBO_REALM}) answered"
RECONNECT = "reconnect the portal: `datagate qbo connect --portal acme`"


def halopsa_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("     HaloPSA: "))


def test_a_portal_with_qbo_reports_both_targets(cli, engine, qbo_company, monkeypatch):
    qbo_company.backend.oauth.force_rotation(QBO_REALM)  # the next refresh rotates the token
    code, out = cli("portals", "check")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "ok   portal acme"
    assert halopsa_line(out).startswith("     HaloPSA: token ok, ")
    assert lines[-1] == QBO_OK
    assert qbo_company.current_refresh_token() != QBO_FIRST_REFRESH_TOKEN
    with engine.connect() as c:
        paths = set(c.execute(select(m.api_requests.c.path)).scalars())
    assert any("/companyinfo/" in p for p in paths) and any("tokens/bearer" in p for p in paths)
    # The refresh went through the rotating store: the token QBO rotated to was stored, so
    # the check passes without the first token, long after its grace window.
    monkeypatch.delenv("ACME_QBO_REFRESH_TOKEN")
    qbo_company.clock.advance(days=2)
    code, out = cli("portals", "check")
    assert code == 0 and out.splitlines()[-1] == QBO_OK


def test_a_revoked_qbo_connection_fails_the_check_and_says_to_reconnect(cli, qbo_company):
    assert cli("portals", "check")[0] == 0
    qbo_company.revoke()  # disconnected in QuickBooks
    code, out = cli("portals", "check")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "FAIL portal acme"
    assert halopsa_line(out).startswith("     HaloPSA: token ok, ")  # checked on its own
    assert lines[-1].startswith("     QBO: FAIL QBO refused ") and lines[-1].endswith(RECONNECT)


def test_an_expired_refresh_token_fails_the_qbo_check(cli, qbo_company):
    assert cli("portals", "check")[0] == 0
    qbo_company.clock.advance(days=102)  # unused for longer than its 101-day life
    code, out = cli("portals", "check")
    assert code == 1
    assert out.splitlines()[0] == "FAIL portal acme"
    assert out.splitlines()[-1].endswith(RECONNECT)


def test_an_unset_secret_names_the_portal_once_and_the_other_target_is_still_checked(
    cli, qbo_company, monkeypatch
):
    monkeypatch.delenv("ACME_HALO_CLIENT_SECRET")
    code, out = cli("portals", "check")
    assert code == 1
    assert out.splitlines() == [
        "FAIL portal acme",
        "     HaloPSA: FAIL halopsa.client_secret_env: environment variable "
        "ACME_HALO_CLIENT_SECRET is not set",
        QBO_OK,
    ]


def test_a_portal_without_qbo_reports_halopsa_only(cli, halo_stack):
    code, out = cli("portals", "check", "--portal", "acme")
    assert code == 0
    assert out.splitlines()[0] == "ok   portal acme"
    assert [line.split(":")[0] for line in out.splitlines()[1:]] == ["     HaloPSA"]
