"""Which uniqueness the warehouse's own indexes enforce, read from the catalog: the proof the
`invoices` asset's checks take instead of reading the ledger (invoicing/integrity.py)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from datagate_pipelines.warehouse.catalog import _normal, enforcing_index
from datagate_pipelines.warehouse.db import make_engine, migrate
from datagate_pipelines.warehouse.models import (
    BILLED_PAIR_WHERE,
    billing_ledger,
    invoices,
)
from tests.conftest import rolled_back
from tests.warehouse.test_schema import _invoice, _portal

PAIR = ["portal_id", "product_id", "service_month"]


def test_a_migrated_warehouse_enforces_each_pair_billed_once_and_each_number_used_once(engine):
    with engine.connect() as c:
        assert enforcing_index(c, billing_ledger, PAIR, BILLED_PAIR_WHERE) == (
            "uq_billing_ledger_billed_pair"
        )
        assert enforcing_index(c, invoices, ["portal_id", "doc_number"]) is not None
        # What no index makes unique: a product's months, or pairs among every row.
        assert enforcing_index(c, billing_ledger, ["portal_id", "product_id"]) is None
        assert enforcing_index(c, billing_ledger, PAIR) is None
        assert enforcing_index(c, billing_ledger, PAIR, "kind = 'bill'") is None


@pytest.mark.parametrize(
    ("replacement", "enforced"),
    [
        (None, False),  # dropped
        ("WHERE kind = 'bill' AND released_at IS NULL AND period > '2020-01-01'", False),
        ("WHERE kind = 'bill' OR released_at IS NULL", False),
        ("WHERE (released_at IS NULL) AND kind = 'bill'", False),  # the same rows, other text
        ("WHERE ((kind = 'bill')) AND (released_at IS NULL)", True),
        ("", True),  # unique among all rows: among the billed ones too
    ],
)
def test_only_an_index_with_the_models_predicate_or_none_is_proof(engine, replacement, enforced):
    """The ledger is empty, so any of these unique indexes can be built; DDL is rolled back
    (both databases' DDL is transactional)."""
    with rolled_back(engine) as c:
        c.execute(text("DROP INDEX uq_billing_ledger_billed_pair"))
        if replacement is not None:
            c.execute(
                text(
                    "CREATE UNIQUE INDEX uq_other ON billing_ledger "
                    f"(service_month, product_id, portal_id) {replacement}"
                )
            )
        found = enforcing_index(c, billing_ledger, PAIR, BILLED_PAIR_WHERE)
    assert found == ("uq_other" if enforced else None)
    with engine.connect() as c:  # and the model's index is back
        assert enforcing_index(c, billing_ledger, PAIR, BILLED_PAIR_WHERE) == (
            "uq_billing_ledger_billed_pair"
        )


def test_an_index_postgresql_left_invalid_is_no_proof(database_url):
    """A unique index built CONCURRENTLY over rows that are not unique fails and stays,
    invalid: unique in name only."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite builds an index whole or not at all")
    engine = make_engine(database_url)
    migrate(engine)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("DROP INDEX uq_billing_ledger_billed_pair"))
        _portal(c)
        for key, period in (("july", date(2026, 7, 1)), ("august", date(2026, 8, 1))):
            c.execute(  # the same pair billed by both invoices
                billing_ledger.insert().values(
                    portal_id="acme",
                    product_id="p1",
                    service_month=date(2026, 7, 1),
                    period=period,
                    invoice_id=_invoice(c, key=key),
                    kind="bill",
                )
            )
        with pytest.raises(IntegrityError, match="could not create unique index"):
            c.execute(
                text(
                    "CREATE UNIQUE INDEX CONCURRENTLY uq_billing_ledger_billed_pair ON"
                    " billing_ledger (portal_id, product_id, service_month)"
                    f" WHERE {BILLED_PAIR_WHERE}"
                )
            )
        left = "SELECT to_regclass('uq_billing_ledger_billed_pair') IS NOT NULL"
        assert c.execute(text(left)).scalar_one()  # the index is there, invalid
        assert enforcing_index(c, billing_ledger, PAIR, BILLED_PAIR_WHERE) is None
    engine.dispose()


@pytest.mark.parametrize(
    ("stored", "model"),
    [
        # PostgreSQL's rendering of the model's predicate
        ("((kind)::text = 'bill'::text) AND (released_at IS NULL)", BILLED_PAIR_WHERE),
        ('"kind" = \'bill\' AND "released_at" IS NULL', BILLED_PAIR_WHERE),
        ("(x)::character varying = 'a b'::character varying", "x = 'a b'"),
        ("x IS NOT NULL", "x is not null"),
    ],
)
def test_a_predicate_as_the_database_renders_it_matches_the_models(stored, model):
    assert _normal(stored) == _normal(model) is not None


@pytest.mark.parametrize(
    "predicate",
    ["a = 1 OR b = 2", "NOT (a = 1 AND b = 2)", "a = 1 AND NOT b = 2"],
)
def test_a_predicate_whose_parentheses_decide_is_never_matched(predicate):
    assert _normal(predicate) is None


def test_string_literals_keep_their_case_and_words():
    assert _normal("kind = 'Bill OR not'") == "kind = 'Bill OR not'"
    assert _normal("kind = 'bill'") != _normal("kind = 'BILL'")
