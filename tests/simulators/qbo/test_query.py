"""The QBO query language (docs/qbo-api.md §4): parsing, escaping, filtering, ordering, paging."""

from __future__ import annotations

from datetime import timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datagate_simulators.qbo.backend.query import Condition, evaluate, page, parse_query
from datagate_simulators.qbo.errors import QBOFault

PACIFIC = timezone(timedelta(hours=-7))


def quote(value: str) -> str:
    """How PQB and node-quickbooks quote a literal: backslash before \\ and '."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        # PQB style: upper-case keywords, ORDERBY in one word.
        (
            "SELECT * FROM Customer WHERE Active = true ORDERBY DisplayName STARTPOSITION 1 "
            "MAXRESULTS 1000",
            dict(
                entity="Customer",
                where=(Condition("Active", "=", True),),
                order_by=(("DisplayName", False),),
                start_position=1,
                max_results=1000,
            ),
        ),
        # node-quickbooks style: lower-case keywords.
        (
            "select * from Invoice where DocNumber = '1001' orderby Id desc startposition 11 "
            "maxresults 10",
            dict(
                entity="Invoice",
                where=(Condition("DocNumber", "=", "1001"),),
                order_by=(("Id", True),),
                start_position=11,
                max_results=10,
            ),
        ),
        # tap-quickbooks style: ORDER BY with a space, mixed-case MetaData path.
        (
            "SELECT * FROM Invoice WHERE Metadata.LastUpdatedTime >= '2025-01-01T00:00:00-08:00' "
            "ORDER BY Metadata.LastUpdatedTime ASC MAXRESULTS 1000 STARTPOSITION 1",
            dict(
                entity="Invoice",
                where=(Condition("Metadata.LastUpdatedTime", ">=", "2025-01-01T00:00:00-08:00"),),
                order_by=(("Metadata.LastUpdatedTime", False),),
                max_results=1000,
            ),
        ),
        ("SELECT count(*) FROM Customer", dict(entity="Customer", count=True)),
        (
            "Select COUNT( * ) from Item where Type IN ('Service', 'NonInventory')",
            dict(
                entity="Item",
                count=True,
                where=(Condition("Type", "IN", ("Service", "NonInventory")),),
            ),
        ),
        (
            "select * from Item where Name like 'Man%'",
            dict(entity="Item", where=(Condition("Name", "LIKE", "Man%"),)),
        ),
        (
            "select * from Invoice where TotalAmt > 10.50 and TotalAmt <= 100",
            dict(
                entity="Invoice",
                where=(
                    Condition("TotalAmt", ">", Decimal("10.50")),
                    Condition("TotalAmt", "<=", Decimal("100")),
                ),
            ),
        ),
        # PQB 0.9.12 Item.all sends this projection (docs/qbo-api.md §3.2).
        ("SELECT *, Sku FROM Item", dict(entity="Item", fields=None)),
        (
            "SELECT Id, DisplayName FROM Customer",
            dict(entity="Customer", fields=("Id", "DisplayName")),
        ),
        ("SELECT * FROM Customer;", dict(entity="Customer")),
    ],
)
def test_parse(statement, expected):
    query = parse_query(statement)
    for key, value in expected.items():
        assert getattr(query, key) == value, key


def test_defaults_are_start_1_and_100_rows():
    # PQB README / routablehq#1: the default page is 100 rows.
    query = parse_query("select * from Customer")
    assert (query.start_position, query.max_results) == (1, 100)


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r"'O\'Brien & Sons'", "O'Brien & Sons"),  # Intuit blog "Advanced SQL queries"
        (r"'Parent:Child'", "Parent:Child"),  # a colon inside a value is just text
        (r"'back\\slash'", "back\\slash"),
        (r"'it''s'", None),  # SQL-style doubled quotes are not QBO's escape
        ("'with \"double\" quotes and %'", 'with "double" quotes and %'),
    ],
)
def test_string_escapes(literal, value):
    statement = f"select * from Customer where DisplayName = {literal}"
    if value is None:
        with pytest.raises(QBOFault) as info:
            parse_query(statement)
        assert info.value.code == "4000"
    else:
        assert parse_query(statement).where[0].value == value


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_any_string_survives_quoting(value):
    query = parse_query(f"select * from Customer where DisplayName = {quote(value)}")
    assert query.where[0].value == value


@pytest.mark.parametrize(
    "statement",
    [
        "",
        "select from Customer",
        "select * Customer",
        "select * from Customer where",
        "select * from Customer where DisplayName = 'unterminated",
        "select * from Customer where DisplayName = 'a' or DisplayName = 'b'",  # no OR
        "select * from Customer where DisplayName != 'a'",
        "select * from Customer where DisplayName <> 'a'",
        "select * from Customer group by DisplayName",
        "select * from Customer maxresults ten",
        "select * from Customer where Active = yes",
        "select * from Customer where Name like 5",
        "select * from Customer orderby",
        "select * from Customer where Id in ()",
        "delete from Customer",
    ],
)
def test_parse_errors_are_4000(statement):
    with pytest.raises(QBOFault) as info:
        parse_query(statement)
    assert info.value.code == "4000"
    assert info.value.status == 400
    assert info.value.errors[0].detail.startswith("QueryParserError")


def test_maxresults_over_1000_is_4001():
    # ruckus/quickbooks-ruby#24 quotes the message.
    with pytest.raises(QBOFault) as info:
        parse_query("select * from Customer maxresults 1500")
    assert info.value.code == "4001"
    assert "value 1500 is too large. Max allowed value is 1000" in info.value.errors[0].detail


@pytest.mark.parametrize("clause", ["maxresults 0", "startposition 0"])
def test_zero_paging_values_are_4001(clause):
    with pytest.raises(QBOFault) as info:
        parse_query(f"select * from Customer {clause}")
    assert info.value.code == "4001"


# --------------------------------------------------------------------------- evaluation

ROWS = [
    {
        "Id": "1",
        "DisplayName": "Acme",
        "Active": True,
        "Balance": Decimal("10"),
        "CustomerRef": {"value": "7", "name": "x"},
        "MetaData": {"LastUpdatedTime": "2025-01-10T10:00:00-08:00"},
    },
    {
        "Id": "2",
        "DisplayName": "O'Brien & Sons",
        "Active": True,
        "Balance": Decimal("2.5"),
        "CustomerRef": {"value": "8"},
        "MetaData": {"LastUpdatedTime": "2025-01-12T10:00:00-08:00"},
    },
    {
        "Id": "10",
        "DisplayName": "acme west",
        "Active": False,
        "Balance": Decimal("100"),
        "CustomerRef": {"value": "7"},
        "MetaData": {"LastUpdatedTime": "2025-01-11T10:00:00-08:00"},
    },
]


def ids(statement: str) -> list[str]:
    return [r["Id"] for r in evaluate(parse_query(statement), ROWS, tz=PACIFIC)]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("DisplayName = 'O\\'Brien & Sons'", ["2"]),
        ("displayname = 'ACME'", ["1"]),  # property names and string values case-insensitive [I]
        ("DisplayName LIKE 'acme%'", ["1", "10"]),
        ("DisplayName LIKE '%sons'", ["2"]),
        ("DisplayName LIKE '%BRIEN%'", ["2"]),
        ("Id IN ('1', '10')", ["1", "10"]),
        ("Id > '2'", ["10"]),  # Ids compare as numbers, not as text
        ("Balance >= 10", ["1", "10"]),
        ("Balance < '5'", ["2"]),
        ("Active = false", ["10"]),
        ("CustomerRef = '7'", ["1", "10"]),  # a reference compares by its value
        ("MetaData.LastUpdatedTime > '2025-01-11'", ["2", "10"]),  # date vs date-time
        ("metadata.lastupdatedtime >= '2025-01-11T18:00:00Z'", ["2", "10"]),  # other offset
        ("Missing = 'x'", []),
        ("DisplayName = 'Acme' AND Active = true", ["1"]),
    ],
)
def test_where(where, expected):
    assert ids(f"select * from Customer where {where}") == expected


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("", ["1", "2", "10"]),  # oldest first (Id order) by default
        ("ORDERBY Id DESC", ["10", "2", "1"]),
        ("ORDER BY DisplayName", ["1", "10", "2"]),
        ("order by DisplayName desc", ["2", "10", "1"]),
        ("ORDERBY MetaData.LastUpdatedTime", ["1", "10", "2"]),
        ("ORDERBY Balance DESC, Id", ["10", "1", "2"]),
    ],
)
def test_order_by(order, expected):
    assert ids(f"select * from Customer {order}") == expected


def test_paging_is_one_based():
    query = parse_query("select * from Customer startposition 2 maxresults 1")
    assert [r["Id"] for r in page(evaluate(query, ROWS), query)] == ["2"]
    past_end = parse_query("select * from Customer startposition 4")
    assert page(evaluate(past_end, ROWS), past_end) == []
