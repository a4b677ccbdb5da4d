"""Products and what classifies them: Item, AssetGroup, ItemGroup, Tax. §4.6–4.8

AssetGroup, ItemGroup and Tax lists are plain JSON arrays: the spec gives no wrapper and the
notes call a plain array the most likely shape. [I] §3.2
"""

from __future__ import annotations

from typing import Any, ClassVar

from datagate_simulators.halopsa.backend.base import KINDS, ListQuery, Resource, Tenant
from datagate_simulators.halopsa.conventions import NO_DATE, UNSET


class Tax(Resource):
    """``/api/Tax``: ``id``, ``name``, ``code``, ``value`` (the rate in percent, e.g. 8.625)."""

    name = "Tax"
    scope_area = "invoices"
    fields: ClassVar[dict[str, str]] = {
        "name": "str",
        "code": "str",
        "value": "float",
        "is_composite": "bool",
        "linked_rates": "list",
        "onseparateline": "bool",
        "third_party_id": "str",
    }
    required = ("name",)
    search_fields = ("name", "code")

    def defaults(self, backend: Tenant, now: str) -> dict[str, Any]:
        return {
            "name": "",
            "code": "",
            "value": 0.0,
            "is_composite": False,
            "linked_rates": [],
            "onseparateline": False,
            "third_party_id": "",
        }


class AssetGroup(Resource):
    """``/api/AssetGroup`` (schema ``Generic``): the group an Item belongs to (``showasitem``)."""

    name = "AssetGroup"
    scope_area = "items"
    fields: ClassVar[dict[str, str]] = {
        "name": "str",
        "showasitem": "bool",
        "showasequip": "bool",
        "sequence": "int",
        "tax_id": "ref",
        "tax_id_purchase": "ref",
        "nominalcode": "str",
        "nominalcodepurchase": "str",
        "item_recurring_default": "bool",
        "item_contract_default": "bool",
        "item_donttrackstock_default": "bool",
        "item_billing_period_default": "int",
    }
    refs: ClassVar[dict[str, str]] = {"tax_id": "Tax", "tax_id_purchase": "Tax"}
    required = ("name",)

    def defaults(self, backend: Tenant, now: str) -> dict[str, Any]:
        return {
            "name": "",
            "showasitem": True,
            "showasequip": False,
            "sequence": 0,
            "tax_id": UNSET,
            "tax_id_purchase": UNSET,
            "nominalcode": "",
            "nominalcodepurchase": "",
            "item_recurring_default": False,
            "item_contract_default": False,
            "item_donttrackstock_default": True,
            "item_billing_period_default": 2,
        }

    def derived(self, backend: Tenant, record: dict[str, Any]) -> dict[str, Any]:
        return {
            "tax_name": backend.name_of("Tax", record.get("tax_id")),
            "tax_name_purchase": backend.name_of("Tax", record.get("tax_id_purchase")),
        }

    def extra_match(self, backend: Tenant, record: dict[str, Any], query: ListQuery) -> bool:
        # type=item / type=asset narrows to groups used for items / for assets.
        wanted = query.params.get("type", "").lower()
        if wanted in ("item", "items"):
            return bool(record.get("showasitem"))
        if wanted in ("asset", "assets", "equipment"):
            return bool(record.get("showasequip"))
        return True


class Item(Resource):
    """``/api/Item``; list key ``items``. The product group is ``assetgroup_id``. [C] §4.6

    A new item in an asset group takes the group's sales tax, nominal codes (sales and
    purchase) and recurring default unless it sends its own.
    """

    name = "Item"
    list_key = "items"
    scope_area = "items"
    fields: ClassVar[dict[str, str]] = {
        "name": "str",
        "description": "str",
        "purchase_description": "str",
        "note": "str",
        "internalreference": "str",
        "externalreference": "str",
        "accountsid": "str",
        "assetgroup_id": "ref",
        "baseprice": "float",
        "costprice": "float",
        "recurringprice": "float",
        "recurringcost": "float",
        "isrecurringitem": "bool",
        "iscontractitem": "bool",
        "item_default_billing_period": "int",
        "taxcode": "ref",
        "taxcodeother": "ref",
        "taxable": "bool",
        "nominalcode": "str",
        "purchasenominalcode": "str",
        "supplier_id": "ref",
        "dont_track_stock": "bool",
        "inactive": "bool",
        "dontinvoice": "bool",
        "type": "int",
        "datecreated": "datetime",
        "customfields": "list",
    }
    refs: ClassVar[dict[str, str]] = {
        "assetgroup_id": "AssetGroup",
        "taxcode": "Tax",
        "taxcodeother": "Tax",
    }
    required = ("name",)
    readonly = frozenset({"lastmodified", "assetgroup_name", "taxcode_name", "taxcodeother_name"})
    active_flag = "inactive"
    filters: ClassVar[dict[str, str]] = {
        "assetgroup_id": "assetgroup_id",
        "supplier_id": "supplier_id",
    }
    search_fields = ("name", "description", "internalreference", "externalreference")

    def defaults(self, backend: Tenant, now: str) -> dict[str, Any]:
        return {
            "name": "",
            "description": "",
            "internalreference": "",
            "externalreference": "",
            "accountsid": "",
            "assetgroup_id": UNSET,
            "baseprice": 0.0,
            "costprice": 0.0,
            "recurringprice": 0.0,
            "recurringcost": 0.0,
            "isrecurringitem": False,
            "iscontractitem": False,
            "item_default_billing_period": 2,
            "taxcode": UNSET,
            "taxcodeother": UNSET,
            "taxable": True,
            "nominalcode": "",
            "purchasenominalcode": "",
            "supplier_id": UNSET,
            "dont_track_stock": True,
            "inactive": False,
            "dontinvoice": False,
            "type": 0,
            "datecreated": now,
            "lastmodified": now,
            "customfields": [],
        }

    def finish(self, backend, record, existing, item, path, errors, now) -> None:  # type: ignore[override]
        record["lastmodified"] = now
        group = backend.table("AssetGroup").get(record.get("assetgroup_id"))
        if existing is None and group is not None:
            if "taxcode" not in item:
                record["taxcode"] = group.get("tax_id", UNSET)
            if "nominalcode" not in item:
                record["nominalcode"] = group.get("nominalcode", "")
            if "purchasenominalcode" not in item:
                record["purchasenominalcode"] = group.get("nominalcodepurchase", "")
            if "isrecurringitem" not in item:
                record["isrecurringitem"] = bool(group.get("item_recurring_default"))

    def derived(self, backend: Tenant, record: dict[str, Any]) -> dict[str, Any]:
        return {
            "assetgroup_name": backend.name_of("AssetGroup", record.get("assetgroup_id")),
            "taxcode_name": backend.name_of("Tax", record.get("taxcode")),
            "taxcodeother_name": backend.name_of("Tax", record.get("taxcodeother")),
        }

    def extra_match(self, backend: Tenant, record: dict[str, Any], query: ListQuery) -> bool:
        groups = query.get_int_list("assetgroups")
        if groups is not None and record.get("assetgroup_id") not in groups:
            return False
        if query.get_bool("recurringonly") and not record.get("isrecurringitem"):
            return False
        return not (query.get_bool("excluderecurring") and record.get("isrecurringitem"))


_GROUP_LINE_KINDS = {
    "item_id": "ref",
    "name": "str",
    "productcode": "str",
    "costprice": "float",
    "baseprice": "float",
    "current_quantity": "float",
    "billingperiod": "int",
    "startdate": "datetime",
    "item_recurring": "bool",
}


class ItemGroup(Resource):
    """``/api/ItemGroup``: a bundle of items for quotes and invoices (not an item's category).

    ``lines`` is replaced whole on update, like every child array. [C] §2
    """

    name = "ItemGroup"
    scope_area = "items"
    fields: ClassVar[dict[str, str]] = {
        "name": "str",
        "hideitems": "bool",
        "category": "str",
        "name_extra": "str",
        "default_billingperiod": "int",
        "nominal_code": "str",
        "hide_grouped_items_price": "int",
    }
    required = ("name",)

    def defaults(self, backend: Tenant, now: str) -> dict[str, Any]:
        return {
            "name": "",
            "lines": [],
            "hideitems": False,
            "category": "",
            "name_extra": "",
            "default_billingperiod": 2,
            "nominal_code": "",
        }

    def finish(self, backend, record, existing, item, path, errors, now) -> None:  # type: ignore[override]
        if "lines" not in item:
            return
        lines = item["lines"]
        if not isinstance(lines, list):
            errors.add(f"{path}.lines", "The value is not a valid array.")
            return
        new_lines = []
        for index, line in enumerate(lines):
            where = f"{path}.lines[{index}]"
            if not isinstance(line, dict):
                errors.add(where, "The value is not a valid object.")
                continue
            out: dict[str, Any] = {"item_id": UNSET, "name": "", "productcode": "", "costprice": 0.0, "baseprice": 0.0,
                                   "current_quantity": 1.0, "billingperiod": 2, "startdate": NO_DATE, "item_recurring": False}  # fmt: skip
            for key, value in line.items():
                kind = _GROUP_LINE_KINDS.get(key)
                try:
                    out[key] = KINDS[kind](value) if kind else value
                except (TypeError, ValueError):
                    errors.add(f"{where}.{key}", f"The value {value!r} is not valid.")
            target = backend.table("Item").get(out["item_id"])
            if out["item_id"] not in (UNSET, 0) and target is None:
                errors.add(f"{where}.item_id", f"Item {out['item_id']} does not exist.")
            elif target is not None:
                out["name"] = out["name"] or target["name"]
                out["item_recurring"] = out.get("item_recurring") or target.get(
                    "isrecurringitem", False
                )
            out["group_id"] = record["id"]
            new_lines.append(out)
        record["lines"] = new_lines

    def render(
        self,
        backend: Tenant,
        record: dict[str, Any],
        full: bool,
        query: ListQuery | None = None,
    ) -> dict[str, Any]:
        return super().render(backend, record, True, query)
