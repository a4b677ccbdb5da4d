"""`datagate review|approve|hold|release|audit` as an operator uses them: a generated tenant
on loopback, July 2026 billed as drafts for a portal with `approval: manual`."""

from __future__ import annotations

import csv
import json
from datetime import date

import pytest
from sqlalchemy import func, select

from datagate_pipelines.config import load_portals
from datagate_pipelines.invoicing.finalize import finalize_period
from datagate_pipelines.warehouse import models as m
from tests.exporting.stack import import_reference_data

pytestmark = pytest.mark.slow


@pytest.fixture
def july(cli, engine, halo_stack):
    """July's drafts, approval manual (sync, imports, sync, bill through the CLI)."""
    halo_stack.configure(approval="manual")
    assert cli("sync", "--portal", "acme")[0] == 0
    import_reference_data(engine, load_portals().get("acme"))
    assert cli("sync", "--portal", "acme")[0] == 0  # the products get their tax codes
    code, out = cli("bill", "--portal", "acme", "--period", "2026-07")
    assert code == 0, out
    return halo_stack


def keys(engine, status=None):
    query = select(m.invoices.c.invoice_key).order_by(m.invoices.c.invoice_key)
    if status:
        query = query.where(m.invoices.c.status == status)
    with engine.connect() as c:
        return list(c.execute(query).scalars())


def written(engine) -> tuple[int, int, int]:
    with engine.connect() as c:
        return tuple(
            c.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (m.approvals, m.invoice_holds, m.audit_events)
        )


def test_review_hold_release_approve_and_the_audit_trail(cli, engine, july, tmp_path):
    code, out = cli("portals", "status", "--json")
    assert code == 0 and json.loads(out)[0]["awaiting_approval"] == ["2026-07"]
    assert "awaiting approval: 2026-07" in cli("portals", "status")[1]
    code, out = cli("review", "--portal", "acme", "--period", "2026-07", "--json")
    assert code == 0, out
    review = json.loads(out)
    assert review["state"] == "ready for review" and review["approval"] == "manual"
    assert len(review["invoices"]) == len(keys(engine))
    assert set(review["counts"]) >= {"new_agreement", "product_added", "caught_up", "held"}
    # July is the portal's first period: every agreement is new
    assert review["counts"]["new_agreement"] == len(keys(engine))
    flagged = json.loads(
        cli("review", "--portal", "acme", "--period", "2026-07", "--flagged", "--json")[1]
    )
    assert [i["invoice_key"] for i in flagged["invoices"]] == [
        i["invoice_key"] for i in review["invoices"] if i["flags"]
    ]
    sheet = tmp_path / "review.csv"
    code, out = cli("review", "--portal", "acme", "--period", "2026-07", "--csv", str(sheet))
    assert code == 0 and f"fingerprint {review['fingerprint']}" in out
    rows = list(csv.DictReader(sheet.open()))
    assert {r["invoice_key"] for r in rows} == set(keys(engine))
    assert {r["change_kind"] for r in rows} >= {"new_agreement"}
    assert all(r["period"] == "2026-07" and r["portal"] == "acme" for r in rows)

    first, second = keys(engine, "draft")[:2]
    code, out = cli("hold", "--portal", "acme", "--invoice", first, "--reason", "customer disputes")
    assert (
        code == 0
        and out.strip() == f"held {first} (portal acme) by {operator()}: customer disputes"
    )
    code, out = cli("invoices", "--portal", "acme", "--period", "2026-07")
    assert f"held {first}: manual hold by {operator()}: customer disputes" in out
    # the hold changed the drafts: the reviewed fingerprint is stale
    code, out = cli(
        "approve", "--portal", "acme", "--period", "2026-07", "--fingerprint", review["fingerprint"]
    )
    assert code == 1 and "the drafts changed since the review" in out
    code, out = cli("release", "--portal", "acme", "--invoice", first, "--reason", "settled")
    assert code == 0 and out.strip().endswith("now draft")

    fresh = json.loads(cli("review", "--portal", "acme", "--period", "2026-07", "--json")[1])
    assert fresh["fingerprint"] == review["fingerprint"]  # the same drafts as reviewed
    code, out = cli(
        "approve", "--portal", "acme", "--period", "2026-07",
        "--fingerprint", fresh["fingerprint"], "--except", second, "--note", "July checked",
    )  # fmt: skip
    assert code == 0, out
    assert f"left out (they stay drafts): {second}" in out
    assert json.loads(cli("portals", "status", "--json")[1])[0]["awaiting_approval"] == []
    after = json.loads(cli("review", "--portal", "acme", "--period", "2026-07", "--json")[1])
    assert after["state"] == "approved"
    assert after["approvals"][0]["excepted"] == [second]
    # what is still unreviewed is held for its data: it cannot be approved as it stands
    unreviewed = [i for i in after["invoices"] if i["flags"] and not i["reviewed"]]
    assert after["unreviewed_flagged"] == len(unreviewed)
    assert all(i["status"] == "held" for i in unreviewed)

    code, out = cli("audit", "--portal", "acme", "--json")
    trail = json.loads(out)
    assert [(e["action"], e["invoice_key"]) for e in trail] == [
        ("hold", first),
        ("release", first),
        ("approve", None),
    ]
    assert trail[1]["details"]["note"] == "settled"
    assert trail[2]["details"]["excepted"] == [second]
    assert trail[2]["details"]["note"] == "July checked"
    code, out = cli("audit", "--portal", "acme", "--invoice", first, "--since", "1h")
    assert code == 0 and len(out.splitlines()) == 2
    code, out = cli("audit", "--portal", "acme", "--since", "2099-01-01")
    assert out.strip() == "portal acme: no audit events match"


def operator() -> str:
    from datagate_pipelines.warehouse.audit import current_operator

    return current_operator()


#: (what the operator typed, the one line they get). Each writes nothing.
BAD_INPUT_WHILE_DRAFT = {
    "unknown portal": (
        ["approve", "--portal", "nope", "--period", "2026-07"],
        "error: portal nope: id: no such portal",
    ),
    "never billed": (
        ["approve", "--portal", "acme", "--period", "2026-09"],
        "error: portal acme: billing period 2026-09 was never billed",
    ),
    "still open": (
        ["approve", "--portal", "acme", "--period", "2099-01"],
        "error: portal acme: billing period 2099-01 is still open",
    ),
    "except not in the period": (
        ["approve", "--portal", "acme", "--period", "2026-07", "--except", "2026-07:customer:0"],
        "error: portal acme: billing period 2026-07: --except 2026-07:customer:0: no draft",
    ),
    "stale fingerprint": (
        ["approve", "--portal", "acme", "--period", "2026-07", "--fingerprint", "abc"],
        "error: portal acme: billing period 2026-07: the drafts changed since the review",
    ),
    "hold unknown invoice": (
        ["hold", "--portal", "acme", "--invoice", "2026-07:customer:0", "--reason", "x"],
        "error: portal acme: no invoice 2026-07:customer:0",
    ),
    "release without hold": (
        ["release", "--portal", "acme", "--invoice", "FIRST"],
        "error: portal acme: invoice FIRST has no manual hold to release",
    ),
}
BAD_INPUT_ONCE_FINAL = {
    "hold a final invoice": (
        ["hold", "--portal", "acme", "--invoice", "FIRST", "--reason", "too late"],
        "error: portal acme: invoice FIRST is final (number 10",
    ),
    "already final": (
        ["approve", "--portal", "acme", "--period", "2026-07"],
        "error: portal acme: billing period 2026-07 is already final",
    ),
}


def test_bad_input_is_one_line_exit_1_and_writes_nothing(cli, engine, july):
    # One July for every case (billing it is the slow part): each case is checked to write
    # nothing, so the next one meets the same drafts; the final ones come last.
    first = keys(engine)[0]

    def refused(cases: dict[str, tuple[list[str], str]]) -> None:
        for case, (args, expected) in cases.items():
            before = written(engine)
            code, out = cli(*[first if a == "FIRST" else a for a in args])
            assert code == 1, f"{case}: {out}"
            assert len(out.strip().splitlines()) == 1, f"{case}: {out}"
            assert out.startswith(expected.replace("FIRST", first)), f"{case}: {out}"
            assert written(engine) == before, case

    refused(BAD_INPUT_WHILE_DRAFT)
    settings = load_portals().get("acme").settings
    auto = settings.model_copy(
        update={"invoicing": settings.invoicing.model_copy(update={"approval": "auto"})}
    )
    with engine.begin() as c:
        c.execute(m.invoices.update().values(status="draft", hold_reasons=[]))
        finalize_period(c, auto, date(2026, 7, 1))
    refused(BAD_INPUT_ONCE_FINAL)
