"""Row checks shared by products and usage: ids, and who a row belongs to.

Each failed check rejects the row with the field and the reason (see lines.Rejects); the
engine bills only rows that pass every check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from datagate_pipelines.billing.ids import rank_strings, strictly_ascending
from datagate_pipelines.billing.inputs import Contracts, Customers, Sites, nullable_ints
from datagate_pipelines.billing.lines import Rejects
from datagate_pipelines.billing.settings import BillingSettings


class IdOrder(NamedTuple):
    """Each row's rank in id order, and whether the ids arrived distinct and in order."""

    rank: np.ndarray
    ascending: bool


def check_ids(rejects: Rejects, ids: np.ndarray, what: str) -> IdOrder:
    """Reject missing and repeated ids; return the rows' order by id."""
    if pd.api.types.infer_dtype(ids, skipna=False) == "string":  # no id is missing
        missing = np.zeros(len(ids), dtype=bool)
    else:
        missing = pd.isna(ids)
        rejects.add(missing, f"{what}_id", lambda i: f"missing {what} id")
        ids = np.where(missing, "", ids)
    if not missing.any() and strictly_ascending(ids):  # the usual order: nothing to rank
        return IdOrder(np.arange(len(ids)), True)
    rank, occurrences = rank_strings(ids)
    repeated = ~missing & (occurrences > 1)
    rejects.add(
        repeated,
        f"{what}_id",
        lambda i: f"{what} id {ids[i]} appears {occurrences[i]} times",
    )
    ascending = not (missing.any() or repeated.any()) and bool((rank[1:] > rank[:-1]).all())
    return IdOrder(rank, ascending)


@dataclass
class Owners:
    """Who each row belongs to: customer (position in Customers, -1 when not billed), site
    (position in Sites, -1 when unknown) and contract."""

    customer_ids: np.ndarray
    customer: np.ndarray
    site_ids: np.ndarray
    has_site: np.ndarray
    site_pos: np.ndarray
    contract_ids: np.ndarray
    has_contract: np.ndarray


def check_owners(
    rejects: Rejects,
    frame: pd.DataFrame,
    settings: BillingSettings,
    customers: Customers,
    sites: Sites,
    contracts: Contracts,
) -> Owners:
    """Reject rows whose customer is not billed, whose site belongs to another customer, or —
    with agreements per contract — whose contract is not one of the customer's imported
    contracts. A missing `contract_id` column means no contracts."""
    entity = rejects.entity
    customer_ids, has_customer = nullable_ints(frame["customer_id"], f"{entity}.customer_id")
    customer = customers.positions(customer_ids, has_customer)
    rejects.add(
        customer < 0,
        "customer_id",
        lambda i: (
            f"customer {frame['customer_id'].iat[i]} is not billed"
            " (not opted in, inactive or unknown)"
        ),
    )

    site_ids, has_site = nullable_ints(frame["site_id"], f"{entity}.site_id")
    site_pos = sites.positions(site_ids, has_site)
    site_owner = sites.customer_ids[np.maximum(site_pos, 0)] if len(sites.ids) else site_ids
    rejects.add(
        has_customer & (site_pos >= 0) & (site_owner != customer_ids),
        "site_id",
        lambda i: (
            f"site {site_ids[i]} belongs to customer {site_owner[i]},"
            f" not customer {customer_ids[i]}"
        ),
    )

    if "contract_id" in frame.columns:
        contract_ids, has_contract = nullable_ints(frame["contract_id"], f"{entity}.contract_id")
    else:
        contract_ids = np.zeros(len(frame), np.int64)
        has_contract = np.zeros(len(frame), bool)
    if not settings.use_default_agreement:
        # The contract decides the agreement and is where the invoice is exported.
        owned = contracts.owned_by(contract_ids, has_contract, customer_ids)
        rejects.add(
            has_customer & has_contract & ~owned,
            "contract_id",
            lambda i: (
                f"contract {contract_ids[i]} is not an imported contract"
                f" of customer {customer_ids[i]}"
            ),
        )
    return Owners(customer_ids, customer, site_ids, has_site, site_pos, contract_ids, has_contract)
