"""What every HaloPSA resource shares: typed fields, upsert rules, list filtering, rendering.

A resource subclass declares its fields and kinds, its references to other resources, its
defaults and its list projection; the generic code here does the rest. Fields a client sends
that the resource does not declare are stored and returned as they are (Halo's schemas have
hundreds of properties); write-only ``_flags`` that are not declared are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from datagate_simulators.halopsa.backend.store import Table
from datagate_simulators.halopsa.conventions import (
    UNSET,
    normalize_datetime,
    parse_bool,
    parse_datetime,
    parse_int,
    parse_number,
)
from datagate_simulators.halopsa.errors import ValidationFailed


class Errors:
    """Collects ``{"[0].lines[2].qty_order": ["message"]}`` during one upsert."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.errors)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)


class CustomFields(Protocol):
    """Custom-field values checked against their FieldInfo definitions (``CustomFieldValues``)."""

    def parse_values(
        self, usage: int, values: Any, path: str, errors: Errors
    ) -> dict[int, Any]: ...

    def render_values(self, usage: int, stored: Mapping[int, Any]) -> list[dict[str, Any]]: ...


class Tenant(Protocol):
    """The HaloPSA instance as resource rules see it; ``HaloPSABackend`` is one.

    Declared here, below the resources, so that they need not import the backend holding them.
    """

    contract_types: dict[int, str]

    @property
    def custom_fields(self) -> CustomFields: ...

    def table(self, name: str) -> Table: ...

    def table_version(self, name: str) -> int: ...

    def exists(self, resource: str, record_id: int) -> bool: ...

    def name_of(self, resource: str, record_id: Any) -> str: ...

    def next_sequence(self, name: str) -> int: ...

    def replace_record(self, resource: str, record: dict[str, Any]) -> None: ...

    def get(
        self, resource: str, record_id: Any, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]: ...

    def upsert(
        self, resource: str, items: Any, *, now: str | datetime | None = None
    ) -> list[dict[str, Any]]: ...

    def delete(self, resource: str, record_id: Any) -> dict[str, Any]: ...

    def now_text(self) -> str: ...

    def ignores_change_filter(self, resource: str) -> bool: ...


def _str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        raise ValueError("expected a string")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _ref(value: Any) -> int:
    return UNSET if value is None or value == "" else parse_int(value)


def _tax_code_string(value: Any) -> str:
    """InvoiceDetail.tax_code is a string holding the tax id. [C] REAL-RI"""
    if value is None or value == "":
        return ""
    return str(parse_int(value))


def _obj(value: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise ValueError("expected an object")


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    raise ValueError("expected an array")


#: Field kinds → coercion (raise ValueError to refuse the value).
KINDS: dict[str, Callable[[Any], Any]] = {
    "int": parse_int,
    "ref": _ref,
    "float": parse_number,
    "bool": parse_bool,
    "str": _str,
    "datetime": normalize_datetime,
    "taxcode_str": _tax_code_string,
    "obj": _obj,
    "list": _list,
}

_KIND_MESSAGES = {
    "int": "The value {v!r} is not a valid integer.",
    "ref": "The value {v!r} is not a valid id.",
    "float": "The value {v!r} is not a valid number.",
    "bool": "The value {v!r} is not a valid boolean.",
    "str": "The value {v!r} is not a valid string.",
    "datetime": "The value {v!r} is not a valid date/time.",
    "taxcode_str": "The value {v!r} is not a valid tax code id.",
    "obj": "The value {v!r} is not a valid object.",
    "list": "The value {v!r} is not a valid array.",
}


def coerce_fields(
    target: dict[str, Any],
    item: Mapping[str, Any],
    kinds: Mapping[str, str],
    path: str,
    errors: Errors,
    skip: set[str] | frozenset[str] = frozenset(),
) -> None:
    """Copy ``item`` into ``target``: declared fields coerced to their kind, others verbatim."""
    for key, value in item.items():
        if key in skip or key == "id":
            continue
        kind = kinds.get(key)
        if kind is None:
            if key.startswith("_"):
                continue  # write-only magic flags (_isimport, _validateonly …)
            target[key] = value
            continue
        try:
            target[key] = KINDS[kind](value)
        except (TypeError, ValueError):
            errors.add(f"{path}.{key}", _KIND_MESSAGES[kind].format(v=value))


#: Makes one new or changed child line: (the stored line with the sent line's id, or None
#: for a new line; the line sent; its sequence number; its error path).
LineWriter = Callable[[dict[str, Any] | None, Mapping[str, Any], int, str], dict[str, Any]]


def write_child_lines(
    record: Mapping[str, Any],
    existing: Mapping[str, Any] | None,
    item: Mapping[str, Any],
    path: str,
    errors: Errors,
    write_line: LineWriter,
) -> list[dict[str, Any]] | None:
    """A record's `lines` after an upsert (§2): sent `lines` replace the stored ones (kept as
    they are when not sent) and `add_lines` are added; a sent line with the id of a stored
    one updates it. None when either is not an array."""
    old_lines = {line["id"]: line for line in (existing or {}).get("lines", [])}
    sources: list[tuple[str, Any]] = []
    if "lines" in item:
        if not isinstance(item["lines"], list):
            errors.add(f"{path}.lines", "The value is not a valid array.")
            return None
        sources += [(f"{path}.lines[{i}]", line) for i, line in enumerate(item["lines"])]
    else:
        sources += [("", line) for line in record.get("lines", [])]
    if "add_lines" in item:
        if not isinstance(item["add_lines"], list):
            errors.add(f"{path}.add_lines", "The value is not a valid array.")
            return None
        sources += [(f"{path}.add_lines[{i}]", line) for i, line in enumerate(item["add_lines"])]
    lines = []
    for sequence, (where, line) in enumerate(sources, start=1):
        if not where:
            lines.append(line)  # kept as it was
        elif not isinstance(line, dict):
            errors.add(where, "The value is not a valid object.")
        else:
            try:
                line_id = parse_int(line.get("id") or 0)
            except ValueError:
                errors.add(f"{where}.id", f"The value {line.get('id')!r} is not a valid integer.")
                line_id = 0
            lines.append(write_line(old_lines.get(line_id), line, sequence, where))
    return lines


@dataclass
class ListQuery:
    """The list query string, keys lower-cased (ASP.NET binds them case-insensitively)."""

    params: dict[str, str]
    pageinate: bool = False
    page_size: int | None = None
    page_no: int = 1
    count: int | None = None
    idonly: bool = False
    includelines: bool = False
    include_active: bool = True
    include_inactive: bool = False
    search: str = ""
    orders: list[tuple[str, bool]] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: Mapping[str, str]) -> ListQuery:
        params = {k.lower(): v for k, v in raw.items()}
        errors = Errors()

        def get_bool(name: str, default: bool) -> bool:
            try:
                return parse_bool(params.get(name), default)
            except ValueError:
                errors.add(name, f"The value '{params[name]}' is not valid.")
                return default

        def get_int(name: str) -> int | None:
            if params.get(name) in (None, ""):
                return None
            try:
                return parse_int(params[name])
            except ValueError:
                errors.add(name, f"The value '{params[name]}' is not valid.")
                return None

        query = cls(params=params)
        query.pageinate = get_bool("pageinate", False)
        query.page_size = get_int("page_size")
        query.page_no = get_int("page_no") or 1
        query.count = get_int("count")
        query.idonly = get_bool("idonly", False)
        query.includelines = get_bool("includelines", False)
        query.include_active = get_bool("includeactive", True)
        query.include_inactive = get_bool("includeinactive", False)
        if params.get("activeinactive"):
            # "true,false" = include active, exclude inactive. [C] N8N qsSetStatus
            flags = [p.strip() for p in params["activeinactive"].split(",")]
            with_defaults = [*flags, "", ""]
            query.include_active = get_bool_text(with_defaults[0], query.include_active)
            query.include_inactive = get_bool_text(with_defaults[1], query.include_inactive)
        query.search = params.get("search", "").strip().lower()
        for suffix in ("", "2", "3", "4", "5"):
            name = params.get(f"order{suffix}", "").strip().lower()
            if name:
                query.orders.append((name, get_bool(f"orderdesc{suffix}", False)))
        errors.raise_if_any()
        return query

    def get_int(self, name: str) -> int | None:
        value = self.params.get(name)
        if value in (None, ""):
            return None
        try:
            return parse_int(value)
        except ValueError:
            raise ValidationFailed({name: [f"The value '{value}' is not valid."]}) from None

    def get_int_list(self, name: str) -> list[int] | None:
        value = self.params.get(name)
        if not value:
            return None
        try:
            return [parse_int(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise ValidationFailed({name: [f"The value '{value}' is not valid."]}) from None

    def get_bool(self, name: str, default: bool = False) -> bool:
        try:
            return parse_bool(self.params.get(name), default)
        except ValueError:
            raise ValidationFailed(
                {name: [f"The value '{self.params[name]}' is not valid."]}
            ) from None

    def cache_key(self) -> tuple[tuple[str, str], ...]:
        """The parameters that decide which rows match and their order (not paging)."""
        ignored = {
            "pageinate",
            "page_size",
            "page_no",
            "count",
            "idonly",
            "includelines",
            "include_custom_fields",
        }
        return tuple(sorted((k, v) for k, v in self.params.items() if k not in ignored))


#: The change-date list parameters (declared on /Client and /Site, among others). [C] SPEC24 §A6
CHANGED_FROM, CHANGED_TO = "lastupdatefromdate", "lastupdatetodate"


def changed_since(
    backend: Tenant, resource: Resource, record: dict[str, Any], query: ListQuery
) -> bool:
    """``lastupdatefromdate`` / ``lastupdatetodate`` on the resource's ``stamp_field``
    (inclusive), unless the backend's switch makes it ignore them, as Halo ignores a
    parameter it does not know. [I] that they filter /Client and /Site (proven on /Tickets)."""
    if resource.stamp_field is None or backend.ignores_change_filter(resource.name):
        return True
    stamp = parse_datetime(record.get(resource.stamp_field))
    for name, after in ((CHANGED_FROM, True), (CHANGED_TO, False)):
        text = query.params.get(name)
        if not text:
            continue
        try:
            bound = parse_datetime(text)
        except ValueError:
            bound = None
        if bound is None:
            raise ValidationFailed({name: [f"The value '{text}' is not valid."]})
        if stamp is None or (stamp < bound if after else stamp > bound):
            return False
    return True


def get_bool_text(text: str, default: bool) -> bool:
    try:
        return parse_bool(text, default) if text else default
    except ValueError:
        return default


class Resource:
    """One ``/api/<Resource>`` endpoint. Subclasses fill in the class attributes."""

    #: Canonical name as in the URL (matched case-insensitively).
    name: ClassVar[str]
    #: Wrapper key of list responses; None = the list is a plain JSON array.
    list_key: ClassVar[str | None] = None
    #: Without ``pageinate`` the list is a plain JSON array even though it has a key.
    bare_unless_paged: ClassVar[bool] = False
    #: 1 = ids 1, 2, 3 …; -1 = ids -1, -2, … (recurring invoices). [C] REAL-RI
    id_sign: ClassVar[int] = 1
    #: Scope area for read:/edit: scopes; None = needs "all" or "admin".
    scope_area: ClassVar[str | None] = None
    #: Declared fields and their kinds (see KINDS).
    fields: ClassVar[dict[str, str]] = {}
    #: Reference fields → resource that must hold the id (-1, 0 and null mean "none").
    refs: ClassVar[dict[str, str]] = {}
    #: Fields that must be non-empty on create.
    required: ClassVar[tuple[str, ...]] = ()
    #: Computed fields; values sent by clients are ignored.
    readonly: ClassVar[frozenset[str]] = frozenset()
    #: Fields the ``search`` parameter looks in (case-insensitive substring).
    search_fields: ClassVar[tuple[str, ...]] = ("name",)
    #: "inactive" (true = inactive) or "active" (true = active); None = no active filter.
    active_flag: ClassVar[str | None] = None
    #: Keys of a list row (None = the full record minus ``heavy_fields``).
    list_fields: ClassVar[tuple[str, ...] | None] = None
    #: Left out of list rows (e.g. ``lines`` unless includelines).
    heavy_fields: ClassVar[tuple[str, ...]] = ()
    #: Simple equality filters: query parameter → (record field, kind).
    filters: ClassVar[dict[str, str]] = {}
    #: Custom-field ``usage`` whose definitions (FieldInfo) become this resource's customfields.
    custom_field_usage: ClassVar[int | None] = None
    #: Resource-level "use" / "table" bookkeeping seen on real objects. [C] REAL-RI
    use: ClassVar[str | None] = None
    #: The field the server stamps on every write and filters by change date (None: no filter).
    stamp_field: ClassVar[str | None] = None

    # ---- writing

    def defaults(self, backend: Tenant, now: str) -> dict[str, Any]:
        """A new record's fields before the client's values are applied."""
        return {}

    def write(
        self,
        backend: Tenant,
        record_id: int,
        existing: dict[str, Any] | None,
        item: Mapping[str, Any],
        path: str,
        errors: Errors,
        now: str,
    ) -> dict[str, Any]:
        """The new version of record ``record_id`` (a new dict; ``existing`` is left untouched)."""
        created = existing is None
        record = {"id": record_id, **self.defaults(backend, now)} if created else dict(existing)
        skip = set(self.readonly) | {"customfields"}
        coerce_fields(record, item, self.fields, path, errors, skip)
        if "customfields" in item:
            self.write_custom_fields(
                backend, record, item["customfields"], f"{path}.customfields", errors
            )
        if created:
            for name in self.required:
                if record.get(name) in (None, "", UNSET):
                    errors.add(f"{path}.{name}", f"The {name} field is required.")
        for name, target in self.refs.items():
            value = record.get(name)
            if (
                name in item
                and isinstance(value, int | float)
                and value not in (UNSET, 0)
                and not backend.exists(target, int(value))
            ):
                errors.add(f"{path}.{name}", f"{target} {int(value)} does not exist.")
        self.finish(backend, record, existing, item, path, errors, now)
        return record

    def finish(
        self,
        backend: Tenant,
        record: dict[str, Any],
        existing: dict[str, Any] | None,
        item: Mapping[str, Any],
        path: str,
        errors: Errors,
        now: str,
    ) -> None:
        """Resource-specific rules after the generic field copy (children, totals …)."""

    def write_custom_fields(
        self,
        backend: Tenant,
        record: dict[str, Any],
        values: Any,
        path: str,
        errors: Errors,
    ) -> None:
        """``customfields`` replaces the whole set of values: omitted fields are cleared. [C] HAPI #13"""
        if self.custom_field_usage is None:
            try:
                record["customfields"] = _list(values)
            except ValueError:
                errors.add(path, "The value is not a valid array.")
            return
        record["__cf"] = backend.custom_fields.parse_values(
            self.custom_field_usage, values, path, errors
        )

    def write_line(
        self,
        backend: Tenant,
        header: dict[str, Any],
        base: dict[str, Any] | None,
        line: Mapping[str, Any],
        sequence: int,
        where: str,
        errors: Errors,
    ) -> dict[str, Any]:
        """One child line of a resource with `lines` (`base`: the stored line it updates)."""
        raise NotImplementedError

    def write_lines(
        self,
        backend: Tenant,
        record: dict[str, Any],
        existing: Mapping[str, Any] | None,
        item: Mapping[str, Any],
        path: str,
        errors: Errors,
    ) -> list[dict[str, Any]] | None:
        """The record's `lines` after an upsert (`write_child_lines`, through `write_line`)."""
        return write_child_lines(
            record,
            existing,
            item,
            path,
            errors,
            lambda base, line, sequence, where: self.write_line(
                backend, record, base, line, sequence, where, errors
            ),
        )

    def after_commit(
        self, backend: Tenant, record: dict[str, Any], created: bool, now: str
    ) -> None:
        """Side effects on other records once the batch is stored."""

    def on_delete(self, backend: Tenant, record: dict[str, Any]) -> None:
        """Side effects of a delete on other records."""

    # ---- reading

    def derived(self, backend: Tenant, record: dict[str, Any]) -> dict[str, Any]:
        """Fields computed when read (names looked up from ids)."""
        return {}

    def render(
        self,
        backend: Tenant,
        record: dict[str, Any],
        full: bool,
        query: ListQuery | None = None,
    ) -> dict[str, Any]:
        """The JSON object a client sees: GET by id (``full``) or a list row."""
        out = {k: v for k, v in record.items() if not k.startswith("__")}
        out.update(self.derived(backend, record))
        if self.use is not None:
            out.setdefault("use", self.use)
            out["key"] = record["id"]
        if self.custom_field_usage is not None:
            out["customfields"] = backend.custom_fields.render_values(
                self.custom_field_usage, record.get("__cf", {})
            )
        if full:
            return out
        return self.list_row(backend, out, query)

    def list_row(
        self, backend: Tenant, full_row: dict[str, Any], query: ListQuery | None
    ) -> dict[str, Any]:
        if self.list_fields is not None:
            row = {k: full_row[k] for k in self.list_fields if k in full_row}
        else:
            row = {k: v for k, v in full_row.items() if k not in self.heavy_fields}
        if self.custom_field_usage is not None:
            # Values appear in list rows only for the ids asked for. [C] SPEC25 include_custom_fields
            wanted = set(query.get_int_list("include_custom_fields") or []) if query else set()
            if wanted:
                row["customfields"] = [cf for cf in full_row["customfields"] if cf["id"] in wanted]
            else:
                row.pop("customfields", None)
        return row

    def is_active(self, record: dict[str, Any]) -> bool:
        if self.active_flag == "inactive":
            return not record.get("inactive", False)
        if self.active_flag == "active":
            return bool(record.get("active", True))
        return True

    def matches(self, backend: Tenant, record: dict[str, Any], query: ListQuery) -> bool:
        if self.active_flag is not None:
            active = self.is_active(record)
            if (active and not query.include_active) or (not active and not query.include_inactive):
                return False
        for param, field_name in self.filters.items():
            wanted = query.get_int(param)
            if wanted is not None and wanted != UNSET and record.get(field_name) != wanted:
                return False
        if query.search:
            haystack = " ".join(
                str(self.value_of(backend, record, f) or "") for f in self.search_fields
            ).lower()
            if query.search not in haystack:
                return False
        return self.extra_match(backend, record, query)

    def extra_match(self, backend: Tenant, record: dict[str, Any], query: ListQuery) -> bool:
        return True

    def value_of(self, backend: Tenant, record: dict[str, Any], name: str) -> Any:
        """A field for searching and ordering: stored, else derived (e.g. client_name)."""
        if name in record:
            return record[name]
        return self.derived(backend, record).get(name)
