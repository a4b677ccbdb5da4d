"""`datagate import …` and `datagate usage …` as an operator runs them: a bad file is listed
row by row and refused whole (exit 1, one `error:` line last), a dry run says exactly the
same, usage batches are listed and taken back, and a product template clears a hold."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select

from datagate_pipelines.invoicing.drafts import compute_drafts
from datagate_pipelines.invoicing.finalize import finalize_period
from datagate_pipelines.orchestration.instance import instance
from datagate_pipelines.warehouse import models as m
from tests.invoicing.test_billing_flow import TAX_RATES, TEMPLATES
from tests.sync.halo_records import bayside_tenant
from tests.sync.test_apply import portal, sync_all

USAGE_HEADER = "customer_id,customer_name,site_id,description,amount,tax_code,usage_date\n"
CALLS = "1,Bayside Dental,10,July call usage,12.34,TEL,2026-07-20\n"
FAX = "1,Bayside Dental,11,Fax pages,3.10,TEL,2026-07-02\n"
BAD_USAGE = (
    USAGE_HEADER
    + CALLS
    + '1,Bayside Dental,10,Calls,"1,5",TEL,2026-07-21\n'
    + "1,Bayside Dental,10,Calls,2.00,TEL,2026-08-01\n"
    + "2,Harbor Vets,,Calls,abc,TEL,2026-07-22\n"
)


@pytest.fixture
def bayside(engine, halo_stack):
    """portals.yaml with portal acme, and Bayside Dental synced into its warehouse."""
    p = portal()
    sync_all(engine, p, bayside_tenant())
    return p


def write(folder: Path, name: str, content: str) -> str:
    path = folder / name
    path.write_text(content)
    return name


def count(engine, table) -> int:
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar_one()


def materializations(asset: str) -> list[dg.AssetMaterialization]:
    """What the imports reported to the CLI's Dagster instance (DAGSTER_HOME)."""
    records = instance().fetch_materializations(dg.AssetKey(asset), limit=100)
    return [r.asset_materialization for r in records.records]


def test_a_bad_usage_file_lists_every_bad_row_and_imports_nothing(
    cli, engine, bayside, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    name = write(tmp_path, "usage-2026-07.csv", BAD_USAGE)
    outputs = []
    for dry_run in ([], ["--dry-run"]):
        code, out = cli(
            "import", "usage", name, "--portal", "acme", "--period", "2026-07", *dry_run
        )
        assert code == 1
        outputs.append(out)
    assert outputs[0] == outputs[1]  # a dry run reports exactly the refusal
    assert outputs[0].splitlines() == [
        "usage-2026-07.csv line 3, column amount: not a number: '1,5' "
        "(write the decimal point as '.')",
        "usage-2026-07.csv line 4, column usage_date: 2026-08-01 is outside the billing "
        "period 2026-07",
        "usage-2026-07.csv line 5, column amount: not a number: 'abc'",
        "usage-2026-07.csv line 5, column customer_id: no customer 2 in portal acme "
        "(not ticked Datagate in HaloPSA, or not synced yet)",
        "error: usage-2026-07.csv: 3 bad rows, nothing imported",
    ]
    assert count(engine, m.usage_charges) == count(engine, m.usage_batches) == 0
    assert materializations("usage_charges") == []


@pytest.mark.parametrize(
    ("command", "header"),
    [
        (["tax-rates"], "zip,tax_code,jurisdiction,rate\n"),
        (["products", "--portal", "acme"], "item_id,item_name,tax_code,income_account\n"),
        (["usage", "--portal", "acme", "--period", "2026-07"], USAGE_HEADER),
    ],
    ids=["tax-rates", "products", "usage"],
)
def test_an_empty_file_says_it_is_empty(cli, bayside, tmp_path, monkeypatch, command, header):
    monkeypatch.chdir(tmp_path)
    for content, message in (
        ("", "error: empty.csv: the file is empty"),
        (header, "error: empty.csv: the file is empty (a header and no rows)"),
    ):
        write(tmp_path, "empty.csv", content)
        code, out = cli("import", command[0], "empty.csv", *command[1:])
        assert (code, out.splitlines()) == (1, [message])


def test_conflicting_tax_rates_are_refused_and_a_good_file_reports_its_counts(
    cli, engine, halo_stack, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "rates.csv", TAX_RATES + "94107,TEL,CA,0.0625\n")
    code, out = cli("import", "tax-rates", "rates.csv")
    assert (code, out.splitlines()) == (
        1,
        [
            "rates.csv line 6, column rate: 0.0625 conflicts with line 2 (0.06) for zip 94107, "
            "tax code TEL, jurisdiction CA",
            "error: rates.csv: 1 bad row, nothing imported",
        ],
    )
    assert count(engine, m.tax_rates) == 0
    write(tmp_path, "rates.csv", TAX_RATES + "94107,TEL,CA,0.06\n")
    dry = cli("import", "tax-rates", "rates.csv", "--dry-run")
    real = cli("import", "tax-rates", "rates.csv")
    assert dry[1].replace("would import", "imported") == real[1]
    assert real == (
        0,
        "warning: rates.csv line 6: repeats line 2; taken once\n"
        "tax rates from rates.csv: imported 4 new, 0 updated, 0 unchanged\n",
    )
    assert count(engine, m.tax_rates) == 4
    (event,) = materializations("tax_rates")
    assert event.metadata["new"] == dg.IntMetadataValue(4)
    # Nothing changed, nothing written: no second materialization.
    assert cli("import", "tax-rates", "rates.csv")[0] == 0
    assert len(materializations("tax_rates")) == 1


def test_products_existing_ignore_leaves_imported_templates_alone(
    cli, engine, bayside, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "first.csv", "item_id,item_name,tax_code,income_account\n50,,TEL,\n")
    assert cli("import", "products", "first.csv", "--portal", "acme")[0] == 0
    write(tmp_path, "all.csv", TEMPLATES.replace("50,,TEL,", "50,,NONTAXABLE,"))
    code, out = cli("import", "products", "all.csv", "--portal", "acme", "--existing", "ignore")
    assert (code, out) == (
        0,
        "product templates from all.csv: imported 3 new, 0 updated, 0 unchanged, 1 ignored "
        "(ignored: items that already have a template)\n",
    )
    with engine.connect() as c:
        codes = dict(
            c.execute(select(m.product_templates.c.item_id, m.product_templates.c.tax_code)).all()
        )
    assert codes == {50: "TEL", 51: "TEL", 52: "NONTAXABLE", 53: "TEL"}
    code, out = cli("import", "products", "all.csv", "--portal", "acme")
    assert (
        out == "product templates from all.csv: imported 0 new, 1 updated, 3 unchanged, 0 ignored\n"
    )
    code, out = cli("import", "products", "all.csv", "--portal", "acme", "--existing", "keep")
    assert code == 2 and "'update', 'ignore'" in out


def test_usage_batches_are_imported_once_listed_and_taken_back(
    cli, engine, bayside, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATAGATE_OPERATOR", "alice")
    period = ["--portal", "acme", "--period", "2026-07"]
    write(tmp_path, "usage-2026-07.csv", USAGE_HEADER + CALLS + FAX + CALLS)
    code, out = cli("import", "usage", "usage-2026-07.csv", *period)
    with engine.connect() as c:
        batch = c.execute(select(m.usage_batches)).one()
    assert (code, out) == (
        0,
        "warning: usage-2026-07.csv line 4: identical to line 2: both are imported, as two "
        "charges\nusage from usage-2026-07.csv: imported 3 charges (total 27.78) for portal "
        f"acme, period 2026-07, as batch {batch.id}\n",
    )
    assert (batch.source, batch.row_count, str(batch.total), batch.imported_by) == (
        "usage-2026-07.csv",
        3,
        "27.78",
        "alice",
    )
    (event,) = materializations("usage_charges")
    assert event.partition == "2026-07-01|acme"

    # The same charges from a file of another name: refused, naming the first batch.
    write(tmp_path, "resent.csv", USAGE_HEADER + FAX + CALLS + CALLS)
    code, out = cli("import", "usage", "resent.csv", *period)
    assert code == 1 and out.startswith(
        f"error: resent.csv: these charges were imported already as batch {batch.id} "
        "(usage-2026-07.csv, 3 charge(s), total 27.78, imported "
    )
    # Some rows identical to imported charges: refused, unless they are new charges.
    write(tmp_path, "late.csv", USAGE_HEADER + FAX + "1,,,SMS bundle,5.00,TEL,2026-07-31\n")
    code, out = cli("import", "usage", "late.csv", *period)
    assert (code, out.splitlines()) == (
        1,
        [
            f"late.csv line 2: identical to a charge already imported in batch {batch.id} "
            "(usage-2026-07.csv line 3)",
            "error: late.csv: 1 bad row, nothing imported; if they are new charges, import "
            "with --allow-duplicates",
        ],
    )
    code, out = cli("import", "usage", "late.csv", *period, "--allow-duplicates")
    assert code == 0 and "imported 2 charges (total 8.10)" in out
    assert count(engine, m.usage_charges) == 5

    monkeypatch.setenv("DATAGATE_OPERATOR", "bob")
    code, out = cli("usage", "remove", *period, "--batch", str(batch.id))
    assert (code, out) == (
        0,
        f"removed batch {batch.id} (usage-2026-07.csv: 3 charge(s), total 27.78) from portal "
        "acme, period 2026-07; bill the period again to update its drafts\n",
    )
    assert count(engine, m.usage_charges) == 2
    code, out = cli("usage", "list", *period)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == [
        "batch",
        "imported",
        "(UTC)",
        "by",
        "file",
        "rows",
        "total",
    ]
    assert lines[1].split()[3:8] == ["alice", "usage-2026-07.csv", "3", "27.78", "removed"]
    assert lines[1].endswith(" by bob")
    assert lines[2].split()[3:] == ["alice", "late.csv", "2", "8.10"]
    assert lines[3] == "1 batch(es) in use: 2 charge(s), total 8.10"
    documents = json.loads(cli("usage", "list", *period, "--json")[1])
    assert [(d["file"], d["rows"], d["total"], d["removed_by"]) for d in documents] == [
        ("usage-2026-07.csv", 3, "27.78", "bob"),
        ("late.csv", 2, "8.10", None),
    ]
    code, out = cli("usage", "remove", *period, "--batch", str(batch.id))
    assert code == 1 and out.startswith(
        f"error: portal acme, period 2026-07: batch {batch.id} was removed already"
    )
    assert len(materializations("usage_charges")) == 3


def test_a_period_with_final_invoices_refuses_usage_imports_and_removals(
    cli, engine, bayside, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    period = ["--portal", "acme", "--period", "2026-07"]
    write(tmp_path, "rates.csv", TAX_RATES)
    write(tmp_path, "templates.csv", TEMPLATES)
    write(tmp_path, "usage.csv", USAGE_HEADER + CALLS)
    assert cli("import", "tax-rates", "rates.csv")[0] == 0
    assert cli("import", "products", "templates.csv", "--portal", "acme")[0] == 0
    assert cli("import", "usage", "usage.csv", *period)[0] == 0
    with engine.begin() as c:
        compute_drafts(c, bayside.settings, date(2026, 7, 1))
        finalize_period(c, bayside.settings, date(2026, 7, 1), today=date(2026, 8, 2))
        batch_id = c.execute(select(m.usage_batches.c.id)).scalar_one()
    write(tmp_path, "more.csv", USAGE_HEADER + FAX)
    closed = (
        "error: portal acme, period 2026-07 has 1 final invoice(s): its usage can no longer change"
    )
    assert cli("import", "usage", "more.csv", *period) == (1, f"{closed}; nothing imported\n")
    assert cli("import", "usage", "more.csv", *period, "--dry-run") == (
        1,
        f"{closed}; nothing imported\n",
    )
    assert cli("usage", "remove", *period, "--batch", str(batch_id)) == (
        1,
        f"{closed}; batch {batch_id} not removed\n",
    )
    assert count(engine, m.usage_charges) == 1


@pytest.mark.slow
def test_clear_a_hold_as_the_operations_guide_says(cli, engine, halo_stack, tmp_path, monkeypatch):
    """docs/operations.md, "Clear a hold": a line without a tax code holds its invoice; import
    the product template for the item, bill again with --export: finalized, numbered, exported."""
    monkeypatch.chdir(tmp_path)
    assert cli("sync", "--portal", "acme")[0] == 0
    with engine.connect() as c:
        zips = {z.split("-")[0] for (z,) in c.execute(select(m.customers.c.zip)) if z}
        zips |= {z.split("-")[0] for (z,) in c.execute(select(m.sites.c.zip)) if z}
        used = sorted(set(c.execute(select(m.products.c.item_id)).scalars()))
    held_item, *mapped = used
    write(
        tmp_path,
        "rates.csv",
        "zip,tax_code,jurisdiction,rate\n"
        + "".join(f"{z},TEL,State,0.0625\n" for z in sorted(zips)),
    )
    write(
        tmp_path,
        "products.csv",
        "item_id,item_name,tax_code,income_account\n" + "".join(f"{i},,TEL,\n" for i in mapped),
    )
    assert cli("import", "tax-rates", "rates.csv")[0] == 0
    assert cli("import", "products", "products.csv", "--portal", "acme")[0] == 0
    code, out = cli("bill", "--portal", "acme", "--period", "2026-07", "--export")
    assert code == 0, out
    before = json.loads(cli("invoices", "--portal", "acme", "--period", "2026-07", "--json")[1])
    # The generated tenant also has customers without a zip: held for that, not our case.
    held = {
        d["agreement"]["key"]
        for d in before
        if d["status"] == "held"
        and all(r.startswith("no tax code for product") for r in d["hold_reasons"])
    }
    assert held, "an item without a template holds its invoices"
    assert all(d["number"] is None for d in before if d["agreement"]["key"] in held)
    exported = {d["agreement"]["key"] for d in before if d["status"] == "exported"}
    assert exported

    write(tmp_path, "fix.csv", f"item_id,item_name,tax_code,income_account\n{held_item},,TEL,\n")
    code, out = cli("import", "products", "fix.csv", "--portal", "acme")
    assert (code, out) == (
        0,
        "product templates from fix.csv: imported 1 new, 0 updated, 0 unchanged, 0 ignored\n",
    )
    code, out = cli("bill", "--portal", "acme", "--period", "2026-07", "--export")
    assert code == 0, out
    after = {
        d["agreement"]["key"]: d
        for d in json.loads(cli("invoices", "--portal", "acme", "--period", "2026-07", "--json")[1])
    }
    for key in held:
        assert after[key]["status"] == "exported" and after[key]["hold_reasons"] == []
        assert after[key]["number"] and after[key]["halo_invoice_id"]
    assert {key for key, d in after.items() if d["status"] == "exported"} == held | exported
    numbers = [int(d["number"]) for d in after.values() if d["number"]]
    assert len(set(numbers)) == len(numbers) == len(held | exported)
