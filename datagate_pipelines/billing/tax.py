"""Sales tax: zip normalisation, the tax location of a line, and the rate table (docs/billing.md, Tax).

- Zip codes: US ``12345-6789`` → ``12345``; other postcodes trimmed and upper-cased; an
  empty value is no zip.
- Location: the site's zip when the customer uses site zip tax and the line's site has a
  zip; otherwise the customer's zip.
- Rate = the sum of every jurisdiction row for (zip, tax code). ``NONTAXABLE`` is always 0.
- Missing data never becomes a silent zero: no tax code, no zip, or no rate row for
  (zip, tax code) puts the invoice on hold.

Where docs/billing.md is silent (choices made here):
- Tax codes are compared exactly after trimming (case matters: "tel" is not "TEL"; a
  mismatch holds the invoice rather than guessing).
- A ``NONTAXABLE`` line needs no location: its rate is 0 whatever the zip, so a missing zip
  does not hold it.
- A rate row that is not a finite Decimal ≥ 0 makes its (zip, tax code) unusable: lines
  that need it are held (never taxed with the remaining jurisdictions only). A rate row
  with no zip or no tax code cannot apply to any line; it is reported as a reject.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from datagate_pipelines.billing.codes import normalize_column, normalize_tax_code, normalize_zip
from datagate_pipelines.billing.lines import RECURRING, LineBlock
from datagate_pipelines.billing.money import (
    EXACT_CONTEXT,
    as_int64_if_fits,
    mul_div_round_half_away,
    scaled_exactly,
)

if TYPE_CHECKING:
    from datagate_pipelines.billing.inputs import Customers, Sites

NONTAXABLE = "NONTAXABLE"


def tax_zip(use_site_zip_tax: bool, site_zip: str | None, customer_zip: str | None) -> str | None:
    """The zip a line is taxed at (both zips already normalised)."""
    if use_site_zip_tax and site_zip is not None:
        return site_zip
    return customer_zip


@dataclass
class RateTable:
    """Summed rates per (zip, tax code); `invalid` holds pairs with an unusable row."""

    rates: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    invalid: set[tuple[str, str]] = field(default_factory=set)
    rejects: list[dict[str, str]] = field(default_factory=list)

    def lookup(self, zip_code: str, tax_code: str) -> Decimal | None:
        """The rate for (zip, code): 0 for NONTAXABLE, None when unknown or unusable."""
        if tax_code == NONTAXABLE:
            return Decimal(0)
        if (zip_code, tax_code) in self.invalid:
            return None
        return self.rates.get((zip_code, tax_code))


def build_rate_table(tax_rates: pd.DataFrame | None) -> RateTable:
    """Sum the jurisdiction rows of the tax-rate table per (normalised zip, tax code)."""
    table = RateTable()
    if tax_rates is None or len(tax_rates) == 0:
        return table
    for position, row in enumerate(
        zip(
            # Normalised once per distinct value: zips and codes repeat across jurisdictions.
            normalize_column(tax_rates["zip"], normalize_zip).tolist(),
            normalize_column(tax_rates["tax_code"], normalize_tax_code).tolist(),
            tax_rates["jurisdiction"].tolist()
            if "jurisdiction" in tax_rates
            else [None] * len(tax_rates),
            tax_rates["rate"].tolist(),
            strict=True,
        )
    ):
        zip_code, tax_code, jurisdiction, rate = row
        if zip_code is None or tax_code is None:
            table.rejects.append(
                {
                    "entity": "tax_rate",
                    "record_id": f"row {position + 1}",
                    "field": "zip" if zip_code is None else "tax_code",
                    "reason": f"tax rate row for jurisdiction {jurisdiction!r} has no "
                    + ("zip" if zip_code is None else "tax code"),
                }
            )
            continue
        key = (zip_code, tax_code)
        if (
            isinstance(rate, bool)
            or not isinstance(rate, Decimal | int)
            or not Decimal(rate).is_finite()
            or rate < 0
        ):
            table.invalid.add(key)
            continue
        table.rates[key] = EXACT_CONTEXT.add(table.rates.get(key, Decimal(0)), Decimal(rate))
    return table


class TaxCodes:
    """The normalised tax codes of one billing run, each with a small integer id, so that
    lines carry integers and each distinct raw value is normalised once. Id -1: no code."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._ids: dict[str, int] = {}

    def encode(self, values: np.ndarray) -> np.ndarray:
        """The id of each raw tax code (trimmed; None or blank → -1)."""
        codes, uniques = pd.factorize(np.asarray(values, dtype=object))
        ids = [self.id_of(normalize_tax_code(raw)) for raw in uniques] + [-1]
        return np.array(ids, dtype=np.int32)[codes]  # code -1 (missing) picks the last slot

    def id_of(self, name: str | None) -> int:
        """The id of a normalised code (given one if new); -1 for None."""
        if name is None:
            return -1
        if name not in self._ids:
            self._ids[name] = len(self.names)
            self.names.append(name)
        return self._ids[name]


@dataclass
class Coded:
    """A column of repeated values kept as codes into a table of distinct values (code -1:
    None): values are built per line only when asked for as objects."""

    codes: np.ndarray
    values: list

    def objects(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        return _object_array([*self.values, None])[self.codes[rows]]

    def categorical(self) -> pd.Categorical:
        """The column as a pandas Categorical (no object per line); equal values share a
        category."""
        categories, of_value = pd.factorize(_object_array(self.values))
        codes = np.append(categories, -1)[self.codes]
        return pd.Categorical.from_codes(codes, categories=pd.Index(of_value, dtype=object))


@dataclass
class LineTaxes:
    """Tax per line: code and zip used, rate, tax in cents, and which data is missing."""

    tax_code: Coded
    zip: Coded
    rate: Coded
    tax: np.ndarray
    problem: np.ndarray
    no_code: np.ndarray
    no_zip: np.ndarray
    no_rate: np.ndarray
    bad_rate: np.ndarray
    lines: LineBlock
    customers: Customers

    def hold_reasons(self, rows: np.ndarray, record_ids: np.ndarray) -> list[list[str]]:
        """Why each of the lines `rows` (of products or usage rows `record_ids`) holds its
        invoice, worded for the operator who fixes the data."""
        lines, customers = self.lines, self.customers
        customer = lines.customer[rows]
        out = []
        for recurring, record, no_code, no_zip, no_rate, bad_rate, cid, name, zip_, code in zip(
            (lines.kind[rows] == RECURRING).tolist(),
            record_ids.tolist(),
            self.no_code[rows].tolist(),
            self.no_zip[rows].tolist(),
            self.no_rate[rows].tolist(),
            self.bad_rate[rows].tolist(),
            customers.ids[customer].tolist(),
            customers.names[customer].tolist(),
            self.zip.objects(rows).tolist(),
            self.tax_code.objects(rows).tolist(),
            strict=True,
        ):
            reasons = []
            if no_code:
                reasons.append(f"no tax code for {'product' if recurring else 'usage'} {record}")
            if no_zip:
                reasons.append(f"no zip code for customer {cid} ({name})")
            if no_rate:
                reasons.append(f"no tax rate for zip {zip_} and tax code {code}")
            if bad_rate:
                reasons.append(f"invalid tax rate row for zip {zip_} and tax code {code}")
            out.append(reasons)
        return out


def tax_lines(
    lines: LineBlock, customers: Customers, sites: Sites, rates: RateTable, codes: TaxCodes
) -> LineTaxes:
    """Locate, rate and tax every line (docs/billing.md, Tax)."""
    line_zip, zip_names = _line_zips(lines, customers, sites)
    code = lines.tax_code
    nontaxable = code == (codes.names.index(NONTAXABLE) if NONTAXABLE in codes.names else -2)
    no_code = code < 0
    no_zip = ~nontaxable & (line_zip < 0)
    lookup = ~nontaxable & ~no_code & ~no_zip

    # Each distinct (zip, tax code) is looked up once. Slot 0 is NONTAXABLE (rate 0), then
    # one slot per pair, then the last slot (-1) for lines whose rate cannot be looked up.
    width = max(len(codes.names), 1)
    pair_of_line, pairs = _codes(line_zip[lookup].astype(np.int64) * width + code[lookup])
    keys = [(zip_names[pair // width], codes.names[pair % width]) for pair in pairs.tolist()]
    slot_rates = [Decimal(0), *(rates.lookup(zip_code, name) for zip_code, name in keys), None]
    slot_invalid = np.array([False, *(key in rates.invalid for key in keys), False], dtype=bool)
    slot_known = np.array([r is not None for r in slot_rates], dtype=bool)
    known_rates = [rate for rate in slot_rates if rate is not None]
    places, scaled = scaled_exactly(known_rates)
    slot_scaled = np.zeros(len(slot_rates), dtype=object)
    slot_scaled[slot_known] = _object_array(scaled)
    slot_scaled = as_int64_if_fits(slot_scaled)
    slot = np.full(len(lines), len(slot_rates) - 1, dtype=np.int64)
    slot[nontaxable] = 0
    slot[lookup] = pair_of_line + 1

    bad_rate = slot_invalid[slot]
    no_rate = lookup & ~slot_known[slot] & ~bad_rate
    # Unknown rates are 0 here; the invoice is held for them.
    tax = mul_div_round_half_away([lines.amount, slot_scaled[slot]], 10**places)
    rate_of_slot = np.where(slot_known, np.cumsum(slot_known) - 1, -1)
    return LineTaxes(
        tax_code=Coded(code, codes.names),
        zip=Coded(line_zip, zip_names),
        rate=Coded(rate_of_slot[slot], known_rates),
        tax=tax,
        problem=no_code | no_zip | no_rate | bad_rate,
        no_code=no_code,
        no_zip=no_zip,
        no_rate=no_rate,
        bad_rate=bad_rate,
        lines=lines,
        customers=customers,
    )


def _codes(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code of each key, the distinct keys) for non-negative integer keys: by a table
    indexed by key when the keys are few and small (zip × tax code pairs are), which is
    several times faster than hashing a million keys."""
    if len(keys) == 0 or int(keys.max()) >= 4 * len(keys) + 65_536:
        return pd.factorize(keys)
    seen = np.zeros(int(keys.max()) + 1, dtype=bool)
    seen[keys] = True
    distinct = np.flatnonzero(seen)
    code_of_key = np.cumsum(seen, dtype=np.int64) - 1
    return code_of_key[keys], distinct


def _line_zips(lines: LineBlock, customers: Customers, sites: Sites) -> tuple[np.ndarray, list]:
    """The zip id each line is taxed at (-1: none) and the zips by id."""
    # One numbering of the customers' and the sites' distinct zips (the tables code them
    # apart); the last slot of each map is code -1, no zip.
    zip_names = list(dict.fromkeys([*customers.zip_names, *sites.zip_names]))
    number = {name: i for i, name in enumerate(zip_names)}
    customer_map = np.array([*map(number.get, customers.zip_names), -1], dtype=np.int32)
    site_map = np.array([*map(number.get, sites.zip_names), -1], dtype=np.int32)
    customer_zip = customer_map[customers.zips]
    site_zip = np.append(site_map[sites.zips], -1)  # index -1: unknown site
    line_site_zip = site_zip[lines.site_pos]
    use_site = customers.use_site_zip[lines.customer] & (line_site_zip >= 0)
    return np.where(use_site, line_site_zip, customer_zip[lines.customer]), zip_names


def _object_array(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
