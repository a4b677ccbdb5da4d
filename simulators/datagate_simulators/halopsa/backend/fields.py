"""Custom fields: definitions (``/api/FieldInfo``) and their values on clients and sites.

docs/halopsa-api.md §4.9: definitions carry ``usage`` (1 ticket, 2 client, 3 site …), ``type``
(0 text, 1 memo, 2 single select, 3 multi select, 4 date, 5 time, 6 checkbox, 10 rich text)
and a stored name with the ``CF`` prefix. Entities show values as full objects with ``id``,
``name``, ``label``, ``type``, ``value``, ``display``, ``usage``; clients write them by id or
by name, and a write replaces the whole set.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from datagate_simulators.halopsa.backend.base import Errors, ListQuery, Resource, Tenant
from datagate_simulators.halopsa.conventions import (
    UNSET,
    normalize_datetime,
    parse_bool,
    parse_int,
)

TEXT, MEMO, SINGLE, MULTI, DATE, TIME, CHECKBOX, RICH = 0, 1, 2, 3, 4, 5, 6, 10
#: usage ids. [C] REAL-RI (1 ticket, 2 client), [R] RDX typeid (3 site, 5 asset)
USAGE_TICKET, USAGE_CLIENT, USAGE_SITE, USAGE_ASSET = 1, 2, 3, 5


class FieldInfo(Resource):
    """``/api/FieldInfo``: custom field definitions. Lists are a plain JSON array. [I] §3.2

    Creating ``{"usage": 2, "name": "Datagate", "type": 6}`` adds a client custom field stored
    as ``CFDatagate`` (the prefix is added when missing; [I] §4.9). The name sent must be
    alphanumeric. ``new_values: "A,B,C"`` appends selection options to ``values``.
    """

    name = "FieldInfo"
    list_key = None
    scope_area = None  # admin
    fields: ClassVar[dict[str, str]] = {
        "name": "str",
        "label": "str",
        "summary": "str",
        "hint": "str",
        "type": "int",
        "inputtype": "int",
        "usage": "int",
        "new_values": "str",
        "searchable": "bool",
        "user_searchable": "bool",
        "calendar_searchable": "bool",
        "copytochild": "bool",
        "copytochildonupdate": "bool",
        "characterlimit": "int",
        "mandatory": "bool",
        "defaultvalue": "str",
        "seq": "int",
    }
    required = ("name",)
    readonly = frozenset({"values", "guid", "custom"})
    search_fields = ("name", "label")

    def defaults(self, backend: Tenant, now: str) -> dict[str, Any]:
        return {
            "name": "",
            "label": "",
            "summary": "",
            "type": TEXT,
            "inputtype": 0,
            "usage": USAGE_TICKET,  # CFB's default. [C]
            "custom": 1,
            "searchable": False,
            "user_searchable": False,
            "calendar_searchable": False,
            "copytochild": False,
            "copytochildonupdate": False,
            "characterlimit": 0,
            "mandatory": False,
            "values": [],
        }

    def finish(self, backend, record, existing, item, path, errors, now) -> None:  # type: ignore[override]
        # Deterministic, so that the same seed gives the same tenant.
        record.setdefault(
            "guid", str(uuid.uuid5(uuid.NAMESPACE_URL, f"halopsa-sim/fieldinfo/{record['id']}"))
        )
        name = record.get("name") or ""
        bare = name[2:] if name.startswith("CF") else name
        if "name" in item:
            if not bare or not bare.isalnum() or not bare.isascii():
                errors.add(f"{path}.name", "The name may contain only letters and digits.")
            record["name"] = "CF" + bare
            for other in backend.table("FieldInfo").values():
                if other["id"] != record["id"] and other["name"].lower() == record["name"].lower():
                    errors.add(
                        f"{path}.name", f"A custom field named {record['name']} already exists."
                    )
        if not record.get("label"):
            record["label"] = bare
        new_values = record.pop("new_values", "")
        if new_values:
            values = list(record.get("values", []))
            next_id = max((v["id"] for v in values), default=0) + 1
            for text in (v.strip() for v in new_values.split(",")):
                if text and text not in {v["name"] for v in values}:
                    values.append({"id": next_id, "name": text})
                    next_id += 1
            record["values"] = values

    def extra_match(self, backend: Tenant, record: dict[str, Any], query: ListQuery) -> bool:
        for param, field_name in (
            ("typeid", "usage"),
            ("usage", "usage"),
            ("fieldtype", "type"),
            ("inputtype", "inputtype"),
        ):
            wanted = query.get_int(param)
            if wanted is not None and record.get(field_name) != wanted:
                return False
        return True


class CustomFieldValues:
    """Parses and renders entity custom-field values against the FieldInfo definitions."""

    def __init__(self, backend: Tenant) -> None:
        self.backend = backend
        self._cache_version = -1
        self._by_usage: dict[int, list[dict[str, Any]]] = {}

    def definitions(self, usage: int) -> list[dict[str, Any]]:
        version = self.backend.table_version("FieldInfo")
        if version != self._cache_version:
            by_usage: dict[int, list[dict[str, Any]]] = {}
            for definition in self.backend.table("FieldInfo").values():
                by_usage.setdefault(definition.get("usage", USAGE_TICKET), []).append(definition)
            self._by_usage, self._cache_version = by_usage, version
        return self._by_usage.get(usage, [])

    def find(self, usage: int, ref: Mapping[str, Any]) -> dict[str, Any] | None:
        """The definition a value refers to, by ``id`` or by ``name`` (with or without ``CF``)."""
        definitions = self.definitions(usage)
        if ref.get("id") not in (None, 0, UNSET):
            try:
                wanted_id = parse_int(ref["id"])
            except ValueError:
                return None
            return next((d for d in definitions if d["id"] == wanted_id), None)
        name = str(ref.get("name") or "").lower()
        if not name:
            return None
        return next((d for d in definitions if d["name"].lower() in (name, "cf" + name)), None)

    def parse_values(self, usage: int, values: Any, path: str, errors: Errors) -> dict[int, Any]:
        if not isinstance(values, list):
            errors.add(path, "The value is not a valid array.")
            return {}
        parsed: dict[int, Any] = {}
        for index, ref in enumerate(values):
            where = f"{path}[{index}]"
            if not isinstance(ref, dict):
                errors.add(where, "The value is not a valid object.")
                continue
            definition = self.find(usage, ref)
            if definition is None:
                errors.add(
                    where,
                    f"Custom field {ref.get('id') or ref.get('name')!r} does not exist for this entity.",
                )
                continue
            try:
                value = self._coerce(definition, ref.get("value"))
            except (TypeError, ValueError) as exc:
                errors.add(f"{where}.value", str(exc))
                continue
            if value is not None:
                parsed[definition["id"]] = value
        return parsed

    def _coerce(self, definition: dict[str, Any], value: Any) -> Any:
        kind = definition.get("type", TEXT)
        if value is None:
            return None  # null clears the field. [C] HAPI #14
        if kind == CHECKBOX:
            if isinstance(value, str) and value.strip().lower() in {"yes", "no"}:
                return value.strip().lower() == "yes"
            return parse_bool(value)
        if kind == SINGLE:
            if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
                option = next(
                    (
                        v
                        for v in definition.get("values", [])
                        if v["name"].lower() == value.strip().lower()
                    ),
                    None,
                )
                if option is None:
                    raise ValueError(f"{value!r} is not an option of {definition['name']}.")
                return option["id"]
            return parse_int(value)
        if kind == MULTI:
            items = value if isinstance(value, list) else str(value).split(",")
            return [parse_int(v) for v in items if str(v).strip()]
        if kind in (DATE, TIME):
            return normalize_datetime(value)
        if isinstance(value, dict | list):
            raise ValueError(f"{definition['name']} takes text.")
        return str(value)

    def render_values(self, usage: int, stored: Mapping[int, Any]) -> list[dict[str, Any]]:
        return [self.render_one(d, stored.get(d["id"])) for d in self.definitions(usage)]

    @staticmethod
    def render_one(definition: dict[str, Any], value: Any) -> dict[str, Any]:
        kind = definition.get("type", TEXT)
        options = {v["id"]: v["name"] for v in definition.get("values", [])}
        if kind == CHECKBOX:
            value = bool(value)
            display = "Yes" if value else "No"
        elif kind == SINGLE:
            value = UNSET if value is None else value
            display = options.get(value, "")
        elif kind == MULTI:
            ids = value or []
            value = ",".join(str(i) for i in ids)
            display = ", ".join(options.get(i, "") for i in ids)
        elif kind in (DATE, TIME):
            display = "" if value is None else value
        else:
            value = "" if value is None else value
            display = value
        return {
            "id": definition["id"],
            "name": definition["name"],
            "label": definition.get("label", ""),
            "summary": definition.get("summary", ""),
            "type": kind,
            "value": value,
            "display": display,
            "characterlimit": definition.get("characterlimit", 0),
            "characterlimittype": 0,
            "inputtype": definition.get("inputtype", 0),
            "copytochild": definition.get("copytochild", False),
            "searchable": definition.get("searchable", False),
            "ordervalues": False,
            "copytochildonupdate": definition.get("copytochildonupdate", False),
            "usage": definition.get("usage"),
            "guid": definition.get("guid"),
        }
