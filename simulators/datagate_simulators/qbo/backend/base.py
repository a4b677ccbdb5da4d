"""What every QBO entity shares: field checks, references, money, and the entity base class.

An :class:`Entity` describes one QBO entity type: its URL name, which operations it allows,
the properties it accepts and may be filtered on, and ``build`` — the rules that turn a
request body into the stored record (raising :class:`~datagate_simulators.qbo.errors.QBOFault`).
The generic create/read/update/delete flow lives in :mod:`.company`; entities see their
company through the :class:`Books` protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, ClassVar, Protocol

from .. import errors
from ..settings import QBOSettings

__all__ = ["Books", "Entity", "cents", "decimal_field", "integer_field", "ref_value", "words"]

#: Properties every entity carries, set by the server (stripped from input, never rejected).
SYSTEM_FIELDS = frozenset({"Id", "SyncToken", "sparse", "domain", "MetaData", "status"})

#: Filterable on every entity (docs/qbo-api.md §4).
COMMON_QUERYABLE = frozenset({"id", "metadata.createtime", "metadata.lastupdatedtime"})

CENT = Decimal("0.01")


def words(text: str) -> frozenset[str]:
    """The whitespace-separated names in ``text`` (for long property lists)."""
    return frozenset(text.split())


def cents(amount: Decimal) -> Decimal:
    """Round to cents, half away from zero — the one money rounding of the simulator."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def decimal_field(value: Any, element: str, entity: str) -> Decimal:
    """A JSON number (or numeric string) as ``Decimal``; anything else is 2010."""
    if isinstance(value, bool):
        raise errors.unsupported_property(element, entity)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise errors.unsupported_property(element, entity) from None
        if result.is_finite():
            return result
    raise errors.unsupported_property(element, entity)


def integer_field(value: Any, element: str, entity: str) -> int:
    number = decimal_field(value, element, entity)
    if number != number.to_integral_value():
        raise errors.unsupported_property(element, entity)
    return int(number)


def ref_value(ref: Any) -> str | None:
    """The Id inside a reference ``{"value": "1", "name": …}`` (None if absent/blank)."""
    value = ref.get("value") if isinstance(ref, Mapping) else ref
    if value is None:
        return None
    if isinstance(value, Decimal):
        value = format(value, "f")
    text = str(value).strip()
    return text or None


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class Books(Protocol):
    """A company's records as entity rules see them; ``Company`` is one.

    Declared here, below the entities, so that they need not import the company holding them.
    """

    settings: QBOSettings

    def live(self, entity: str, entity_id: str | None) -> dict[str, Any] | None: ...

    def all_live(self, entity: str) -> list[dict[str, Any]]: ...

    def insert(self, entity: str, record: dict[str, Any]) -> dict[str, Any]: ...

    def today(self) -> date: ...

    def custom_txn_numbers(self) -> bool: ...

    def using_sales_tax(self) -> bool: ...

    def home_currency_ref(self) -> dict[str, str]: ...

    def undeposited_funds_ref(self) -> dict[str, str] | None: ...

    def next_doc_number(self, entity: str) -> str: ...

    def applied_to_invoice(self, invoice_id: str) -> dict[str, Decimal]: ...

    def credit_used(self, credit_memo_id: str) -> Decimal: ...

    def customer_open_balance(self, customer_id: str) -> Decimal: ...

    def refresh_customer_balance(self, customer_id: str) -> None: ...

    def refresh_invoices(self, invoice_ids: Iterable[str]) -> None: ...

    def refresh_credit_memos(self, credit_memo_ids: Iterable[str]) -> None: ...

    def unlink_payments_from(self, invoice_id: str) -> None: ...

    def country(self) -> str: ...

    def multi_currency(self) -> bool: ...

    def vendor_open_balance(self, vendor_id: str) -> Decimal: ...

    def bills_linked_to(self, purchase_order_id: str) -> list[dict[str, str]]: ...

    def refresh_purchase_orders(self, purchase_order_ids: Iterable[str]) -> None: ...


class Entity:
    """One QBO entity type; subclasses set the class attributes and override ``build``."""

    name: ClassVar[str]  # "Customer"
    path: ClassVar[str]  # "customer" (URIs are case-sensitive)
    name_list: ClassVar[bool] = False  # name lists: active-only queries, no delete
    transaction: ClassVar[bool] = False  # shares the transaction Id sequence
    creatable: ClassVar[bool] = True
    updatable: ClassVar[bool] = True
    deletable: ClassVar[bool] = False
    voidable: ClassVar[bool] = False  # ?operation=void
    void_by_update: ClassVar[bool] = False  # ?operation=update&include=void
    cdc: ClassVar[bool] = True
    fields: ClassVar[frozenset[str]] = frozenset()  # accepted input properties
    read_only: ClassVar[frozenset[str]] = frozenset()  # accepted but ignored (server-computed)
    queryable: ClassVar[frozenset[str]] = frozenset()  # lower-case property paths

    def check_properties(self, body: Mapping[str, Any]) -> None:
        """2010 for a property this entity does not have (catches client typos)."""
        allowed = self.fields | self.read_only | SYSTEM_FIELDS
        for key in body:
            if key not in allowed:
                raise errors.unsupported_property(key, self.name)

    def writable(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The part of a stored record a client may send back (for sparse updates)."""
        return {k: v for k, v in record.items() if k in self.fields}

    def is_queryable(self, prop: str) -> bool:
        lowered = prop.lower()
        return lowered in COMMON_QUERYABLE or lowered in self.queryable

    def build(
        self,
        company: Books,
        data: dict[str, Any],
        existing: dict[str, Any] | None,
        include: frozenset[str],
    ) -> dict[str, Any]:
        """Validate ``data`` (writable properties only) and return the record's properties."""
        raise NotImplementedError

    def after_write(
        self, company: Books, record: dict[str, Any], previous: dict[str, Any] | None
    ) -> None:
        """Side effects on other records (e.g. a payment changes invoice balances)."""

    def before_remove(self, company: Books, record: dict[str, Any]) -> None:
        """Called before a delete or void of ``record``."""

    def void(self, record: dict[str, Any]) -> dict[str, Any]:
        """The voided version of ``record`` (only for ``voidable``/``void_by_update`` types)."""
        raise errors.unsupported_operation(f"void for {self.name}")

    # ---------------------------------------------------------------- helpers for subclasses

    def reference(
        self,
        company: Books,
        data: Mapping[str, Any],
        key: str,
        target: str,
        *,
        required: bool = False,
        element: str | None = None,
        name_field: str | None = None,
    ) -> dict[str, Any] | None:
        """Check the reference ``data[key]`` to a ``target`` entity; return it with its name.

        Missing and required → 2020; unknown Id → 2500; inactive name-list object → 610.
        """
        element = element or key
        ref = data.get(key)
        ref_id = ref_value(ref)
        if ref_id is None:
            if required:
                raise errors.required_param_missing(element)
            return None
        found = company.live(target, ref_id)
        if found is None:
            raise errors.invalid_reference(element, target, ref_id)
        if found.get("Active") is False:
            raise errors.inactive_reference(element)
        result: dict[str, Any] = {"value": ref_id}
        label = found.get(name_field) if name_field else None
        if label is not None:
            result["name"] = label
        return result

    def unique_name(
        self,
        company: Books,
        field: str,
        value: str,
        existing: Mapping[str, Any] | None,
        kind: str,
        others: Iterable[str] = (),
    ) -> None:
        """6240 when ``value`` is already the ``field`` of another record (case-insensitive).

        Inactive records count: QBO keeps their names reserved.
        """
        wanted = value.strip().casefold()
        own_id = existing.get("Id") if existing else None
        for entity in (self.name, *others):
            for record in company.all_live(entity):
                if entity == self.name and record.get("Id") == own_id:
                    continue
                other = record.get(field)
                if isinstance(other, str) and other.strip().casefold() == wanted:
                    raise errors.duplicate_name(kind)

    @staticmethod
    def no_colon(value: Any, element: str) -> None:
        """2040: colons separate parent and child names (docs/qbo-api.md §3.1)."""
        if isinstance(value, str) and ":" in value:
            raise errors.invalid_string(
                element, f"Invalid String : {element} cannot contain a colon (:)."
            )
