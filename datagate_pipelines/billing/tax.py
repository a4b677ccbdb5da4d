"""Sales tax: zip normalisation, the tax location of a line, and the rate table (BILLING.md, Tax).

- Zip codes: US ``12345-6789`` → ``12345``; other postcodes trimmed and upper-cased; an
  empty value is no zip.
- Location: the site's zip when the customer uses site zip tax and the line's site has a
  zip; otherwise the customer's zip.
- Rate = the sum of every jurisdiction row for (zip, tax code). ``NONTAXABLE`` is always 0.
- Missing data never becomes a silent zero: no tax code, no zip, or no rate row for
  (zip, tax code) puts the invoice on hold.

Where BILLING.md is silent (choices made here):
- Tax codes are compared exactly after trimming (case matters: "tel" is not "TEL"; a
  mismatch holds the invoice rather than guessing).
- A ``NONTAXABLE`` line needs no location: its rate is 0 whatever the zip, so a missing zip
  does not hold it.
- A rate row that is not a finite Decimal ≥ 0 makes its (zip, tax code) unusable: lines
  that need it are held (never taxed with the remaining jurisdictions only). A rate row
  with no zip or no tax code cannot apply to any line; it is reported as a reject.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from datagate_pipelines.billing.lines import RECURRING, LineBlock
from datagate_pipelines.money import (
    EXACT_CONTEXT,
    as_int64_if_fits,
    mul_div_round_half_away,
    to_minor_units,
)

if TYPE_CHECKING:  # inputs.py imports this module (normalize_zip)
    from datagate_pipelines.billing.inputs import Customers, Sites

NONTAXABLE = "NONTAXABLE"

_US_ZIP_PLUS_FOUR = re.compile(r"(\d{5})-\d{4}")


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def normalize_zip(raw: object) -> str | None:
    """'94107-1234' → '94107'; ' sw1a 1aa ' → 'SW1A 1AA'; None or blank → None."""
    if _is_missing(raw):
        return None
    text = str(raw).strip()
    if not text:
        return None
    us = _US_ZIP_PLUS_FOUR.fullmatch(text)
    return us.group(1) if us else text.upper()


def normalize_tax_code(raw: object) -> str | None:
    """A tax code trimmed; None or blank → None (a missing tax code)."""
    if _is_missing(raw):
        return None
    text = str(raw).strip()
    return text or None


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
            tax_rates["zip"].tolist(),
            tax_rates["tax_code"].tolist(),
            tax_rates["jurisdiction"].tolist()
            if "jurisdiction" in tax_rates
            else [None] * len(tax_rates),
            tax_rates["rate"].tolist(),
            strict=True,
        )
    ):
        raw_zip, raw_code, jurisdiction, rate = row
        zip_code, tax_code = normalize_zip(raw_zip), normalize_tax_code(raw_code)
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


@dataclass
class LineTaxes:
    """Tax per line: zip used, rate, tax in cents, and which data is missing."""

    zip: np.ndarray
    rate: np.ndarray
    tax: np.ndarray
    problem: np.ndarray
    no_code: np.ndarray
    no_zip: np.ndarray
    no_rate: np.ndarray
    bad_rate: np.ndarray
    lines: LineBlock
    customers: Customers

    def reasons(self, row: int) -> list[str]:
        """Why line `row` holds its invoice, worded for the operator who fixes the data."""
        lines, out = self.lines, []
        what = "product" if lines.kind[row] == RECURRING else "usage"
        if self.no_code[row]:
            out.append(f"no tax code for {what} {lines.record_id[row]}")
        if self.no_zip[row]:
            position = lines.customer[row]
            out.append(
                f"no zip code for customer {self.customers.ids[position]}"
                f" ({self.customers.names[position]})"
            )
        if self.no_rate[row]:
            out.append(f"no tax rate for zip {self.zip[row]} and tax code {lines.tax_code[row]}")
        if self.bad_rate[row]:
            out.append(
                f"invalid tax rate row for zip {self.zip[row]} and tax code {lines.tax_code[row]}"
            )
        return out


def tax_lines(lines: LineBlock, customers: Customers, sites: Sites, rates: RateTable) -> LineTaxes:
    """Locate, rate and tax every line (BILLING.md, Tax)."""
    n = len(lines)
    zip_codes, zip_names = pd.factorize(np.concatenate([customers.zips, sites.zips]))
    customer_zip = zip_codes[: len(customers.zips)]
    site_zip = np.append(zip_codes[len(customers.zips) :], -1)  # index -1: unknown site
    line_site_zip = site_zip[lines.site_pos]
    use_site = customers.use_site_zip[lines.customer] & (line_site_zip >= 0)
    line_zip = np.where(use_site, line_site_zip, customer_zip[lines.customer])

    code_ids, code_names = pd.factorize(lines.tax_code)
    code_list = list(code_names)
    nontaxable = code_ids == (code_list.index(NONTAXABLE) if NONTAXABLE in code_list else -2)
    no_code = code_ids < 0
    no_zip = ~nontaxable & (line_zip < 0)
    lookup = ~nontaxable & ~no_code & ~no_zip

    # Look each distinct (zip, tax code) up once; rates become integers × 10**places.
    width = max(len(code_list), 1)
    pair_of_line, pairs = pd.factorize(line_zip[lookup].astype(np.int64) * width + code_ids[lookup])
    keys = [(zip_names[pair // width], code_list[pair % width]) for pair in pairs.tolist()]
    pair_rates = [rates.lookup(zip_code, tax_code) for zip_code, tax_code in keys]
    pair_invalid = np.array([key in rates.invalid for key in keys], dtype=bool)
    pair_known = np.array([r is not None for r in pair_rates], dtype=bool)
    places = max([max(0, -r.as_tuple().exponent) for r in pair_rates if r is not None] or [0])
    pair_scaled = as_int64_if_fits(
        _object_array([0 if r is None else to_minor_units(r, places) for r in pair_rates])
    )

    lookup_rows = np.flatnonzero(lookup)
    rate = np.full(n, None, dtype=object)
    rate[nontaxable] = Decimal(0)
    rate[lookup_rows] = _object_array(pair_rates)[pair_of_line] if len(lookup_rows) else []
    scaled_rate = np.zeros(n, dtype=pair_scaled.dtype if len(pairs) else np.int64)
    scaled_rate[lookup_rows] = pair_scaled[pair_of_line] if len(lookup_rows) else []
    bad_rate = np.zeros(n, dtype=bool)
    bad_rate[lookup_rows] = pair_invalid[pair_of_line] if len(lookup_rows) else []
    no_rate = np.zeros(n, dtype=bool)
    no_rate[lookup_rows] = (~pair_known & ~pair_invalid)[pair_of_line] if len(lookup_rows) else []
    # Unknown rates are 0 here; the invoice is held for them.
    tax = mul_div_round_half_away([lines.amount, scaled_rate], 10**places)
    zip_out = np.append(np.asarray(zip_names, dtype=object), None)[line_zip]
    return LineTaxes(
        zip=zip_out,
        rate=rate,
        tax=tax,
        problem=no_code | no_zip | no_rate | bad_rate,
        no_code=no_code,
        no_zip=no_zip,
        no_rate=no_rate,
        bad_rate=bad_rate,
        lines=lines,
        customers=customers,
    )


def _object_array(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
