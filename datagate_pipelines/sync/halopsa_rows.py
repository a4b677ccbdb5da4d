"""Raw HaloPSA records → typed warehouse rows, or rejects with the field and the reason.

HaloPSA's conventions are decoded here and nowhere else: -1 (and often 0) for "no id",
`1899-12-30T00:00:00` for "no date", ids sent as doubles (`Site.client_id: 21.0`) or
strings, tax ids on lines as strings (docs/halopsa-api.md §2, §6).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from datagate_pipelines.billing.money import round_half_away
from datagate_pipelines.warehouse.rejects import Reject

NO_DATE_PREFIXES = ("1899-12-30", "0001-01-01")
OPT_IN_TRUE = {"true", "yes", "1", "y"}


class FieldError(ValueError):
    """A field that cannot be decoded; the row goes to rejects with this reason."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


@dataclass
class Decoded:
    entity: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    # Ids seen in HaloPSA, decodable or not: a rejected record is still present upstream
    # and must not be marked deleted.
    seen_ids: set[int] = field(default_factory=set)


# --- field decoders -------------------------------------------------------------------


def _int(
    value: Any, name: str, *, optional: bool, none_values: Iterable[int] = (-1,)
) -> int | None:
    if value is None or value == "":
        if optional:
            return None
        raise FieldError(name, "is missing")
    if isinstance(value, bool):
        raise FieldError(name, f"expected an id, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise FieldError(name, f"expected a whole number, got {value!r}")
        value = int(value)
    elif isinstance(value, Decimal):
        if value != value.to_integral_value():
            raise FieldError(name, f"expected a whole number, got {value}")
        value = int(value)
    elif isinstance(value, str):
        try:
            value = int(Decimal(value.strip()))
        except (InvalidOperation, ValueError):
            raise FieldError(name, f"expected a whole number, got {value!r}") from None
    elif not isinstance(value, int):
        raise FieldError(name, f"expected a whole number, got {type(value).__name__}")
    if optional and value in set(none_values):
        return None
    return value


def required_id(name: str) -> Callable[[Any], int]:
    return lambda value: _int(value, name, optional=False, none_values=())  # type: ignore[return-value]


def optional_id(name: str, *, zero_is_none: bool = True) -> Callable[[Any], int | None]:
    none_values = (-1, 0) if zero_is_none else (-1,)
    return lambda value: _int(value, name, optional=True, none_values=none_values)


def decimal_places(
    name: str, places: int, *, optional: bool = False
) -> Callable[[Any], Decimal | None]:
    """A number with at most `places` decimals; more precision is refused, never rounded."""

    def decode(value: Any) -> Decimal | None:
        if value is None or value == "":
            if optional:
                return None
            raise FieldError(name, "is missing")
        if isinstance(value, bool):
            raise FieldError(name, f"expected a number, got {value!r}")
        try:
            # A float from JSON is read through its shortest repr: the digits HaloPSA sent.
            number = (
                Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
            )
        except InvalidOperation:
            raise FieldError(name, f"expected a number, got {value!r}") from None
        if not number.is_finite():
            raise FieldError(name, f"expected a finite number, got {value!r}")
        if number != number.quantize(Decimal(1).scaleb(-places)):
            raise FieldError(name, f"{number} has more than {places} decimal places")
        return number.quantize(Decimal(1).scaleb(-places))

    return decode


def halo_date(name: str) -> Callable[[Any], date | None]:
    def decode(value: Any) -> date | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise FieldError(name, f"expected a date string, got {value!r}")
        if value.startswith(NO_DATE_PREFIXES):
            return None
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
        except ValueError:
            raise FieldError(name, f"expected an ISO date, got {value!r}") from None

    return decode


def text(
    name: str, *, required: bool = False, max_length: int = 1000
) -> Callable[[Any], str | None]:
    def decode(value: Any) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise FieldError(name, "is missing")
            return None
        if isinstance(value, dict | list):
            raise FieldError(name, f"expected text, got {type(value).__name__}")
        result = str(value).strip()
        return result[:max_length]

    return decode


def boolean(name: str, *, default: bool = False) -> Callable[[Any], bool]:
    def decode(value: Any) -> bool:
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in {"true", "false", "0", "1"}:
            return value.strip().lower() in {"true", "1"}
        raise FieldError(name, f"expected true or false, got {value!r}")

    return decode


# --- entities ---------------------------------------------------------------------------


def _address(record: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(one-line address, postcode) from a site's delivery or invoice address."""
    for key in ("delivery_address", "invoice_address", "address"):
        address = record.get(key)
        if isinstance(address, Mapping):
            lines = [str(address.get(f"line{i}") or "").strip() for i in range(1, 5)]
            postcode = str(address.get("postcode") or "").strip() or None
            one_line = ", ".join(part for part in [*lines, postcode or ""] if part) or None
            if one_line or postcode:
                return one_line, postcode
    postcode = str(record.get("postcode") or "").strip() or None
    return None, postcode


def opted_in(record: Mapping[str, Any], field_name: str) -> bool:
    """Whether the client is ticked with the portal's Datagate checkbox custom field."""
    wanted = {field_name.lower(), f"cf{field_name.lower()}"}
    for custom in record.get("customfields") or []:
        if not isinstance(custom, Mapping):
            continue
        names = {str(custom.get("name") or "").lower(), str(custom.get("label") or "").lower()}
        if names & wanted:
            value = custom.get("value")
            if isinstance(value, bool):
                return value
            if str(value).strip().lower() in OPT_IN_TRUE:
                return True
            return str(custom.get("display") or "").strip().lower() in OPT_IN_TRUE
    return False


Decoder = Callable[[Mapping[str, Any]], dict[str, Any]]


def _client(field_name: str) -> Decoder:
    def decode(r: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "name": text("name", required=True, max_length=300)(r.get("name")),
            "inactive": boolean("inactive")(r.get("inactive")),
            "opted_in": opted_in(r, field_name),
            "main_site_id": optional_id("main_site_id")(r.get("main_site_id")),
            "start_balance": decimal_places("startbalance", 2, optional=True)(
                r.get("startbalance")
            ),
            "start_date": halo_date("startdate")(r.get("startdate")),
        }

    return decode


def _site(r: Mapping[str, Any]) -> dict[str, Any]:
    address, postcode = _address(r)
    return {
        "client_id": required_id("client_id")(r.get("client_id")),
        "name": text("name", required=True, max_length=300)(r.get("name")),
        "postcode": postcode,
        "address": address,
        "inactive": boolean("inactive")(r.get("inactive")),
    }


def _contract(r: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "client_id": required_id("client_id")(r.get("client_id")),
        "ref": text("ref", max_length=200)(r.get("ref")),
        "contract_type_id": optional_id("contracttype", zero_is_none=False)(r.get("contracttype")),
        "contract_type_name": text("contracttype_name", max_length=200)(r.get("contracttype_name")),
        "site_id": optional_id("site_id")(r.get("site_id")),
        "start_date": halo_date("start_date")(r.get("start_date")),
        "end_date": halo_date("end_date")(r.get("end_date")),
        "active": boolean("active", default=True)(r.get("active")),
    }


def _item_group(r: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": text("name", required=True, max_length=300)(r.get("name")),
        "nominal_code": text("nominalcode", max_length=100)(r.get("nominalcode")),
        "purchase_nominal_code": text("nominalcodepurchase", max_length=100)(
            r.get("nominalcodepurchase")
        ),
    }


def _item(r: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": text("name", required=True, max_length=300)(r.get("name")),
        "item_group_id": optional_id("assetgroup_id")(r.get("assetgroup_id")),
        "halo_tax_id": optional_id("taxcode")(r.get("taxcode")),
        "is_recurring": boolean("isrecurringitem")(r.get("isrecurringitem")),
        "base_price": decimal_places("baseprice", 4, optional=True)(r.get("baseprice")),
        "nominal_code": text("nominalcode", max_length=100)(r.get("nominalcode")),
        "purchase_nominal_code": text("purchasenominalcode", max_length=100)(
            r.get("purchasenominalcode")
        ),
    }


def _tax(r: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": text("name", required=True, max_length=300)(r.get("name")),
        "code": text("code", max_length=100)(r.get("code")),
        "rate_percent": decimal_places("value", 8, optional=True)(r.get("value")),
    }


def _recurring_invoice(r: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "client_id": required_id("client_id")(r.get("client_id")),
        "site_id": optional_id("sitenumber")(r.get("sitenumber")),
        "contract_id": optional_id("contract_id")(r.get("contract_id")),
        "period": _int(r.get("period"), "period", optional=True, none_values=()),
    }


def _recurring_line(r: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "item_id": optional_id("_itemid")(r.get("_itemid")),
        "description": text("item_shortdescription")(r.get("item_shortdescription")),
        "qty": decimal_places("qty_order", 4)(r.get("qty_order")),
        "unit_price": decimal_places("unit_price", 4)(r.get("unit_price")),
        "halo_tax_code": text("tax_code", max_length=32)(r.get("tax_code")),
        "contract_id": optional_id("contract_id")(r.get("contract_id")),
        "site_id": optional_id("site")(r.get("site")),
        "start_date": halo_date("startdate")(r.get("startdate")),
        "end_date": halo_date("enddate")(r.get("enddate")),
        "is_inactive": boolean("isinactive")(r.get("isinactive")),
    }


def _decode_all(
    entity: str,
    records: Iterable[Mapping[str, Any]],
    decoder: Decoder,
    result: Decoded | None = None,
) -> Decoded:
    result = result or Decoded(entity)
    for record in records:
        if not isinstance(record, Mapping):
            result.rejects.append(
                Reject(entity, None, None, f"expected an object, got {record!r:.80}")
            )
            continue
        try:
            halo_id = _int(record.get("id"), "id", optional=False, none_values=())
        except FieldError as exc:
            result.rejects.append(Reject(entity, None, exc.field, exc.reason, record))
            continue
        assert halo_id is not None
        if halo_id in result.seen_ids:
            result.rejects.append(
                Reject(
                    entity,
                    str(halo_id),
                    "id",
                    "duplicate id in HaloPSA's answer; first kept",
                    record,
                )
            )
            continue
        result.seen_ids.add(halo_id)
        try:
            row = decoder(record)
        except FieldError as exc:
            result.rejects.append(Reject(entity, str(halo_id), exc.field, exc.reason, record))
            continue
        result.rows.append({"halo_id": halo_id, **row, "raw": dict(record)})
    return result


def decode_clients(
    records: Iterable[Mapping[str, Any]], *, datagate_field: str = "Datagate"
) -> Decoded:
    return _decode_all("client", records, _client(datagate_field))


def decode_sites(records: Iterable[Mapping[str, Any]]) -> Decoded:
    return _decode_all("site", records, _site)


def decode_contracts(records: Iterable[Mapping[str, Any]]) -> Decoded:
    return _decode_all("contract", records, _contract)


def decode_item_groups(records: Iterable[Mapping[str, Any]]) -> Decoded:
    return _decode_all("item_group", records, _item_group)


def decode_items(records: Iterable[Mapping[str, Any]]) -> Decoded:
    return _decode_all("item", records, _item)


def decode_taxes(records: Iterable[Mapping[str, Any]]) -> Decoded:
    return _decode_all("tax", records, _tax)


def decode_recurring_invoices(
    records: Iterable[Mapping[str, Any]],
) -> tuple[Decoded, Decoded]:
    """Headers and their lines. Lines inherit the header's client, period, contract and site."""
    records = list(records)
    headers = _decode_all("recurring_invoice", records, _recurring_invoice)
    by_id = {row["halo_id"]: row for row in headers.rows}
    lines = Decoded("recurring_invoice_line")
    for record in records:
        header_id = record.get("id") if isinstance(record, Mapping) else None
        header = by_id.get(header_id) if isinstance(header_id, int) else None
        raw_lines = record.get("lines") if isinstance(record, Mapping) else None
        if header is None or not isinstance(raw_lines, list):
            continue

        def with_header(r: Mapping[str, Any], header: dict[str, Any] = header) -> dict[str, Any]:
            row = _recurring_line(r)
            # A line without its own contract or site belongs to the header's.
            row["contract_id"] = row["contract_id"] or header["contract_id"]
            row["site_id"] = row["site_id"] or header["site_id"]
            return {
                "recurring_invoice_id": header["halo_id"],
                "client_id": header["client_id"],
                "period": header["period"],
                **row,
            }

        _decode_all("recurring_invoice_line", raw_lines, with_header, lines)
        # Each line is kept once, as a line row or a reject with its record: the header's
        # raw record need not carry them all again.
        header["raw"] = {key: value for key, value in header["raw"].items() if key != "lines"}
    return headers, lines


# --- suppliers and purchase orders (docs/halopsa-api.md §A1, §A2) ---------------------

#: Keys the ingest adds to a supplier's record before decoding (docs/halopsa-api.md §A1:
#: list rows carry no change stamp, so the list row's hash decides when details are read).
LIST_HASH, DETAIL_READ_AT = "_datagate_list_hash", "_datagate_detail_read_at"


def _supplier(r: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": text("name", required=True, max_length=300)(r.get("name")),
        "inactive": boolean("inactive")(r.get("inactive")),
        "accounts_id": text("accounts_id", max_length=100)(r.get("accounts_id")),
        "email": text("email_address", max_length=300)(r.get("email_address")),
        "phone": text("phone_number", max_length=100)(r.get("phone_number")),
        "address": text("address", max_length=2000)(r.get("address")),
        "currency_code": optional_id("default_currency_code", zero_is_none=False)(
            r.get("default_currency_code")
        ),
        "list_hash": text(LIST_HASH, required=True, max_length=64)(r.get(LIST_HASH)),
        "detail_read_at": r.get(DETAIL_READ_AT),
    }


def decode_suppliers(records: Iterable[Mapping[str, Any]]) -> Decoded:
    """Suppliers as the ingest assembled them: the detail record merged with the list row,
    and the list row's hash and when the detail was read (kept out of `raw`)."""
    decoded = _decode_all("supplier", records, _supplier)
    for row in decoded.rows:
        row["raw"] = {k: v for k, v in row["raw"].items() if k not in (LIST_HASH, DETAIL_READ_AT)}
    return decoded


def _supplier_invoice(invoices: Any) -> tuple[str | None, date | None]:
    """The number and date of the first live supplier invoice linked to a PO (§A2:
    `invoices`)."""
    for invoice in invoices if isinstance(invoices, list) else []:
        if isinstance(invoice, Mapping) and not invoice.get("voided"):
            number = invoice.get("thirdpartyinvoicenumber") or invoice.get("invoicenumber")
            day = halo_date("invoices.invoice_date")(invoice.get("invoice_date"))
            return str(number or invoice.get("id"))[:100], day
    return None, None


def _purchase_order(r: Mapping[str, Any]) -> dict[str, Any]:
    supplier_invoice, supplier_invoice_date = _supplier_invoice(r.get("invoices"))
    return {
        "po_ref": text("po_ref", max_length=100)(r.get("po_ref")),
        "supplier_id": required_id("supplier_id")(
            None if r.get("supplier_id") in (-1, 0) else r.get("supplier_id")
        ),
        "status": _int(r.get("status"), "status", optional=True, none_values=()),
        "goodsin_status": _int(
            r.get("goodsin_status"), "goodsin_status", optional=True, none_values=()
        ),
        "order_date": halo_date("date")(r.get("date")),
        "due_date": halo_date("duedate")(r.get("duedate")),
        "currency_code": optional_id("currency_code", zero_is_none=False)(r.get("currency_code")),
        "total": decimal_places("total", 2, optional=True)(r.get("total")),
        "supplier_invoice": supplier_invoice,
        "supplier_invoice_date": supplier_invoice_date,
    }


def _purchase_order_line(quantity_field: str, unit_cost_field: str) -> Decoder:
    """A PO line. Its quantity and unit-cost field names are unconfirmed (§A2): they are
    the portal's `purchasing` settings, and a line whose `net_total` disagrees with
    quantity × unit cost is refused rather than exported wrong."""

    def decode(r: Mapping[str, Any]) -> dict[str, Any]:
        qty = decimal_places(quantity_field, 4)(r.get(quantity_field))
        unit_cost = decimal_places(unit_cost_field, 4)(r.get(unit_cost_field))
        assert qty is not None and unit_cost is not None
        amount = round_half_away(qty * unit_cost)
        net_total = decimal_places("net_total", 2, optional=True)(r.get("net_total"))
        if net_total is not None and net_total != amount:
            raise FieldError(
                unit_cost_field,
                f"{quantity_field} {qty} × {unit_cost_field} {unit_cost} = {amount}, but "
                f"HaloPSA's net_total is {net_total} (are purchasing.quantity_field and "
                "unit_cost_field the right names?)",
            )
        return {
            "item_id": optional_id("item_id")(r.get("item_id")),
            "description": text("name")(r.get("name")) or text("note")(r.get("note")),
            "qty": qty,
            "unit_cost": unit_cost,
            "amount": amount,
            "nominal_code": text("accounts_code", max_length=100)(r.get("accounts_code")),
        }

    return decode


def decode_purchase_orders(
    records: Iterable[Mapping[str, Any]],
    *,
    quantity_field: str = "quantity",
    unit_cost_field: str = "unit_cost",
) -> tuple[Decoded, Decoded]:
    """Headers and their lines. A purchase order is taken whole or not at all: one bad line
    rejects the order (with that line's field and reason), so it is never exported short."""
    records = list(records)
    headers = _decode_all("purchase_order", records, _purchase_order)
    by_id = {row["halo_id"]: row for row in headers.rows}
    lines = Decoded("purchase_order_line")
    line_decoder = _purchase_order_line(quantity_field, unit_cost_field)
    for record in records:
        header = by_id.get(record.get("id")) if isinstance(record, Mapping) else None
        if header is None:
            continue
        raw_lines = record.get("lines")
        if not isinstance(raw_lines, list) or not raw_lines:
            headers.rows.remove(header)
            headers.rejects.append(
                Reject("purchase_order", str(header["halo_id"]), "lines", "has no lines", record)
            )
            continue
        order = Decoded("purchase_order_line")
        numbered = [
            {**line, "sort_seq": line.get("sort_seq") or index}
            for index, line in enumerate(raw_lines, start=1)
            if isinstance(line, Mapping)
        ]

        def with_header(r: Mapping[str, Any], header: dict[str, Any] = header) -> dict[str, Any]:
            line_no = _int(r.get("sort_seq"), "sort_seq", optional=False, none_values=())
            return {"purchase_order_id": header["halo_id"], "line_no": line_no, **line_decoder(r)}

        _decode_all("purchase_order_line", numbered, with_header, order)
        lines.seen_ids |= order.seen_ids
        if order.rejects or len(numbered) != len(raw_lines):
            first = order.rejects[0] if order.rejects else None
            headers.rows.remove(header)
            headers.rejects.append(
                Reject(
                    "purchase_order",
                    str(header["halo_id"]),
                    f"lines.{first.field}" if first and first.field else "lines",
                    f"line {first.record_id}: {first.reason}"
                    if first
                    else "a line is not an object",
                    record,
                )
            )
            continue
        lines.rows.extend(order.rows)
        header["raw"] = {key: value for key, value in header["raw"].items() if key != "lines"}
    return headers, lines
