"""Test helpers: build the engine's input tables, run engine and oracle, compare them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd

from datagate_pipelines.billing import (
    MINOR_UNIT_COLUMNS,
    BillingResult,
    BillingSettings,
    bill_period,
)
from datagate_pipelines.billing.money import from_minor_units, round_half_away, to_minor_units
from tests.billing.oracle import OracleResult, oracle_bill

D = Decimal


def product(
    product_id: str,
    qty: str | Decimal,
    unit_price: str | Decimal,
    start: date,
    *,
    end: date | None = None,
    customer_id: int = 42,
    site_id: int | None = None,
    contract_id: int | None = None,
    tax_code: str | None = "TEL",
    description: str | None = None,
    billing_cycle: str = "monthly",
    item_id: int = 1,
) -> dict:
    return {
        "product_id": product_id,
        "customer_id": customer_id,
        "site_id": site_id,
        "contract_id": contract_id,
        "item_id": item_id,
        "description": product_id if description is None else description,
        "qty": D(qty) if isinstance(qty, str) else qty,
        "unit_price": D(unit_price) if isinstance(unit_price, str) else unit_price,
        "tax_code": tax_code,
        "start_date": start,
        "end_date": end,
        "billing_cycle": billing_cycle,
    }


def usage_row(
    usage_id: str,
    amount: str | Decimal,
    usage_date: date,
    *,
    customer_id: int = 42,
    site_id: int | None = None,
    contract_id: int | None = None,
    tax_code: str | None = "TEL",
    description: str = "usage",
) -> dict:
    return {
        "usage_id": usage_id,
        "customer_id": customer_id,
        "site_id": site_id,
        "contract_id": contract_id,
        "description": description,
        "amount": D(amount) if isinstance(amount, str) else amount,
        "tax_code": tax_code,
        "usage_date": usage_date,
    }


_NULLABLE_IDS = ("site_id", "contract_id", "customer_id")


def frame(rows: list[dict], columns: tuple[str, ...]) -> pd.DataFrame:
    """Rows as a DataFrame in the engine's boundary format: object columns for Decimals and
    dates, nullable Int64 for ids that may be missing."""
    data = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        if column in _NULLABLE_IDS:
            data[column] = pd.array(values, dtype="Int64")
        else:
            series = np.empty(len(values), dtype=object)
            series[:] = values
            data[column] = series
    return pd.DataFrame(data, columns=list(columns))


PRODUCT_COLUMNS = (
    "product_id",
    "customer_id",
    "site_id",
    "contract_id",
    "item_id",
    "description",
    "qty",
    "unit_price",
    "tax_code",
    "start_date",
    "end_date",
    "billing_cycle",
)
USAGE_COLUMNS = (
    "usage_id",
    "customer_id",
    "site_id",
    "contract_id",
    "description",
    "amount",
    "tax_code",
    "usage_date",
)


LEDGER_FRAME_COLUMNS = (
    "product_id",
    "service_month",
    "period",
    "final",
    "kind",
    "customer_id",
    "site_id",
    "contract_id",
    "description",
    "qty",
    "unit_price",
    "amount",
    "tax",
    "tax_code",
    "tax_zip",
    "tax_rate",
    "invoice",
    "start_date",
    "end_date",
)


@dataclass
class Portal:
    """One portal's inputs, as plain rows, convertible to the engine's frames."""

    settings: BillingSettings
    products: list[dict] = field(default_factory=list)
    customers: list[dict] = field(default_factory=list)
    sites: list[dict] = field(default_factory=list)
    contracts: list[dict] = field(default_factory=list)
    usage: list[dict] = field(default_factory=list)
    tax_rates: list[dict] = field(default_factory=list)
    ledger: list[dict] = field(default_factory=list)

    def with_settings(self, **changes) -> Portal:
        return replace(self, settings=replace(self.settings, **changes))

    def frames(self) -> dict[str, pd.DataFrame]:
        customers = pd.DataFrame(
            {
                "customer_id": pd.array([c["customer_id"] for c in self.customers], "Int64"),
                "name": pd.Series([c["name"] for c in self.customers], dtype=object),
                "zip": pd.Series([c.get("zip") for c in self.customers], dtype=object),
                "use_site_zip_tax": pd.Series(
                    [c.get("use_site_zip_tax", True) for c in self.customers], dtype=bool
                ),
                "billed": pd.Series([c.get("billed", True) for c in self.customers], dtype=bool),
            }
        )
        sites = pd.DataFrame(
            {
                "site_id": pd.array([s["site_id"] for s in self.sites], "Int64"),
                "customer_id": pd.array([s["customer_id"] for s in self.sites], "Int64"),
                "name": pd.Series([s.get("name", "") for s in self.sites], dtype=object),
                "zip": pd.Series([s.get("zip") for s in self.sites], dtype=object),
            }
        )
        contracts = pd.DataFrame(
            {
                "contract_id": pd.array([c["contract_id"] for c in self.contracts], "Int64"),
                "customer_id": pd.array([c["customer_id"] for c in self.contracts], "Int64"),
            }
        )
        tax_rates = frame(self.tax_rates, ("zip", "tax_code", "jurisdiction", "rate"))
        ledger = self.ledger_frame()
        return {
            "products": frame(self.products, PRODUCT_COLUMNS),
            "customers": customers,
            "sites": sites,
            "contracts": contracts,
            "ledger": ledger,
            "usage": frame(self.usage, USAGE_COLUMNS),
            "tax_rates": tax_rates,
        }

    def bill(self, period: date) -> BillingResult:
        return bill_period(period, self.settings, **self.frames())

    def oracle(self, period: date) -> OracleResult:
        return oracle_bill(period, self.settings, **self.frames())

    def record(self, result: BillingResult, *, final: bool = False) -> None:
        """Add a period's ledger rows, what each billed included, as the warehouse would
        after storing its invoices (`final`: and finalizing them; each invoice named by
        its key)."""
        self.ledger.extend(
            {**row, "invoice": row["invoice_key"], "final": final}
            for row in plain_records(result.ledger)
        )

    def ledger_frame(self) -> pd.DataFrame:
        """The ledger as the loader gives it: with what was billed (when recorded so), each
        pair's product's current customer, site, contract, description and dates (none
        when the product is gone)."""
        if not self.ledger or "amount" not in self.ledger[0]:
            return frame(self.ledger, ("product_id", "service_month", "period"))
        current = {p["product_id"]: p for p in self.products}
        rows = []
        for row in self.ledger:
            product_ = current.get(row["product_id"], {})
            rows.append(
                {
                    **row,
                    **{
                        name: product_.get(name)
                        for name in (
                            "customer_id",
                            "site_id",
                            "contract_id",
                            "description",
                            "start_date",
                            "end_date",
                        )
                    },
                }
            )
        return frame(rows, LEDGER_FRAME_COLUMNS)


def plain(value):
    """A frame cell as a plain Python value (NA → None, numpy scalars → Python)."""
    if isinstance(value, list):
        return value
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def plain_records(frame: pd.DataFrame) -> list[dict]:
    return [
        {column: plain(value) for column, value in row.items()} for row in frame.to_dict("records")
    ]


MONEY = {"amount", "tax", "subtotal", "total"}


def assert_same(engine: BillingResult, oracle: OracleResult) -> None:
    """Engine and oracle agree on every invoice, line, site subtotal, ledger row and reject:
    same values, same order, every money value with exactly 2 decimals."""
    for name, expected in (
        ("invoices", oracle.invoices),
        ("invoice_lines", oracle.lines),
        ("site_subtotals", oracle.site_subtotals),
        ("ledger", oracle.ledger),
        ("rejects", oracle.rejects),
    ):
        got = plain_records(getattr(engine, name))
        assert len(got) == len(expected), (name, got, expected)
        for index, (row, want) in enumerate(zip(got, expected, strict=True)):
            assert set(row) == set(want), (name, index, set(row) ^ set(want))
            for column in row:
                assert row[column] == want[column], (name, index, column, row, want)
                if column in MONEY:
                    assert row[column].as_tuple().exponent == -2, (name, column, row[column])


def by_key(frame: pd.DataFrame, key: str) -> dict:
    """Rows of a frame as plain dicts keyed by one column."""
    return {row[key]: row for row in plain_records(frame)}


def bayside(**settings) -> Portal:
    """The worked example of docs/billing.md."""
    return Portal(
        settings=BillingSettings(billing_start=date(2026, 7, 1), **settings),
        products=[
            product(
                "pbx", "10", "24.95", date(2026, 3, 1), site_id=1, description="Hosted PBX seat"
            ),
            product("sip", "2", "39.99", date(2026, 7, 15), site_id=2, description="SIP trunk"),
            product(
                "router",
                "1",
                "15.00",
                date(2026, 8, 20),
                site_id=2,
                tax_code="NONTAXABLE",
                description="Managed router",
            ),
            product(
                "fax",
                "1",
                "9.99",
                date(2025, 1, 1),
                end=date(2026, 8, 10),
                site_id=1,
                description="Fax line",
            ),
        ],
        customers=[{"customer_id": 42, "name": "Bayside Dental", "zip": "94107"}],
        sites=[
            {"site_id": 1, "customer_id": 42, "name": "Main", "zip": "94107"},
            {"site_id": 2, "customer_id": 42, "name": "Annex", "zip": "94110"},
        ],
        usage=[
            usage_row(
                "calls-2026-07",
                "12.34",
                date(2026, 7, 20),
                site_id=1,
                description="July call usage",
            )
        ],
        tax_rates=[
            {"zip": "94107", "tax_code": "TEL", "jurisdiction": "CA", "rate": D("0.06")},
            {"zip": "94107", "tax_code": "TEL", "jurisdiction": "SF", "rate": D("0.0125")},
            {"zip": "94110", "tax_code": "TEL", "jurisdiction": "CA", "rate": D("0.06")},
            {"zip": "94110", "tax_code": "TEL", "jurisdiction": "SFX", "rate": D("0.02")},
        ],
    )


# --- the integer form (billing/inputs.py) ---------------------------------------------------


def _scaled(values: pd.Series, places: int, *, rounding: bool = False) -> pd.arrays.IntegerArray:
    """Decimals as integers × 10**places, one at a time (NA where not representable)."""
    out = []
    for value in values.tolist():
        try:
            if rounding:
                value = round_half_away(value, places)
            out.append(to_minor_units(value, places))
        except (TypeError, ValueError):
            out.append(None)
    return pd.array(out, dtype="Int64")


def _datetimes(values: pd.Series) -> pd.Series:
    """dates (None: NaT) as a datetime64 column."""
    days = [np.datetime64("NaT") if v is None else np.datetime64(v, "D") for v in values.tolist()]
    return pd.Series(np.array(days, dtype="datetime64[D]").astype("datetime64[s]"))


def integer_frames(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The same portal in the engine's integer form, as the warehouse loader passes it:
    qty_e4, unit_price_e4 and amount_cents instead of Decimals, datetime64 dates, and a
    product_key per product that the ledger names its products by (ledger rows of unknown
    products are left out, as an inner join leaves them out)."""
    products = frames["products"].copy()
    products["qty_e4"] = _scaled(products.pop("qty"), 4)
    products["unit_price_e4"] = _scaled(products.pop("unit_price"), 4)
    for column in ("start_date", "end_date"):
        products[column] = _datetimes(products[column])
    products["product_key"] = np.arange(1000, 1000 + 3 * len(products), 3, dtype=np.int64)
    key_of = dict(
        zip(products["product_id"].tolist(), products["product_key"].tolist(), strict=True)
    )

    ledger = frames["ledger"]
    ledger = ledger[ledger["product_id"].isin(list(key_of))].reset_index(drop=True)
    ledger = pd.DataFrame(
        {
            "product_key": np.array([key_of[p] for p in ledger["product_id"]], dtype=np.int64),
            "service_month": _datetimes(ledger["service_month"]),
            "period": _datetimes(ledger["period"]),
            **({"final": ledger["final"]} if "final" in ledger else {}),
            **(_repair_columns(ledger) if "amount" in ledger else {}),
        }
    )
    usage = frames["usage"].copy()
    usage["amount_cents"] = _scaled(usage.pop("amount"), 2, rounding=True)
    usage["usage_date"] = _datetimes(usage["usage_date"])
    return {**frames, "products": products, "ledger": ledger, "usage": usage}


_PLACES = {"qty": 4, "unit_price": 4}


def _repair_columns(ledger: pd.DataFrame) -> dict:
    """What a ledger says each row billed (rule 6), in the integer form."""
    columns = {
        name: ledger[name]
        for name in (
            "product_id",
            "kind",
            "customer_id",
            "site_id",
            "contract_id",
            "description",
            "tax_code",
            "tax_zip",
            "tax_rate",
            "invoice",
        )
    }
    for name, (scaled, places) in {
        "qty": ("qty_e4", 4),
        "unit_price": ("unit_price_e4", 4),
        "amount": ("amount_cents", 2),
        "tax": ("tax_cents", 2),
    }.items():
        columns[scaled] = _scaled(ledger[name], places)
    for name in ("start_date", "end_date"):
        columns[name] = _datetimes(ledger[name])
    return columns


def as_decimals(result: BillingResult) -> BillingResult:
    """A result computed with `minor_units=True` in the Decimal form (names and values)."""
    names = {scaled: column for column, scaled in MINOR_UNIT_COLUMNS.items()}

    def convert(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.rename(columns=names)
        for column in frame.columns:
            if column in MONEY or column in _PLACES:
                places = _PLACES.get(column, 2)
                frame[column] = pd.Series(
                    [
                        None if plain(v) is None else from_minor_units(int(v), places)
                        for v in frame[column].tolist()
                    ],
                    dtype=object,
                )
        return frame

    return BillingResult(
        invoices=convert(result.invoices),
        invoice_lines=convert(result.invoice_lines),
        site_subtotals=convert(result.site_subtotals),
        ledger=convert(result.ledger),
        rejects=result.rejects,
    )


def assert_same_results(got: BillingResult, expected: BillingResult) -> None:
    """Two engine results agree frame by frame, row by row, value by value."""
    for name in ("invoices", "invoice_lines", "site_subtotals", "ledger", "rejects"):
        assert list(getattr(got, name).columns) == list(getattr(expected, name).columns), name
        assert plain_records(getattr(got, name)) == plain_records(getattr(expected, name)), name
