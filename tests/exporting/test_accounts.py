"""The chart of accounts: HaloPSA nominal codes mapped to QBO accounts by number or name,
first in the order; an unmapped code fails the documents that need it, with its reason,
and is never posted to another account."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from datagate_pipelines.exporting.accounts import Chart, expense_account, income_account
from datagate_pipelines.exporting.documents import ItemInfo
from datagate_pipelines.exporting.qbo import export_to_qbo
from datagate_pipelines.exporting.qbo_references import link_period_references
from datagate_pipelines.warehouse import models as m
from datagate_simulators.qbo.generator import DEFAULT_ACCOUNTS
from tests.exporting.stack import (
    IN_PROCESS_URL,
    JULY,
    QBO_URL,
    finalized_invoices,
    portal_config,
    qbo_client,
    qbo_sim,
)

CHART = Chart.of(
    [
        {"Id": "1", "Name": "Services", "AccountType": "Income"},
        {"Id": "2", "Name": "Voice Services", "AcctNum": "4010", "AccountType": "Income"},
        {"Id": "3", "Name": "Telecom Revenue", "AccountType": "Income"},
        {"Id": "4", "Name": "Template Sales", "AccountType": "Income"},
        {"Id": "5", "Name": "Cost of Goods Sold", "AccountType": "Cost of Goods Sold"},
        {"Id": "6", "Name": "Hardware Purchases", "AcctNum": "5100", "AccountType": "Cost of Goods Sold"},
        {"Id": "7", "Name": "Carrier Costs", "AccountType": "Cost of Goods Sold"},
        {"Id": "8", "Name": "Freight and Delivery", "AcctNum": "5900", "AccountType": "Expense"},
        {"Id": "9", "Name": "4020", "AccountType": "Income"},  # a code used as a name
    ]
)  # fmt: skip


def settings(**qbo):
    # The income accounts have their own place in the template; other keys go after it.
    income_accounts = qbo.pop("income_accounts", "{}")
    income_account = qbo.pop("income_account", "Services")
    lines = "".join(f"      {key}: {value}\n" for key, value in qbo.items())
    return portal_config(
        IN_PROCESS_URL,
        QBO_URL,
        income_accounts=income_accounts,
        income_account=income_account,
        qbo_extra=lines,
    ).settings


def item(code=None, purchase=None, group="Voice", template=None) -> ItemInfo:
    return ItemInfo(7, "Hosted PBX Seat", 3, group, template, code, purchase)


@pytest.mark.parametrize(
    ("case", "portal", "info", "account", "problem"),
    [
        ("code by AcctNum", {}, item("4010"), "Voice Services", None),
        ("code by name", {}, item("4020"), "4020", None),
        ("code mapped", {"nominal_accounts": '{"4030": "Telecom Revenue"}'}, item("4030"), "Telecom Revenue", None),
        ("code mapped by number", {"nominal_accounts": '{"4030": "4010"}'}, item("4030"), "Voice Services", None),
        ("code unmapped", {"income_accounts": '{"Voice": "Telecom Revenue"}'}, item("4999"), None, "nominal code 4999"),
        ("mapping to nothing", {"nominal_accounts": '{"4030": "Nope"}'}, item("4030"), None, "maps it to 'Nope'"),
        ("codes off", {"use_nominal_codes": "false", "income_accounts": '{"Voice": "Telecom Revenue"}'}, item("4999"), "Telecom Revenue", None),
        ("group by name", {"income_accounts": '{"Voice": "Telecom Revenue"}'}, item(), "Telecom Revenue", None),
        ("group by id", {"income_accounts": '{"3": "Telecom Revenue"}'}, item(), "Telecom Revenue", None),
        ("template", {}, item(template="Template Sales"), "Template Sales", None),
        ("default", {}, item(), "Services", None),
        ("no item", {}, None, "Services", None),
        ("default missing", {"income_account": "Gone"}, item(), None, "'Gone' does not exist"),
    ],
)  # fmt: skip
def test_income_account_order(case, portal, info, account, problem):
    choice = income_account(settings(**portal), CHART, info)
    assert (choice.account or {}).get("Name") == account, case
    assert (problem is None) == (choice.problem is None), case
    if problem:
        assert problem in choice.problem and "portal acme" in choice.problem


@pytest.mark.parametrize(
    ("case", "portal", "info", "line_code", "account"),
    [
        ("line code first", {}, item(purchase="5100"), "5900", "Freight and Delivery"),
        ("item purchase code", {}, item(purchase="5100"), None, "Hardware Purchases"),
        ("group", {"expense_accounts": '{"Voice": "Carrier Costs"}'}, item(), None, "Carrier Costs"),
        ("default", {}, item(), None, "Cost of Goods Sold"),
        ("no item, no code", {}, None, None, "Cost of Goods Sold"),
        ("codes off", {"use_nominal_codes": "false"}, item(purchase="5100"), "5900", "Cost of Goods Sold"),
        ("unmapped", {"expense_accounts": '{"Voice": "Carrier Costs"}'}, item(), "5999", None),
    ],
)  # fmt: skip
def test_expense_account_order(case, portal, info, line_code, account):
    choice = expense_account(settings(**portal), CHART, info, line_code, used_by="line 1")
    assert (choice.account or {}).get("Name") == account, case
    if account is None:
        assert "nominal code 5999 (line 1)" in choice.problem


def test_items_post_to_the_account_of_their_nominal_code(engine, halo, portal):
    finals = finalized_invoices(engine, halo, portal)
    qbo = qbo_sim()
    with qbo_client(qbo) as client:
        refs = link_period_references(engine, client, portal.settings, JULY)
        outcome = export_to_qbo(engine, client, portal.settings, JULY)
    assert not refs["Item"].failed and outcome.exported == len(finals)
    accounts = {a["Id"]: a for a in qbo.company.records("Account")}
    with engine.connect() as c:
        codes = dict(c.execute(select(m.items.c.name, m.items.c.nominal_code)).all())
    for qbo_item in qbo.company.records("Item"):
        if qbo_item["Name"] in codes:
            assert (
                accounts[qbo_item["IncomeAccountRef"]["value"]]["AcctNum"]
                == codes[qbo_item["Name"]]
            )


def test_an_unmapped_code_fails_the_invoices_that_need_it_with_the_reason(engine, halo, portal):
    finals = finalized_invoices(engine, halo, portal)
    chart = [a for a in DEFAULT_ACCOUNTS if a.get("AcctNum") != "4020"]
    qbo = qbo_sim(accounts=chart)
    with qbo_client(qbo) as client:
        refs = link_period_references(engine, client, portal.settings, JULY)
        outcome = export_to_qbo(engine, client, portal.settings, JULY)
    connectivity = {k: v for k, v in refs["Item"].failed.items()}
    assert connectivity and all("nominal code 4020" in why for why in connectivity.values())
    assert outcome.failed and outcome.exported == len(finals) - len(outcome.failed) > 0
    for why in outcome.failed.values():
        assert "nominal code 4020 (HaloPSA item" in why and "qbo.nominal_accounts" in why
    # Never posted to another account: no QBO item exists for the unmapped ones.
    assert not [i for i in qbo.company.records("Item") if i["Name"].startswith("Fiber")]
    with engine.connect() as c:
        errors = [r.last_error for r in c.execute(select(m.exports)) if r.status == "failed"]
    assert errors and all("nominal code 4020" in e for e in errors)

    # Mapped by the portal, the same run exports them (no wrong account, no double).
    mapped = portal_config(
        IN_PROCESS_URL, QBO_URL, qbo_extra='      nominal_accounts: {"4020": "Services"}\n'
    )
    with qbo_client(qbo) as client:
        link_period_references(engine, client, mapped.settings, JULY)
        again = export_to_qbo(engine, client, mapped.settings, JULY)
    assert not again.failed and len(again.created) == len(outcome.failed)
    fiber = next(i for i in qbo.company.records("Item") if i["Name"].startswith("Fiber"))
    assert fiber["IncomeAccountRef"]["name"] == "Services"
