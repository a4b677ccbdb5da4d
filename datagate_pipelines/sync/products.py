"""Recurring-invoice lines → products, through the portal's filters (pure; no I/O).

The Datagate settings this follows (docs/product.md):
- `enable_product_sync` off: nothing is imported or updated.
- `contract_types` (ids or names; empty = all): only lines on contracts of those types.
- `item_groups` (ids or names; empty = all; one = "basic", several = "advanced"): only
  lines whose item belongs to one of those groups (HaloPSA `Item.assetgroup_id`).
Lines filtered out are simply not ours to bill (HaloPSA may invoice them itself). Lines
that cannot become a product are rejected with the reason.

Where docs/billing.md is silent:
- A line with no start date starts with its contract, else at the portal's billing start.
- An inactive line, or one that vanished from HaloPSA, is end-dated on the day the sync
  noticed it (never deleted), unless HaloPSA already gave an earlier end date; a line that
  becomes active again gets HaloPSA's own end date back. One that ended before it started
  keeps that (end < start) with its reason, and billing leaves it out (never billable).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from datagate_pipelines.config import SyncSettings
from datagate_pipelines.warehouse.rejects import Reject

MONTHLY = "monthly"


def product_id_for_line(line_id: int) -> str:
    return f"line:{line_id}"


def billing_cycle(period: int | None, monthly_values: Sequence[int]) -> str:
    """HaloPSA's recurring-invoice `period` → our billing cycle (one place for the mapping)."""
    if period in monthly_values:
        return MONTHLY
    return f"halopsa period {period}"


def _matches(value_id: int | None, value_name: str | None, wanted: Iterable[int | str]) -> bool:
    wanted_ids = {w for w in wanted if isinstance(w, int)}
    wanted_names = {str(w).strip().casefold() for w in wanted if isinstance(w, str)}
    # Names given as digits in YAML strings ("12") still mean the id.
    wanted_ids |= {int(n) for n in wanted_names if n.isdigit()}
    if value_id is not None and value_id in wanted_ids:
        return True
    return value_name is not None and value_name.strip().casefold() in wanted_names


@dataclass
class ProductSelection:
    products: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    filtered_out: int = 0


def select_products(
    lines: Iterable[Mapping[str, Any]],
    *,
    customers: Mapping[int, Mapping[str, Any]],
    contracts: Mapping[int, Mapping[str, Any]],
    items: Mapping[int, Mapping[str, Any]],
    item_groups: Mapping[int, str],
    settings: SyncSettings,
    billing_start: date,
    as_of: date,
) -> ProductSelection:
    """Decide, line by line, which recurring-invoice lines are products and with what terms.

    `lines` are mirror rows (recurring_invoice_lines) with `deleted_at` for vanished ones;
    `customers` maps HaloPSA client id → customer row (opted-in clients only).
    """
    result = ProductSelection()
    for line in lines:
        line_id = line["halo_id"]
        record_id = str(line_id)

        contract = contracts.get(line["contract_id"]) if line.get("contract_id") else None
        if settings.contract_types and not (
            contract is not None
            and _matches(
                contract["contract_type_id"],
                contract["contract_type_name"],
                settings.contract_types,
            )
        ):
            result.filtered_out += 1
            continue

        item = items.get(line["item_id"]) if line.get("item_id") is not None else None
        if settings.item_groups:
            group_id = item["item_group_id"] if item else None
            if not _matches(
                group_id, item_groups.get(group_id) if group_id else None, settings.item_groups
            ):
                result.filtered_out += 1
                continue

        customer = customers.get(line["client_id"])
        if customer is None:
            result.rejects.append(
                Reject(
                    "recurring_invoice_line",
                    record_id,
                    "client_id",
                    f"client {line['client_id']} is not a Datagate customer (not ticked, or unknown)",
                )
            )
            continue
        if item is None:
            result.rejects.append(
                Reject(
                    "recurring_invoice_line",
                    record_id,
                    "_itemid",
                    f"unknown item {line.get('item_id')}: not in HaloPSA's item list",
                )
            )
            continue

        start = line.get("start_date") or (contract or {}).get("start_date") or billing_start
        halo_end = line.get("end_date")
        end, ended_reason = halo_end, None
        gone_on = line.get("deleted_at")
        if gone_on is not None:
            noticed = gone_on.date() if hasattr(gone_on, "date") else gone_on
            ended_reason = f"line removed from HaloPSA (seen {noticed.isoformat()})"
        elif line.get("is_inactive"):
            noticed = as_of
            ended_reason = f"line inactive in HaloPSA (seen {noticed.isoformat()})"
        if ended_reason is not None and (end is None or noticed < end):
            end = noticed
            if noticed < start:
                # Ended before it ever started: nothing to bill, ever (not a data error).
                ended_reason = ended_reason.replace("(seen", "before it started (seen")
        else:
            ended_reason = None

        result.products.append(
            {
                "product_id": product_id_for_line(line_id),
                "source_line_id": line_id,
                "customer_id": line["client_id"],
                "site_id": line.get("site_id"),
                "contract_id": line.get("contract_id"),
                "item_id": line["item_id"],
                "description": line.get("description") or item["name"],
                "qty": line["qty"],
                "unit_price": line["unit_price"],
                "start_date": start,
                "end_date": end,
                "billing_cycle": billing_cycle(line.get("period"), settings.monthly_period_values),
                "ended_reason": ended_reason,
            }
        )
    return result


def keep_first_noticed_end(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> dict[str, Any]:
    """A sync-set end date stays where it was first put; later syncs don't move it."""
    product = dict(new)
    if old is not None and old.get("ended_reason") and product.get("ended_reason"):
        product["end_date"] = old["end_date"]
        product["ended_reason"] = old["ended_reason"]
    return product
