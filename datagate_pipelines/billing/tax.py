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

import pandas as pd

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
        table.rates[key] = table.rates.get(key, Decimal(0)) + Decimal(rate)
    return table
