"""Agreements: which invoice a product or usage line belongs to (docs/billing.md, Agreements).

An agreement key names the agreement and its invoice:

- ``customer:42`` — the default agreement (``use_default_agreement`` true): every product
  and usage row of customer 42. Exported to HaloPSA against the customer's imported
  contract with the lowest HaloPSA id, or against the client alone when it has none.
- ``contract:1007`` — one agreement per contract (``use_default_agreement`` false),
  exported back to that contract.
- ``customer:42:no-contract`` — customer 42's products and usage without a contract when
  agreements are per contract; exported against the client alone.

Numbering order within a customer: contract id ascending, the "no contract" agreement last.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

# Agreement kinds, in numbering order within a customer.
DEFAULT = 0
CONTRACT = 1
NO_CONTRACT = 2


def agreement_key(customer_id: int, contract_id: int | None, use_default_agreement: bool) -> str:
    """The agreement a product or usage row of this customer and contract belongs to."""
    if use_default_agreement:
        return f"customer:{int(customer_id)}"
    if contract_id is None or pd.isna(contract_id):
        return f"customer:{int(customer_id)}:no-contract"
    return f"contract:{int(contract_id)}"


def format_agreement_key(kind: int, customer_id: int, contract_id: int) -> str:
    """The key of an agreement given as (kind, customer id, contract id)."""
    if kind == DEFAULT:
        return f"customer:{customer_id}"
    if kind == CONTRACT:
        return f"contract:{contract_id}"
    return f"customer:{customer_id}:no-contract"


def format_agreement_keys(
    kinds: np.ndarray, customer_ids: np.ndarray, contract_ids: np.ndarray
) -> np.ndarray:
    """`format_agreement_key` for whole columns (an object array of keys)."""
    keys = np.empty(len(kinds), dtype=object)
    for kind, template, ids in (
        (DEFAULT, "customer:{}", customer_ids),
        (CONTRACT, "contract:{}", contract_ids),
        (NO_CONTRACT, "customer:{}:no-contract", customer_ids),
    ):
        rows = np.flatnonzero(kinds == kind)
        if len(rows):
            made = map(template.format, ids[rows].tolist())
            keys[rows] = np.fromiter(made, dtype=object, count=len(rows))
    return keys


def agreement_sort_key(key: str) -> tuple[int, int]:
    """Order of agreements within one customer: contract id ascending, no-contract last."""
    parts = key.split(":")
    if parts[0] == "contract" and len(parts) == 2:
        return (0, int(parts[1]))
    if parts[0] == "customer" and len(parts) == 2:
        return (0, 0)
    if parts[0] == "customer" and len(parts) == 3 and parts[2] == "no-contract":
        return (1, 0)
    raise ValueError(f"not an agreement key: {key!r}")


class AgreementParts(NamedTuple):
    """Vectorized agreement identity: kind (DEFAULT, CONTRACT, NO_CONTRACT) and contract id
    (0 unless CONTRACT); together with the customer id they identify the agreement."""

    kind: np.ndarray
    contract: np.ndarray


def assign_agreements(
    contract_ids: np.ndarray, has_contract: np.ndarray, use_default_agreement: bool
) -> AgreementParts:
    """The agreement of each row, from its contract (int64 + presence mask)."""
    n = len(contract_ids)
    if use_default_agreement:
        return AgreementParts(np.full(n, DEFAULT, np.int8), np.zeros(n, np.int64))
    kind = np.where(has_contract, CONTRACT, NO_CONTRACT).astype(np.int8)
    return AgreementParts(kind, np.where(has_contract, contract_ids, 0).astype(np.int64))


def export_contracts(contracts: pd.DataFrame | None) -> dict[int, int]:
    """customer id → the HaloPSA id of its imported contract with the lowest id."""
    if contracts is None or len(contracts) == 0:
        return {}
    lowest = contracts.groupby("customer_id")["contract_id"].min()
    return {int(customer): int(contract) for customer, contract in lowest.items()}


def build_agreements(
    products: pd.DataFrame, contracts: pd.DataFrame | None, use_default_agreement: bool
) -> pd.DataFrame:
    """The agreements of a portal's products: customer_id, agreement_key, halo_contract_id
    (the contract the invoice is exported against; <NA> means the client alone)."""
    lowest = export_contracts(contracts)
    rows = {}
    for customer_id, contract_id in zip(
        products["customer_id"].tolist(), products["contract_id"].tolist(), strict=True
    ):
        key = agreement_key(customer_id, contract_id, use_default_agreement)
        if key in rows:
            continue
        if use_default_agreement:
            halo_contract = lowest.get(int(customer_id))
        elif key.startswith("contract:"):
            halo_contract = int(contract_id)
        else:
            halo_contract = None
        rows[key] = (int(customer_id), key, halo_contract)
    frame = pd.DataFrame(
        list(rows.values()), columns=["customer_id", "agreement_key", "halo_contract_id"]
    )
    frame["customer_id"] = frame["customer_id"].astype(np.int64)
    frame["halo_contract_id"] = frame["halo_contract_id"].astype("Int64")
    return frame
