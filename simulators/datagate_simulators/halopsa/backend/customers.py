"""Clients (schema ``Area``), their sites and their contracts (``ContractHeader``). §4.1–4.3"""

from __future__ import annotations

from typing import Any, ClassVar

from datagate_simulators.halopsa.backend.base import ListQuery, Resource, Tenant, changed_since
from datagate_simulators.halopsa.backend.fields import USAGE_CLIENT, USAGE_SITE
from datagate_simulators.halopsa.conventions import NO_DATE, UNSET, parse_datetime

TOP_LEVELS = {1: "Top Level"}
TAX_CODE_FIELDS = (
    "item_tax_code",
    "service_tax_code",
    "prepay_tax_code",
    "contract_tax_code",
    "sales_tax_code",
    "purchase_tax_code",
)


class Client(Resource):
    """``/api/Client``; list key ``clients``. [C] §3.2

    List rows are the reduced ``Area_List`` projection; custom-field values appear in them only
    for the ids in ``include_custom_fields`` (GET by id always has them all). [C] SPEC25
    ``newclient_sitename`` on create also creates that site and makes it the main site.
    """

    name = "Client"
    list_key = "clients"
    scope_area = "customers"
    use = "client"
    custom_field_usage = USAGE_CLIENT
    fields: ClassVar[dict[str, str]] = {
        "name": "str",
        "toplevel_id": "ref",
        "inactive": "bool",
        "colour": "str",
        "notes": "str",
        "website": "str",
        "main_site_id": "ref",
        "accountsid": "str",
        "ref": "str",
        "is_vip": "bool",
        "datecreated": "datetime",
        "customertype": "int",
        **dict.fromkeys(TAX_CODE_FIELDS, "ref"),
        "taxable": "bool",
        "default_currency_code": "int",
        "paymentterms": "int",
        "accountsemailaddress": "str",
        "accountsfirstname": "str",
        "accountslastname": "str",
        "startbalance": "float",
        "startdate": "datetime",
        "client_to_invoice": "ref",
        "due_date_type": "int",
        "invoiceduedaysextraclient": "int",
        "newclient_sitename": "str",
    }
    refs: ClassVar[dict[str, str]] = {
        **dict.fromkeys(TAX_CODE_FIELDS, "Tax"),
        "main_site_id": "Site",
    }
    required = ("name",)
    # ``Area.alastupdate``: the last write, kept by the server. [C] SPEC24 §A6
    stamp_field = "alastupdate"
    readonly = frozenset({stamp_field})
    active_flag = "inactive"
    filters: ClassVar[dict[str, str]] = {"toplevel_id": "toplevel_id"}
    list_fields = (
        "id", "name", "toplevel_id", "toplevel_name", "inactive", "colour", "accountsid", "ref",
        "main_site_id", "main_site_name", "is_vip", "datecreated", "customertype",
        *TAX_CODE_FIELDS, *(f"{f}_name" for f in TAX_CODE_FIELDS), "taxable",
        "default_currency_code", "paymentterms", "use", "key", "table", "alastupdate",
    )  # fmt: skip

    def defaults(self, backend: Tenant, now: str) -> dict[str, Any]:
        return {
            "name": "",
            "toplevel_id": 1,
            "inactive": False,
            "colour": "",
            "notes": "",
            "website": "",
            "main_site_id": UNSET,
            "accountsid": "",
            "ref": "",
            "is_vip": False,
            "datecreated": now,
            "customertype": 0,
            **dict.fromkeys(TAX_CODE_FIELDS, UNSET),
            "taxable": True,
            "default_currency_code": 1,
            "paymentterms": 0,
            "accountsemailaddress": "",
            "startbalance": 0.0,
            "startdate": NO_DATE,
            "client_to_invoice": UNSET,
            "due_date_type": 0,
            "invoiceduedaysextraclient": 0,
            "table": 2,  # TableEnum: client. [C] REAL-RI
            "__cf": {},
        }

    def finish(self, backend, record, existing, item, path, errors, now) -> None:  # type: ignore[override]
        site_name = record.pop("newclient_sitename", "")
        if existing is None and site_name:
            record["__new_site"] = site_name
        record[self.stamp_field] = now

    def extra_match(self, backend: Tenant, record: dict[str, Any], query: ListQuery) -> bool:
        return changed_since(backend, self, record, query)

    def after_commit(
        self, backend: Tenant, record: dict[str, Any], created: bool, now: str
    ) -> None:
        site_name = record.pop("__new_site", None)
        if site_name:
            backend.upsert("Site", [{"name": site_name, "client_id": record["id"]}], now=now)

    def derived(self, backend: Tenant, record: dict[str, Any]) -> dict[str, Any]:
        out = {
            "toplevel_name": TOP_LEVELS.get(record.get("toplevel_id"), ""),
            "main_site_name": backend.name_of("Site", record.get("main_site_id")),
        }
        for code in TAX_CODE_FIELDS:
            out[f"{code}_name"] = backend.name_of("Tax", record.get(code))
        return out


def _address(value: Any, address_id: int, site_id: int, address_type: int) -> dict[str, Any]:
    """An ``AddressStore`` object (§4.2): line1…line4, postcode, primary …"""
    value = value or {}
    return {
        "id": address_id,
        "type": address_type,
        "line1": str(value.get("line1") or ""),
        "line2": str(value.get("line2") or ""),
        "line3": str(value.get("line3") or ""),
        "line4": str(value.get("line4") or ""),
        "postcode": str(value.get("postcode") or ""),
        "primary": bool(value.get("primary", True)),
        "inactive": bool(value.get("inactive", False)),
        "site_id": site_id,
    }


class Site(Resource):
    """``/api/Site``; list key ``sites``. ``client_id`` is a double, e.g. ``21.0``. [C] §2 PANO

    Addresses (``delivery_address``, ``invoice_address``) are in list rows only with
    ``includeaddress=true`` (the list parameter exists; [I] that rows lack them otherwise).
    """

    name = "Site"
    list_key = "sites"
    scope_area = "customers"
    use = "site"
    custom_field_usage = USAGE_SITE
    fields: ClassVar[dict[str, str]] = {
        "name": "str",
        "client_id": "ref",
        "inactive": "bool",
        "phonenumber": "str",
        "notes": "str",
        "timezone": "str",
        "maincontact_name": "str",
        "maincontact_id": "ref",
        "isinvoicesite": "bool",
        "invoice_address_isdelivery": "bool",
        "delivery_address": "obj",
        "invoice_address": "obj",
        "sla_id": "ref",
        "ref": "str",
        "accountsid": "str",
        "datecreated": "datetime",
        **{
            f"site_{t}_tax_code": "ref"
            for t in ("item", "service", "contract", "prepay", "sales", "purchase")
        },
    }
    refs: ClassVar[dict[str, str]] = {
        "client_id": "Client",
        **{
            f"site_{t}_tax_code": "Tax"
            for t in ("item", "service", "contract", "prepay", "sales", "purchase")
        },
    }
    required = ("name", "client_id")
    # ``Site.slastupdate``: the last write, kept by the server. [C] SPEC24 §A6
    stamp_field = "slastupdate"
    readonly = frozenset({stamp_field})
    active_flag = "inactive"
    filters: ClassVar[dict[str, str]] = {"client_id": "client_id", "site_id": "id"}
    search_fields = ("name", "client_name")

    def defaults(self, backend: Tenant, now: str) -> dict[str, Any]:
        return {
            "name": "",
            "client_id": float(UNSET),
            "inactive": False,
            "phonenumber": "",
            "notes": "",
            "timezone": "",
            "maincontact_name": "",
            "maincontact_id": UNSET,
            "isinvoicesite": False,
            "invoice_address_isdelivery": True,
            "delivery_address": None,
            "invoice_address": None,
            "sla_id": UNSET,
            "ref": "",
            "accountsid": "",
            "datecreated": now,
            "__cf": {},
        }

    def finish(self, backend, record, existing, item, path, errors, now) -> None:  # type: ignore[override]
        record["client_id"] = float(record["client_id"])  # [C] PANO: 21.0
        record[self.stamp_field] = now
        old = existing or {}
        if "delivery_address" in item or existing is None:
            address_id = (old.get("delivery_address") or {}).get("id") or backend.next_sequence(
                "address"
            )
            record["delivery_address"] = _address(
                record.get("delivery_address"), address_id, record["id"], 1
            )
        if "invoice_address" in item or existing is None:
            address_id = (old.get("invoice_address") or {}).get("id") or backend.next_sequence(
                "address"
            )
            source = record.get("invoice_address")
            if not source and record.get("invoice_address_isdelivery"):
                source = record["delivery_address"]
            record["invoice_address"] = _address(source, address_id, record["id"], 2)

    def after_commit(
        self, backend: Tenant, record: dict[str, Any], created: bool, now: str
    ) -> None:
        client = backend.table("Client").get(int(record["client_id"]))
        if created and client is not None and client.get("main_site_id") in (None, 0, UNSET):
            backend.replace_record(
                "Client", {**client, "main_site_id": record["id"], Client.stamp_field: now}
            )

    def on_delete(self, backend: Tenant, record: dict[str, Any]) -> None:
        client = backend.table("Client").get(int(record["client_id"]))
        if client is not None and client.get("main_site_id") == record["id"]:
            backend.replace_record(
                "Client",
                {**client, "main_site_id": UNSET, Client.stamp_field: backend.now_text()},
            )

    def extra_match(self, backend: Tenant, record: dict[str, Any], query: ListQuery) -> bool:
        return changed_since(backend, self, record, query)

    def derived(self, backend: Tenant, record: dict[str, Any]) -> dict[str, Any]:
        client_name = backend.name_of("Client", int(record.get("client_id", UNSET)))
        return {
            "client_name": client_name,
            "clientsite_name": f"{client_name} / {record.get('name', '')}",
        }

    def list_row(
        self, backend: Tenant, full_row: dict[str, Any], query: ListQuery | None
    ) -> dict[str, Any]:
        row = super().list_row(backend, full_row, query)
        if not (query and query.get_bool("includeaddress")):
            row.pop("delivery_address", None)
            row.pop("invoice_address", None)
        if not (query and query.get_bool("includenotes")):
            row.pop("notes", None)
        return row


class ClientContract(Resource):
    """``/api/ClientContract`` (``ContractHeader``); list key ``contracts``. [C] §4.3

    The type is ``contracttype`` (an id) + ``contracttype_name``; there is no ``type`` field.
    Contracts with ``active: false`` are listed only with ``includeinactive=true``.
    ``started``/``expired`` are computed from ``start_date``/``end_date`` when written.
    """

    name = "ClientContract"
    list_key = "contracts"
    scope_area = "contracts"
    use = "contract"
    fields: ClassVar[dict[str, str]] = {
        "client_id": "ref",
        "site_id": "ref",
        "user_id": "ref",
        "ref": "str",
        "refextra": "str",
        "refextra2": "str",
        "note": "str",
        "start_date": "datetime",
        "end_date": "datetime",
        "active": "bool",
        "contracttype": "ref",
        "subtype": "int",
        "status": "int",
        "contract_status": "str",
        "billingperiod": "int",
        "billingdescription": "int",
        "periodchargeamount": "float",
        "costperperiod": "float",
        "dontinvoice": "bool",
        "rollingcontract": "bool",
        "termmonths": "int",
        "startbalance": "float",
        "customfields": "list",
    }
    refs: ClassVar[dict[str, str]] = {"client_id": "Client", "site_id": "Site"}
    required = ("client_id",)
    readonly = frozenset({"started", "expired", "last_modified", "contracttype_name"})
    active_flag = "active"
    filters: ClassVar[dict[str, str]] = {
        "client_id": "client_id",
        "site_id": "site_id",
        "contract_type": "contracttype",
    }
    search_fields = ("ref", "refextra", "client_name", "note")
    list_fields = (
        "id", "client_id", "client_name", "ref", "refextra", "start_date", "end_date", "started",
        "expired", "billingperiod", "billingdescription", "subtype", "status", "site_id", "site_name",
        "user_id", "periodchargeamount", "note", "refextra2", "contract_status", "use", "key", "table",
        "last_modified", "contracttype", "contracttype_name", "active", "customfields", "dontinvoice",
    )  # fmt: skip

    def defaults(self, backend: Tenant, now: str) -> dict[str, Any]:
        return {
            "client_id": UNSET,
            "site_id": UNSET,
            "user_id": UNSET,
            "ref": "",
            "refextra": "",
            "refextra2": "",
            "note": "",
            "start_date": NO_DATE,
            "end_date": NO_DATE,
            "started": False,
            "expired": False,
            "active": True,
            "contracttype": UNSET,
            "subtype": 0,
            "status": 0,
            "contract_status": "",
            "billingperiod": 2,
            "billingdescription": 0,
            "periodchargeamount": 0.0,
            "costperperiod": 0.0,
            "dontinvoice": False,
            "rollingcontract": False,
            "termmonths": 12,
            "startbalance": 0.0,
            "customfields": [],
            "table": 9,
            "last_modified": now,
        }

    def finish(self, backend, record, existing, item, path, errors, now) -> None:  # type: ignore[override]
        kind = record.get("contracttype")
        if (
            "contracttype" in item
            and kind not in (None, 0, UNSET)
            and kind not in backend.contract_types
        ):
            errors.add(f"{path}.contracttype", f"Contract type {kind} does not exist.")
        today = parse_datetime(now)
        start, end = parse_datetime(record["start_date"]), parse_datetime(record["end_date"])
        record["started"] = start is not None and today is not None and start <= today
        record["expired"] = end is not None and today is not None and end < today
        record["contract_status"] = record.get("contract_status") or (
            "Expired" if record["expired"] else "Active"
        )
        record["last_modified"] = now

    def derived(self, backend: Tenant, record: dict[str, Any]) -> dict[str, Any]:
        return {
            "client_name": backend.name_of("Client", record.get("client_id")),
            "site_name": backend.name_of("Site", record.get("site_id")),
            "contracttype_name": backend.contract_types.get(record.get("contracttype"), ""),
        }
