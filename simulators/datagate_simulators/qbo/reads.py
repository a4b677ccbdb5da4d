"""Reading many records at once: the query endpoint and Change Data Capture.

Both run under the company's lock (see :meth:`Company.query` and :meth:`Company.cdc`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import errors
from .entities import ENTITIES
from .query import evaluate, page, parse_query
from .render import public

if TYPE_CHECKING:
    from .company import Company

__all__ = ["SINGLETONS", "changes_since", "run_query"]

SINGLETONS = ("Preferences", "CompanyInfo")


def run_query(company: Company, statement: str) -> dict[str, Any]:
    """The ``QueryResponse`` for ``statement`` (QBO_API.md §4).

    ``{"<Entity>": [...], "startPosition": n, "maxResults": rows}``; ``{}`` when no row is
    left (no entity key at all); ``{"totalCount": n}`` for ``count(*)``. Name lists answer
    active records only unless the WHERE clause constrains ``Active``.
    """
    query = parse_query(statement, max_results_limit=company.settings.query_max_results)
    if query.entity in SINGLETONS:
        spec = None
        source = [company.singleton(query.entity)]
    else:
        spec = ENTITIES.get(query.entity)  # entity names are case-sensitive (§4)
        if spec is None:
            raise errors.query_validation_error(f"Invalid entity name: {query.entity}")
        source = company.all_live(spec.name)
    if spec is not None and company.settings.strict_query_properties:
        for prop in [c.prop for c in query.where] + [p for p, _ in query.order_by]:
            if not spec.is_queryable(prop):
                raise errors.query_validation_error(
                    f"property '{prop}' is not queryable for entity {query.entity}"
                )
    if spec is not None and spec.name_list and not query.constrains("Active"):
        source = [r for r in source if r.get("Active", True)]
    rows = evaluate(query, source, tz=company.tz)
    if query.count:
        return {"totalCount": len(rows)}
    shown = [public(r, company.tz) for r in page(rows, query)]
    if not shown:
        return {}
    if query.fields is not None:
        shown = [_project(r, query.fields) for r in shown]
    return {query.entity: shown, "startPosition": query.start_position, "maxResults": len(shown)}


def _project(record: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    wanted = {f.lower() for f in fields} | {"id", "synctoken", "domain"}
    out = {k: v for k, v in record.items() if k.lower() in wanted}
    out["sparse"] = True
    return out


def changes_since(
    company: Company, entities: Iterable[str], changed_since: datetime
) -> list[dict[str, Any]]:
    """The ``QueryResponse`` list of ``CDCResponse[0]`` (QBO_API.md §6.1).

    Oldest changes first, at most ``cdc_max_objects`` across all entities; deleted objects
    come as ``{"status": "Deleted"}`` tombstones; ``[{}]`` when nothing changed.
    """
    settings = company.settings
    if changed_since < company.now() - timedelta(days=settings.cdc_lookback_days):
        raise errors.business_validation(
            f"changedSince must be within the last {settings.cdc_lookback_days} days.",
            "changedSince",
        )
    names = list(dict.fromkeys(entities))
    changes: list[tuple[datetime, int, str, dict[str, Any]]] = []
    for position, name in enumerate(names):
        spec = ENTITIES.get(name)
        if spec is None or not spec.cdc:
            raise errors.invalid_enumeration("entities", name)
        for record in (*company.all_live(name), *company.tombstones(name)):
            changed = record["MetaData"]["LastUpdatedTime"]
            if changed >= changed_since:
                changes.append((changed, position, name, record))
    changes.sort(key=lambda c: (c[0], c[1], int(c[3]["Id"])))
    grouped: dict[str, list[dict[str, Any]]] = {}
    for _, _, name, record in changes[: settings.cdc_max_objects]:
        grouped.setdefault(name, []).append(public(record, company.tz))
    response = [
        {name: grouped[name], "startPosition": 1, "maxResults": len(grouped[name])}
        for name in names
        if name in grouped
    ]
    return response or [{}]
