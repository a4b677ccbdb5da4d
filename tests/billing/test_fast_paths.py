"""The engine's fast paths against their general paths and plain references.

Each fast path (ids that arrive sorted, a ledger's runs of one product, objects shared
between rows, packed sort keys, contiguous ledger runs) is taken only when its
precondition holds; these tests feed inputs of both kinds and check that the answer never
depends on the path taken.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.bench_billing import (
    PERIOD,
    SETTINGS,
    as_read_from_warehouse,
    generate_portal,
    in_random_order,
)
from datagate_pipelines.billing import bill_period
from datagate_pipelines.billing.codes import coded_column, normalize_zip
from datagate_pipelines.billing.engine import _sort_order
from datagate_pipelines.billing.ids import find_ids, rank_strings
from datagate_pipelines.billing.ledger import unbilled_months
from datagate_pipelines.billing.lines import RECURRING, USAGE, LineSources, SourceTable
from datagate_pipelines.billing.money import decimals_to_scaled, scaled_columns_to_decimals
from datagate_pipelines.billing.month_columns import parse_dates
from tests.billing.oracle import oracle_bill
from tests.billing.portal import assert_same, plain_records

D = Decimal
QUICK = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def objects(values) -> np.ndarray:
    return np.fromiter(values, dtype=object)


# --- text ids ---------------------------------------------------------------------------

IDS = st.sampled_from(["a", "b", "b2", "c", "ä", "z", "10", "9"])


@QUICK
@given(st.lists(IDS, max_size=30), st.lists(IDS, max_size=8, unique=True), st.booleans())
def test_find_ids_matches_a_dictionary(ids, known, sort_them):
    if sort_them:  # both sorted: the merge path; else the hash path
        ids, known = sorted(ids), sorted(known)
    position = {value: i for i, value in enumerate(known)}
    found = find_ids(objects(ids), objects(known), known_ascending=known == sorted(known))
    assert found.tolist() == [position.get(value, -1) for value in ids]


def test_find_ids_compares_ids_as_text():
    known = objects(["1", "2", "x"])
    ids = objects([1, 1, "2", None, pd.NA, "x", "x", 3])
    assert find_ids(ids, known, known_ascending=True).tolist() == [0, 0, 1, -1, -1, 2, 2, -1]


@QUICK
@given(st.lists(IDS, max_size=30))
def test_rank_strings_orders_by_code_point_and_counts_repeats(values):
    rank, occurrences = rank_strings(objects(values))
    by_rank = [value for _, value in sorted(zip(rank.tolist(), values, strict=True))]
    assert by_rank == sorted(values)
    assert occurrences.tolist() == [values.count(value) for value in values]


# --- Decimal columns --------------------------------------------------------------------

DECIMALS = st.one_of(
    st.builds(lambda n, p: D(n).scaleb(-p), st.integers(-(10**9), 10**9), st.integers(0, 6)),
    st.sampled_from(
        [
            D("0.1"),
            D("0.1000000000000000000000001"),  # the same float as 0.1, not the same value
            D("1E+400"),  # beyond float range
            D("-0"),
            D("NaN"),
            D("Infinity"),
            None,
        ]
    ),
)
# Ints among Decimals make a mixed column, read value by value.
VALUES = st.one_of(DECIMALS, st.sampled_from([7, 10**400, 0]))


def reference(value, places: int, rounding: bool) -> tuple[int, bool]:
    """(scaled, invalid) for one value, the slow obvious way."""
    if type(value) is int:
        return value * 10**places, False
    if type(value) is not Decimal or not value.is_finite():
        return 0, True
    with localcontext() as context:
        context.prec = 1000
        scaled = value.scaleb(places)
        whole = int(scaled.to_integral_value(rounding=ROUND_HALF_UP))
        if not rounding and whole != scaled:
            return 0, True
        return whole, False


@QUICK
@given(
    st.one_of(st.lists(DECIMALS, max_size=40), st.lists(VALUES, max_size=40)),
    st.booleans(),
    st.booleans(),
)
def test_decimal_columns_read_the_same_shared_or_not(values, share, rounding):
    """A column that repeats shared objects is grouped by hash; one of distinct objects by
    float value, checked exactly. Both give each value's own conversion."""
    if share:  # every row refers to one of a few objects
        column = objects(values[i % 3] for i in range(len(values))) if values else objects([])
    else:
        column = objects(values)
    scaled, invalid = decimals_to_scaled(column, 2, rounding=rounding)
    expected = [reference(value, 2, rounding) for value in column.tolist()]
    assert [int(s) for s in scaled.tolist()] == [s for s, _ in expected]
    assert invalid.tolist() == [bad for _, bad in expected]


def test_floats_are_refused_even_next_to_equal_decimals():
    _, invalid = decimals_to_scaled(objects([D("1.5"), 1.5, D("2")]), 2)
    assert invalid.tolist() == [False, True, False]
    _, invalid = decimals_to_scaled(objects([D("1.5")] * 20 + [1.5]), 2)
    assert invalid.tolist() == [False] * 20 + [True]


def test_a_signalling_nan_is_invalid_not_an_error():
    for column in (objects([D("sNaN"), D("1")]), objects([D("sNaN")] * 10 + [D("1")])):
        scaled, invalid = decimals_to_scaled(column, 2)
        assert invalid.tolist()[0] and not invalid.tolist()[-1]
        assert scaled.tolist()[-1] == 100


def test_result_decimals_are_shared_between_columns_and_exact():
    amounts, totals = scaled_columns_to_decimals(
        [np.array([1234, -5, 0]), np.array([1234, 10**20], dtype=object)]
    )
    assert [str(d) for d in amounts] == ["12.34", "-0.05", "0.00"]
    assert [str(d) for d in totals] == ["12.34", "1000000000000000000.00"]
    assert amounts[0] is totals[0]


# --- dates, ledger, sort keys -------------------------------------------------------------


def test_date_columns_take_dates_datetimes_and_datetime64():
    column = parse_dates(
        pd.Series(objects([date(2026, 7, 31), datetime(2026, 8, 1, 23, 59), None, "2026-07-01"]))
    )
    assert column.month.tolist()[:2] == [2026 * 12 + 6, 2026 * 12 + 7]
    assert column.day.tolist()[:2] == [31, 1]
    assert column.missing.tolist() == [False, False, True, False]
    assert column.invalid.tolist() == [False, False, False, True]
    typed = parse_dates(pd.Series(pd.to_datetime(["2026-02-28", None])))
    assert typed.month.tolist()[0] == 2026 * 12 + 1 and typed.missing.tolist() == [False, True]
    assert typed.date(0) == date(2026, 2, 28)


@QUICK
@given(
    st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=1, max_size=6),
    st.lists(st.tuples(st.integers(0, 5), st.integers(-2, 14)), max_size=25),
    st.booleans(),
    st.sampled_from([np.int32, np.int64]),
)
def test_unbilled_months_is_the_range_minus_the_ledger(ranges, ledger, sort_ledger, width):
    """`width`: positions and months come as int32 (key tables, month tables) or int64."""
    ledger = [(owner, month) for owner, month in ledger if owner < len(ranges)]
    if sort_ledger:  # the usual order: the contiguous-run path without sorting
        ledger.sort()
    lo = np.array([r[0] for r in ranges], dtype=width)
    hi = np.array([r[1] for r in ranges], dtype=width)
    owner = np.array([o for o, _ in ledger], dtype=width)
    month = np.array([m for _, m in ledger], dtype=width)
    products, months = unbilled_months(lo, hi, owner, month)
    billed = set(ledger)
    expected = [
        (p, m)
        for p, (low, high) in enumerate(ranges)
        for m in range(low, high + 1)
        if (p, m) not in billed
    ]
    assert list(zip(products.tolist(), months.tolist(), strict=True)) == expected


@QUICK
@given(
    st.lists(
        st.tuples(st.integers(-3, 3), st.integers(0, 2**40), st.integers(-(2**30), 2**30)),
        max_size=30,
        unique=True,
    )
)
def test_packed_sort_keys_order_like_lexsort(rows):
    keys = [np.array([row[k] for row in rows], dtype=np.int64) for k in range(3)]
    if not rows:
        assert _sort_order(keys).tolist() == []
        return
    assert _sort_order(keys).tolist() == np.lexsort(keys[::-1]).tolist()


@pytest.mark.parametrize("kinds", [[0, 1, 0, 0, 1, 0], [1, 1, 0, 1, 1, 1], [0, 0, 0], [1, 1], []])
def test_line_sources_take_each_lines_value_from_the_table_of_its_kind(kinds):
    """Lines of both kinds in any mix (recurring or usage the majority): each line's value
    comes from its own kind's table, None where that table has no such column."""
    products = SourceTable(
        record_id=objects(["P0", "P1", "P2", "P3"]), description=objects(["p0", "p1", "p2", "p3"])
    )
    usage = SourceTable(
        record_id=objects(["U0", "U1", "U2"]), description=objects(["u0", "u1", "u2"])
    )
    kind = np.array(kinds, dtype=np.int8)
    source = np.array([(3 * i + 1) % (4 if k == RECURRING else 3) for i, k in enumerate(kinds)])
    lines = SimpleNamespace(kind=kind, source=source)
    sources = LineSources({RECURRING: products, USAGE: usage})
    tables = {RECURRING: products, USAGE: usage}
    expected = [tables[k].description[s] for k, s in zip(kinds, source.tolist(), strict=True)]
    assert sources.take(lines, "description").tolist() == expected
    product_ids = sources.take(lines, "record_id", kinds=(RECURRING,)).tolist()
    assert product_ids == [
        products.record_id[s] if k == RECURRING else None
        for k, s in zip(kinds, source.tolist(), strict=True)
    ]
    usage_ids = sources.take(lines, "record_id", kinds=(USAGE,)).tolist()
    assert usage_ids == [
        usage.record_id[s] if k == USAGE else None
        for k, s in zip(kinds, source.tolist(), strict=True)
    ]
    assert sources.take(lines, "given_qty").tolist() == [None] * len(kinds)


# --- the engine on the benchmark's portal ---------------------------------------------------


@pytest.mark.parametrize("settings_name", ["default", "other"])
def test_engine_answer_does_not_depend_on_row_order_or_shared_objects(settings_name):
    """The benchmark's portal arrives sorted by id with shared Decimal, date and text
    objects (fast paths); the same portal shuffled and with every value its own object
    takes the general paths. Same invoices, lines, subtotals and ledger; rejects are listed
    in input order, so they are compared as sets."""
    settings_ = SETTINGS[settings_name]
    frames = generate_portal(150, settings_)
    expected = bill_period(PERIOD, settings_, **frames)
    assert_same(expected, oracle_bill(PERIOD, settings_, **frames))

    shuffled = in_random_order(as_read_from_warehouse(frames))
    for variant in (as_read_from_warehouse(frames), shuffled):
        got = bill_period(PERIOD, settings_, **variant)
        for name in ("invoices", "invoice_lines", "site_subtotals", "ledger"):
            pd.testing.assert_frame_equal(getattr(got, name), getattr(expected, name))
        rejects = {tuple(r.values()) for r in plain_records(got.rejects)}
        assert rejects == {tuple(r.values()) for r in plain_records(expected.rejects)}


def test_coded_column_merges_values_that_normalise_alike():
    """Zips coded once per distinct raw value: '94107-1234' and ' 94107 ' are one zip, blank
    and missing are none (-1)."""
    raw = objects(["94107-1234", None, "10001", " 94107 ", "", "10001", float("nan")])
    codes, names = coded_column(raw, normalize_zip)
    assert names == ["94107", "10001"]
    assert codes.tolist() == [0, -1, 1, 0, -1, 1, -1]
