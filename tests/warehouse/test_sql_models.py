"""SQL models (dbt_like_sql/): dependencies read from the SQL, build order, and every model
built on SQLite and PostgreSQL over docs/billing.md's worked example (Bayside Dental)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import insert, inspect, select, text

from datagate_pipelines.assets.sql import sql_model_assets, upstream_keys
from datagate_pipelines.imports.product_templates import import_product_templates
from datagate_pipelines.imports.tax_rates import import_tax_rates
from datagate_pipelines.imports.usage import import_usage
from datagate_pipelines.invoicing.drafts import compute_drafts
from datagate_pipelines.invoicing.finalize import finalize_period
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.warehouse import models as m
from datagate_pipelines.warehouse import sql_models
from datagate_pipelines.warehouse.sql_models import SQLModelError, table_references
from tests.invoicing.test_billing_flow import AUGUST, JULY, TAX_RATES, TEMPLATES, USAGE
from tests.sync.halo_records import bayside_tenant
from tests.sync.test_apply import portal, sync_all

HEADER = "-- A test model.\n-- Grain: whatever.\n-- Units: none.\n"


def write(folder: Path, name: str, sql: str, header: str = HEADER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.sql"
    path.write_text(header + sql)
    return path


@pytest.fixture
def warehouse(engine):
    """The migrated warehouse; the session shares it, so our views and tables go after."""
    yield engine
    cascade = " CASCADE" if engine.dialect.name == "postgresql" else ""
    with engine.begin() as connection:
        inspector = inspect(connection)
        for view in inspector.get_view_names():
            connection.execute(text(f"DROP VIEW IF EXISTS {view}{cascade}"))
        for table in set(inspector.get_table_names()) - set(m.metadata.tables):
            if table != "alembic_version":
                connection.execute(text(f"DROP TABLE IF EXISTS {table}{cascade}"))


@pytest.fixture
def bayside(warehouse, tmp_path):
    engine = warehouse
    """The worked example billed: July final, August draft, July exported to HaloPSA."""
    p = portal()
    sync_all(engine, p, bayside_tenant())
    usage = tmp_path / "usage-2026-07.csv"
    usage.write_text(USAGE)
    with engine.begin() as c:
        import_tax_rates(c, TAX_RATES)
        import_product_templates(c, "acme", TEMPLATES)
        import_usage(c, "acme", JULY, usage, imported_by="test")
    with engine.begin() as c:
        compute_drafts(c, p.settings, JULY)
        finalize_period(c, p.settings, JULY, today=date(2026, 9, 2))
        compute_drafts(c, p.settings, AUGUST)
        july = c.execute(select(m.invoices.c.id).where(m.invoices.c.period == JULY)).scalar_one()
        now = datetime(2026, 9, 2, tzinfo=UTC)
        c.execute(
            insert(m.exports).values(
                invoice_id=july,
                target="halopsa",
                status="exported",
                external_id="9001",
                request_id="req-1",
                attempts=1,
                updated_at=now,
                exported_at=now,
            )
        )
    return p


def plain(value):
    """Views give dates as text on SQLite and booleans as 0/1: compare them one way."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


def rows(engine, view: str, *order: str) -> list[dict]:
    with engine.connect() as c:
        result = c.execute(text(f"SELECT * FROM {view} ORDER BY {', '.join(order)}"))
        return [{k: plain(v) for k, v in row.items()} for row in result.mappings()]


def project_model(name: str) -> sql_models.SQLModel:
    return next(model for model in sql_models.discover() if model.name == name)


# --- dependencies from the SQL -----------------------------------------------------------


def test_references_exclude_ctes_and_reach_into_subqueries():
    sql = """
    WITH invoices AS (SELECT * FROM invoice_lines),
         recent AS (SELECT * FROM invoices)
    SELECT r.*, (SELECT MAX(name) FROM customers) AS top
    FROM recent AS r
    JOIN (SELECT * FROM agreements) AS a ON 1 = 1
    WHERE EXISTS (SELECT 1 FROM sites WHERE sites.halo_site_id = r.site_id)
      AND r.invoice_id IN (SELECT invoice_id FROM billing_ledger)
    UNION ALL
    SELECT * FROM (WITH products AS (SELECT 1 AS x) SELECT * FROM products) AS shadowed
    """
    # `invoices` and `products` are CTEs where they are read: the tables are not.
    assert table_references(sql) == {
        "invoice_lines",
        "customers",
        "agreements",
        "sites",
        "billing_ledger",
    }


def test_models_read_models_and_are_built_upstream_first(tmp_path):
    folder = tmp_path / "dbt_like_sql"
    write(folder, "a_report", "SELECT * FROM b_totals JOIN c_base ON 1 = 1")
    write(folder, "b_totals", "WITH t AS (SELECT * FROM c_base) SELECT * FROM t")
    write(folder, "c_base", "SELECT id FROM invoices")
    models = sql_models.discover(folder)
    assert [model.name for model in models] == ["c_base", "b_totals", "a_report"]
    by_name = {model.name: model for model in models}
    assert by_name["a_report"].models == {"b_totals", "c_base"}
    assert by_name["a_report"].tables == set()
    assert by_name["b_totals"].models == {"c_base"}
    assert by_name["c_base"].tables == {"invoices"}
    assert [d.name for d in sql_models.downstream(models, "c_base")] == ["b_totals", "a_report"]
    assert by_name["a_report"].description == "A test model.\n\nGrain: whatever.\n\nUnits: none."


@pytest.mark.parametrize(
    ("name", "sql", "reason"),
    [
        ("typo", "SELECT * FROM invoicez", "reads unknown table(s) invoicez"),
        ("writes", "DELETE FROM invoices", "exactly one SELECT"),
        ("two", "SELECT 1; SELECT 2", "exactly one SELECT"),
        ("qualified", "SELECT * FROM public.invoices", "schema-qualified"),
        ("invoices", "SELECT 1 AS one", "is a warehouse table"),
        ("Bad-Name", "SELECT 1 AS one", "lower-case identifiers"),
        ("broken", "SELECT FROM WHERE", "Expected"),
    ],
)
def test_bad_model_files_are_refused_by_name(tmp_path, name, sql, reason):
    path = write(tmp_path / "dbt_like_sql", name, sql)
    with pytest.raises(SQLModelError) as caught:
        sql_models.discover(path.parent)
    assert str(caught.value).startswith(f"dbt_like_sql/{name}.sql: ")
    assert reason in str(caught.value)


def test_a_model_without_header_or_in_a_cycle_is_refused(tmp_path):
    folder = tmp_path / "dbt_like_sql"
    write(folder, "bare", "SELECT 1 AS one", header="")
    with pytest.raises(SQLModelError, match=r"dbt_like_sql/bare.sql: begins with a comment header"):
        sql_models.discover(folder)
    (folder / "bare.sql").unlink()
    write(folder, "ping", "SELECT * FROM pong")
    write(folder, "pong", "SELECT * FROM ping")
    with pytest.raises(SQLModelError, match=r"in a cycle: (ping → pong → ping|pong → ping → pong)"):
        sql_models.discover(folder)


def test_project_models_say_what_they_answer_and_map_to_pipeline_assets():
    models = {model.name: model for model in sql_models.discover()}
    assert {
        "recurring_lines_enriched",
        "invoice_summary",
        "recurring_vs_invoiced",
        "export_status",
        "ledger_coverage",
    } <= set(models)
    for model in models.values():
        assert "Grain:" in model.description and "Units:" in model.description, model.name
        assert model.materialized == "view"
    assert [k.to_user_string() for k in upstream_keys(models["recurring_lines_enriched"])] == [
        "halo_asset_groups",
        "halo_clients",
        "halo_contracts",
        "halo_items",
        "halo_recurring_invoices",
        "products",
    ]
    assert [k.to_user_string() for k in upstream_keys(models["export_status"])] == [
        "halo_invoice_export",
        "invoices",
        "qbo_invoice_export",
    ]
    assert [k.to_user_string() for k in upstream_keys(models["recurring_vs_invoiced"])] == [
        "customers",
        "invoice_lines",
        "invoices",
        "recurring_lines_enriched",
    ]


# --- built in the warehouse ---------------------------------------------------------------


def test_every_model_builds_and_answers_the_worked_example(warehouse, bayside):
    engine = warehouse
    built = {b.name: b for b in sql_models.materialize_all(engine, sql_models.discover())}
    assert built["invoice_summary"].row_count == 4
    assert "total_minor" in dict(built["invoice_summary"].columns)

    summary = rows(engine, "invoice_summary", "period", "site_id")
    money = [
        (r["period"], r["site_name"], r["lines"], r["subtotal_minor"], r["tax_minor"])
        for r in summary
    ]
    assert money == [
        ("2026-07-01", "Main", 3, 26506, 1921),
        ("2026-07-01", "Annex", 2, 8579, 640),
        ("2026-08-01", "Main", 1, 24950, 1809),
        ("2026-08-01", "Annex", 2, 9498, 640),
    ]
    july = [r for r in summary if r["period"] == "2026-07-01"]
    assert sum(r["total_minor"] for r in july) == 37646
    assert sum(r["subtotal_minor"] for r in july) == 35085
    assert {(r["final_invoices"], r["draft_invoices"]) for r in july} == {(1, 0)}
    assert {r["draft_invoices"] for r in summary if r["period"] == "2026-08-01"} == {1}

    lines = {r["line_id"]: r for r in rows(engine, "recurring_lines_enriched", "line_id")}
    assert len(lines) == 6
    router = lines[3]
    assert (router["contract_type_name"], router["item_group_name"], router["opted_in"]) == (
        "Managed Services",
        "Hardware",
        1,
    )
    assert (router["has_product"], router["product_id"], router["monthly_minor"]) == (
        1,
        "line:3",
        1500,
    )
    assert (lines[1]["monthly_minor"], lines[2]["monthly_minor"]) == (24950, 7998)
    # Unknown item 99: rejected, so no product; Harbor Vets is not ticked "Datagate".
    assert (lines[5]["has_product"], lines[5]["item_name"]) == (0, None)
    assert (lines[6]["opted_in"], lines[6]["has_product"]) == (0, 0)
    assert {r["is_deleted"] for r in lines.values()} == {0}

    reconciled = [
        (
            r["period"],
            r["service_month"],
            r["customer_name"],
            r["halo_monthly_minor"],
            r["invoiced_minor"],
            r["difference_minor"],
            r["halo_lines_not_billable"],
        )
        for r in rows(engine, "recurring_vs_invoiced", "period", "customer_id")
    ]
    # July bills August: the router (12/31) and the fax line (10/31) are pro rata.
    assert reconciled == [
        ("2026-07-01", "2026-08-01", "Bayside Dental", 35447, 33851, -1596, 1),
        ("2026-08-01", "2026-09-01", "Bayside Dental", 34448, 34448, 0, 1),
    ]

    exports = [
        (r["period"], r["target"], r["export_status"], r["invoices"], r["total_minor"])
        for r in rows(engine, "export_status", "period", "target")
    ]
    assert exports == [
        ("2026-07-01", "halopsa", "exported", 1, 37646),
        ("2026-07-01", "qbo", "not_exported", 1, 37646),
        ("2026-08-01", "halopsa", "not_final", 1, 36897),
        ("2026-08-01", "qbo", "not_final", 1, 36897),
    ]

    coverage = [
        tuple(
            r[c]
            for c in (
                "product_id",
                "months_billed",
                "first_service_month",
                "months_final",
                "billed_minor",
            )
        )
        for r in rows(engine, "ledger_coverage", "product_id")
    ]
    assert coverage == [
        ("line:1", 2, "2026-08-01", 1, 49900),
        ("line:2", 2, "2026-08-01", 1, 15996),
        ("line:3", 2, "2026-08-01", 1, 2081),
        ("line:4", 1, "2026-08-01", 1, 322),
    ]


def test_rebuilding_is_idempotent_and_keeps_the_models_built_on_top(warehouse, bayside):
    engine = warehouse
    models = sql_models.discover()
    first = sql_models.materialize_all(engine, models)
    before = rows(engine, "recurring_vs_invoiced", "period", "customer_id")
    assert sql_models.materialize_all(engine, models) == first
    # PostgreSQL will not drop a view another reads: the one on top is rebuilt with it.
    again = sql_models.materialize(engine, project_model("recurring_lines_enriched"))
    assert again.row_count == 6
    assert rows(engine, "recurring_vs_invoiced", "period", "customer_id") == before
    assert {v for v in inspect(engine).get_view_names()} == {model.name for model in models}


def test_a_failing_model_names_its_file_and_keeps_its_last_good_build(warehouse, tmp_path):
    engine = warehouse
    folder = tmp_path / "dbt_like_sql"
    write(folder, "invoice_ids", "SELECT id FROM invoices")
    (good,) = sql_models.discover(folder)
    sql_models.materialize(engine, good)
    write(folder, "invoice_ids", "SELECT no_such_column FROM invoices")
    (broken,) = sql_models.discover(folder)
    with pytest.raises(SQLModelError) as caught:
        sql_models.materialize(engine, broken)
    message = str(caught.value)
    assert message.startswith("dbt_like_sql/invoice_ids.sql: ")
    # SQLite: "no such column: no_such_column"; PostgreSQL: 'column "no_such_column" does not exist'.
    assert "no_such_column" in message and "column" in message
    assert rows(engine, "invoice_ids", "id") == []  # the previous view is still there


def test_a_model_may_be_built_as_a_table_and_switch_back(warehouse, bayside, tmp_path):
    engine = warehouse
    folder = tmp_path / "dbt_like_sql"
    header = HEADER + "-- materialized: table\n"
    write(folder, "periods", "SELECT DISTINCT portal_id, period FROM invoices", header=header)
    (model,) = sql_models.discover(folder)
    assert model.materialized == "table" and "materialized" not in model.description
    for _ in range(2):
        assert sql_models.materialize(engine, model).row_count == 2
    assert "periods" in inspect(engine).get_table_names()
    write(folder, "periods", "SELECT DISTINCT portal_id, period FROM invoices")
    (as_view,) = sql_models.discover(folder)
    assert sql_models.materialize(engine, as_view).materialized == "view"
    assert "periods" in inspect(engine).get_view_names()
    assert "periods" not in inspect(engine).get_table_names()


def test_model_sql_reaches_the_database_as_written(warehouse, bayside, tmp_path):
    # No bind-parameter parsing (":customer") and no driver formatting ("%").
    sql = "SELECT invoice_key FROM invoices WHERE invoice_key LIKE '%:customer:%'"
    write(tmp_path / "dbt_like_sql", "customer_invoices", sql)
    (model,) = sql_models.discover(tmp_path / "dbt_like_sql")
    assert sql_models.materialize(warehouse, model).row_count == 2


# --- as Dagster assets --------------------------------------------------------------------


def test_sql_assets_materialize_with_row_counts_columns_and_sql(warehouse, engine_url, bayside):
    engine = warehouse
    assets = sql_model_assets()
    by_key = {a.key.to_user_string(): a for a in assets}
    assert by_key["recurring_vs_invoiced"].dependency_keys >= {
        dg.AssetKey("recurring_lines_enriched"),
        dg.AssetKey("invoice_lines"),
    }
    spec = next(iter(by_key["invoice_summary"].specs))
    assert spec.group_name == "sql" and "sql" in spec.kinds
    assert spec.partitions_def is None
    assert spec.description.startswith("What each customer is invoiced")

    result = dg.materialize(
        assets, resources={"warehouse": WarehouseResource(database_url=engine_url)}
    )
    assert result.success
    materialized = {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert set(materialized) == set(by_key)
    summary = materialized["invoice_summary"]
    assert summary["dagster/row_count"].value == 4
    columns = [c.name for c in summary["dagster/column_schema"].schema.columns]
    assert columns[:2] == ["portal_id", "period"] and "total_minor" in columns
    assert summary["sql"].value.startswith("```sql\n-- What each customer is invoiced")
    with engine.connect() as c:
        total = c.execute(
            text("SELECT SUM(total_minor) FROM invoice_summary WHERE portal_id = 'acme'")
        ).scalar_one()
    assert int(total) == 37646 + 36897


def test_a_broken_model_fails_its_asset_with_the_file_and_reason(warehouse, engine_url, tmp_path):
    folder = tmp_path / "dbt_like_sql"
    write(folder, "broken", "SELECT nope FROM invoices")
    result = dg.materialize(
        sql_model_assets(folder),
        resources={"warehouse": WarehouseResource(database_url=engine_url)},
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith("dbt_like_sql/broken.sql: ") and "nope" in description


def test_models_come_from_the_project_else_from_the_installed_package(tmp_path, monkeypatch):
    """In a checkout the project's dbt_like_sql/ is read; installed from the wheel (no
    project around the package) the copy pyproject.toml puts inside the package is."""
    monkeypatch.delenv(sql_models.MODELS_DIR_ENV, raising=False)
    assert sql_models.models_dir() == sql_models.PROJECT_DIR / "dbt_like_sql"
    monkeypatch.setattr(sql_models, "PROJECT_DIR", tmp_path)  # a site-packages: no models
    assert sql_models.models_dir() == sql_models.PACKAGED_MODELS_DIR
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '"dbt_like_sql" = "datagate_pipelines/dbt_like_sql"' in pyproject
    assert sql_models.PACKAGED_MODELS_DIR.relative_to(Path(sql_models.__file__).parents[1]) == Path(
        "dbt_like_sql"
    )
    monkeypatch.setenv(sql_models.MODELS_DIR_ENV, str(tmp_path))
    assert sql_models.models_dir() == tmp_path
