"""The engine's input tables, checked and turned into arrays.

The boundary format (what the assets pass): pandas DataFrames whose ids are ints (nullable
Int64 or None where optional) and whose exact numbers come in one of two forms:

- Decimals: `qty`, `unit_price` (products) and `amount` (usage) hold `decimal.Decimal`
  objects, and dates are `datetime.date` objects;
- integers: `qty_e4` and `unit_price_e4` hold qty and unit price × 10**4, `amount_cents`
  the amount in cents (int64, or nullable Int64), and date columns are datetime64. This is
  how the warehouse stores them (warehouse/types.py), so the loader passes them without
  building a Python object per cell, which at a million rows costs more than billing them.

A table that lacks a required column, or has duplicate ids where ids must be unique, is an
input error (`BillingInputError`); a bad *row* of products or usage becomes a reject
instead (see recurring.py and usage.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from datagate_pipelines.billing.codes import coded_column, normalize_column, normalize_zip
from datagate_pipelines.billing.errors import BillingInputError
from datagate_pipelines.billing.ids import find_keys, text_ids
from datagate_pipelines.billing.money import decimals_to_scaled

PRODUCT_COLUMNS = (
    "product_id",
    "customer_id",
    "site_id",
    "contract_id",
    "description",
    "qty",
    "unit_price",
    "tax_code",
    "start_date",
    "end_date",
    "billing_cycle",
)
CUSTOMER_COLUMNS = ("customer_id", "name", "zip", "use_site_zip_tax")
SITE_COLUMNS = ("site_id", "customer_id", "zip")
CONTRACT_COLUMNS = ("contract_id", "customer_id")
LEDGER_COLUMNS = ("product_id", "service_month", "period")
# The ledger as runs of months: a row bills service_month … through_month (recurring.py).
RANGE_COLUMN = "through_month"
LEDGER_RANGE_COLUMNS = ("product_id", "service_month", RANGE_COLUMN)
USAGE_COLUMNS = (
    "usage_id",
    "customer_id",
    "site_id",
    "description",
    "amount",
    "tax_code",
    "usage_date",
)
TAX_RATE_COLUMNS = ("zip", "tax_code", "rate")
# The integer form of each exact-number column: its name and its decimal places.
SCALED_COLUMNS = {
    "qty": ("qty_e4", 4),
    "unit_price": ("unit_price_e4", 4),
    "amount": ("amount_cents", 2),
    "tax": ("tax_cents", 2),
}
EXACT_ALTERNATIVES = {column: scaled for column, (scaled, _) in SCALED_COLUMNS.items()}
# A ledger may name its products by `product_key` (see recurring._ledger_pairs).
LEDGER_ALTERNATIVES = {"product_id": "product_key"}


def table(
    frame: pd.DataFrame | None,
    name: str,
    columns: tuple[str, ...],
    alternatives: dict[str, str] | None = None,
) -> pd.DataFrame:
    """The frame with its required columns checked (a column of `alternatives` may be given
    in its other form instead); None or a column-less empty frame is an empty table."""
    if frame is None or (len(frame) == 0 and len(frame.columns) == 0):
        return pd.DataFrame({column: pd.Series([], dtype=object) for column in columns})
    alternatives = alternatives or {}
    missing = [
        column if column not in alternatives else f"{column} (or {alternatives[column]})"
        for column in columns
        if column not in frame.columns and alternatives.get(column) not in frame.columns
    ]
    if missing:
        raise BillingInputError(f"{name}: missing column(s) {', '.join(missing)}")
    return frame  # only positions are used: the index does not matter


@dataclass
class ExactColumn:
    """An exact-number column as integers × 10**places, whichever form it came in."""

    scaled: np.ndarray  # int64 (object ints if a value exceeds int64); 0 where invalid
    invalid: np.ndarray  # missing, not a number, or more decimals than `places`
    given: np.ndarray | None  # the Decimals as given; None when given as integers

    def reason(self, row: int, what: str, wanted: str) -> str:
        """Why row `row` (invalid) is refused: "<what> <value> is not <wanted>", or missing
        (the integer form has no other way to be invalid)."""
        if self.given is None:
            return f"missing {what}"
        return f"{what} {self.given[row]!r} is not {wanted}"


def exact_column(
    frame: pd.DataFrame, name: str, places: int, *, rounding: bool = False
) -> ExactColumn:
    """Column `name` scaled by 10**places: from its integer form when the frame has it (then
    already scaled to the form's places), else from Decimals (`decimals_to_scaled`)."""
    scaled_name, scaled_places = SCALED_COLUMNS[name]
    if scaled_name in frame.columns:
        if scaled_places != places:
            raise ValueError(f"{scaled_name} has {scaled_places} places, not {places}")
        values, present = nullable_ints(frame[scaled_name], scaled_name)  # 0 where missing
        return ExactColumn(values, ~present, None)
    scaled, invalid = decimals_to_scaled(frame[name], places, rounding=rounding)
    return ExactColumn(scaled, invalid, frame[name].to_numpy(dtype=object))


def nullable_ints(values: pd.Series, what: str) -> tuple[np.ndarray, np.ndarray]:
    """An id column as (int64 values, present mask); missing ids hold 0."""
    if pd.api.types.is_integer_dtype(values.dtype):
        if isinstance(values.dtype, pd.api.extensions.ExtensionDtype):  # nullable Int64
            present = ~values.isna().to_numpy()
            return values.to_numpy(dtype=np.int64, na_value=0), present
        return values.to_numpy(np.int64), np.ones(len(values), dtype=bool)
    try:
        array = pd.array(values.to_numpy(dtype=object), dtype="Int64")
    except (TypeError, ValueError) as error:
        raise BillingInputError(f"{what} must hold whole numbers: {error}") from None
    present = ~np.asarray(array.isna(), dtype=bool)
    return array.to_numpy(dtype=np.int64, na_value=0), present


def final_flags(values: pd.Series) -> np.ndarray:
    """The ledger's `final` column as booleans, a missing value false."""
    return pd.array(values.to_numpy(dtype=object), dtype="boolean").fillna(False).to_numpy(bool)


def _text(value: object) -> str:
    if type(value) is str:  # the usual case, without pd.isna's overhead
        return value
    return "" if value is None or pd.isna(value) else str(value)


def _flag(value: object) -> bool:
    return False if value is None or pd.isna(value) else bool(value)


def _all_text(values: np.ndarray) -> bool:
    """True when every value is a str (a type scan, cheaper than looking for NAs)."""
    return pd.api.types.infer_dtype(values, skipna=False) == "string"


def texts(values: np.ndarray) -> np.ndarray:
    """A free-text column with missing values as empty strings."""
    if _all_text(values):
        return values
    missing = pd.isna(values)
    if missing.any():
        return np.where(missing, "", values).astype(object)
    return values


def strings(values: pd.Series) -> np.ndarray:
    """A text id column as an object array of str (ints are turned into their digits)."""
    return text_ids(values.to_numpy(dtype=object))


@dataclass
class Customers:
    """Customers by position: id, name, normalised zip (a code into `zip_names`; -1: none),
    site-zip-tax flag, the numbering rank (name case-folded, then id), and whether each is
    billed. The optional `billed` column (default true) lists customers no longer billed,
    whose invoices can then hold only repair lines (docs/billing.md rule 6)."""

    ids: np.ndarray
    names: np.ndarray
    zips: np.ndarray
    zip_names: list[str]
    use_site_zip: np.ndarray
    rank: np.ndarray
    billed: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame | None) -> Customers:
        frame = table(frame, "customers", CUSTOMER_COLUMNS)
        ids, present = nullable_ints(frame["customer_id"], "customers.customer_id")
        if not present.all():
            raise BillingInputError("customers: a row has no customer_id")
        index = pd.Index(ids)
        if not index.is_unique:
            duplicates = sorted(set(index[index.duplicated()].tolist()))
            raise BillingInputError(f"customers: duplicate customer_id {duplicates[:10]}")
        names = frame["name"].to_numpy(dtype=object)
        if not _all_text(names):
            names = normalize_column(names, _text)
        zips, zip_names = coded_column(frame["zip"], normalize_zip)
        flags = frame["use_site_zip_tax"]
        if flags.dtype == bool:
            flags = flags.to_numpy()
        else:
            flags = normalize_column(flags, _flag).astype(bool)
        folded = np.array(list(map(str.casefold, names.tolist())), dtype=str)
        order = np.lexsort((ids, folded)) if len(ids) else np.zeros(0, np.int64)
        rank = np.empty(len(ids), dtype=np.int64)
        rank[order] = np.arange(len(ids))
        if "billed" in frame.columns:
            billed = normalize_column(frame["billed"], _flag).astype(bool)
        else:
            billed = np.ones(len(ids), dtype=bool)
        return cls(ids, names, zips, zip_names, flags, rank, billed)

    def positions(self, customer_ids: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Position of each id in this table, -1 when it is not a billed customer."""
        found = self.known_positions(customer_ids, present)
        if self.billed.all():
            return found
        return np.where(self.billed[found] & (found >= 0), found, -1)

    def known_positions(self, customer_ids: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Position of each id in this table, billed or not; -1 when absent."""
        return np.where(present, find_keys(customer_ids, self.ids), -1)


@dataclass
class Sites:
    """Sites by position: id, owning customer id and normalised zip (a code into
    `zip_names`; -1: none)."""

    ids: np.ndarray
    customer_ids: np.ndarray
    zips: np.ndarray
    zip_names: list[str]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame | None) -> Sites:
        frame = table(frame, "sites", SITE_COLUMNS)
        ids, present = nullable_ints(frame["site_id"], "sites.site_id")
        if not present.all():
            raise BillingInputError("sites: a row has no site_id")
        index = pd.Index(ids)
        if not index.is_unique:
            duplicates = sorted(set(index[index.duplicated()].tolist()))
            raise BillingInputError(f"sites: duplicate site_id {duplicates[:10]}")
        customer_ids, has_customer = nullable_ints(frame["customer_id"], "sites.customer_id")
        if not has_customer.all():
            raise BillingInputError("sites: a row has no customer_id")
        zips, zip_names = coded_column(frame["zip"], normalize_zip)
        return cls(ids, customer_ids, zips, zip_names)

    def positions(self, site_ids: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Position of each site id in this table, -1 when absent or unknown."""
        return np.where(present, find_keys(site_ids, self.ids), -1)


@dataclass
class Contracts:
    """Imported contracts: the owning customer of each contract, and each customer's
    export contract (the lowest contract id). Held as sorted arrays, looked up by key."""

    ids: np.ndarray  # contract ids, ascending
    owners: np.ndarray  # the customer of each
    customers: np.ndarray  # customer ids with a contract, ascending
    lowest: np.ndarray  # each one's lowest contract id

    @classmethod
    def from_frame(cls, frame: pd.DataFrame | None) -> Contracts:
        frame = table(frame, "contracts", CONTRACT_COLUMNS)
        ids, present = nullable_ints(frame["contract_id"], "contracts.contract_id")
        customers, has_customer = nullable_ints(frame["customer_id"], "contracts.customer_id")
        if not (present & has_customer).all():
            raise BillingInputError("contracts: a row has no contract_id or customer_id")
        # Sorted by (contract, customer): a row repeated whole is one contract; a contract
        # on two customers is an error.
        order = np.lexsort((customers, ids))
        ids, customers = ids[order], customers[order]
        repeated = np.zeros(len(ids), dtype=bool)
        repeated[1:] = (ids[1:] == ids[:-1]) & (customers[1:] == customers[:-1])
        ids, customers = ids[~repeated], customers[~repeated]
        clash = np.flatnonzero(ids[1:] == ids[:-1]) + 1
        if len(clash):
            raise BillingInputError(
                f"contracts: contract(s) {ids[clash][:10].tolist()} belong to two customers"
            )
        by_customer = np.lexsort((ids, customers))
        owner_sorted = customers[by_customer]
        first = np.ones(len(ids), dtype=bool)
        first[1:] = owner_sorted[1:] != owner_sorted[:-1]
        lowest_rows = by_customer[first]
        return cls(ids, customers, customers[lowest_rows], ids[lowest_rows])

    def export_contracts(self, customer_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each customer's lowest contract id (where a default agreement's invoice is
        exported) and whether the customer has a contract at all."""
        if len(self.customers) == 0:
            nothing = np.zeros(len(customer_ids), dtype=np.int64)
            return nothing, nothing.astype(bool)
        found = find_keys(customer_ids, self.customers)
        has = found >= 0
        return np.where(has, self.lowest[np.maximum(found, 0)], 0), has

    def owned_by(
        self, contract_ids: np.ndarray, present: np.ndarray, customer_ids: np.ndarray
    ) -> np.ndarray:
        """True where the contract is imported and belongs to the given customer."""
        if len(self.ids) == 0:
            return np.zeros(len(contract_ids), dtype=bool)
        found = find_keys(contract_ids, self.ids)
        owner = self.owners[np.maximum(found, 0)]
        return present & (found >= 0) & (owner == customer_ids)
