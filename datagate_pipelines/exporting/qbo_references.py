"""What QBO invoices refer to — customers, items (products and services), payment terms —
found or created in the portal's QBO company and linked in `qbo_entities`.

Each is matched, in order: by the QBO id stored in `qbo_entities`; else by its exact name
in QBO (Customer.DisplayName, Item.Name; Term by DueDays), so that records someone made by
hand, or a run killed after a create and before the link, are reused rather than doubled;
else created (in batches of the portal's batch size, with request ids derived from the
content: a re-run sends the same request and QBO replays its first answer).

One bad record never stops the others: it is reported (`ReferenceOutcome.failed`) and
the invoices that need it fail with that reason, while the rest are exported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, and_, select

from datagate_pipelines import DatagateError
from datagate_pipelines.config import PortalSettings
from datagate_pipelines.exporting.accounts import Chart, income_account, item_label
from datagate_pipelines.exporting.batches import send_batches
from datagate_pipelines.exporting.database import Database, transaction
from datagate_pipelines.exporting.documents import load_items
from datagate_pipelines.exporting.ledger import QBO
from datagate_pipelines.qbo.batch import BatchItem
from datagate_pipelines.qbo.client import QBOClient
from datagate_pipelines.qbo.errors import QBODuplicateNameError, QBOError, QBOFaultError
from datagate_pipelines.qbo.request_ids import request_id_for
from datagate_pipelines.warehouse.bulk import upsert
from datagate_pipelines.warehouse.models import (
    customers,
    exports,
    invoice_lines,
    invoices,
    products,
    qbo_entities,
)

logger = logging.getLogger(__name__)

CUSTOMER, ITEM, TERM = "Customer", "Item", "Term"
#: Local keys of the two items that stand for lines without a HaloPSA item.
USAGE_ITEM, OTHER_ITEM = "usage", "other"
GENERIC_ITEM_NAMES = {USAGE_ITEM: "Usage charges", OTHER_ITEM: "Other charges"}
NAME_MAX = 100
# Below this many unlinked names, ask QBO name by name; above, list the whole name list once.
_PER_NAME_LOOKUPS = 10


class IncomeAccountError(DatagateError):
    """An item's income account does not exist in the portal's QBO company, or its nominal
    code maps to no account (exporting/accounts.py)."""


def item_key(item_id: int | None, kind: str = "recurring") -> str:
    """The `qbo_entities` key of the QBO item a line is sold as."""
    if item_id is not None:
        return f"item:{item_id}"
    return USAGE_ITEM if kind == "usage" else OTHER_ITEM


def qbo_name(name: str) -> str:
    """A name QBO accepts: no colon (its parent:child separator), tab or newline; at most
    100 characters."""
    cleaned = re.sub(r"[\t\r\n]+", " ", name.replace(":", "-")).strip()
    return cleaned[:NAME_MAX] or "-"


def content_request_id(portal_id: str, entity: str, bodies: Iterable[Any]) -> str:
    """A request id for creating exactly these records: a re-run that sends the same bodies
    replays QBO's first answer; changed bodies (a fixed name) make a new request."""
    digest = hashlib.sha256(json.dumps(list(bodies), sort_keys=True, default=str).encode())
    return request_id_for(portal_id, entity, f"create:{digest.hexdigest()[:32]}")


@dataclass
class ReferenceOutcome:
    """What linking one kind of record did, by our local key."""

    entity: str
    linked: int = 0  # linked before this run
    matched: list[str] = field(default_factory=list)  # found in QBO by name, now linked
    created: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "already_linked": self.linked,
            "matched": len(self.matched),
            "created": len(self.created),
            "failed": len(self.failed),
        }


# --- links ---------------------------------------------------------------------------------


def load_links(connection: Connection, portal_id: str, entity: str) -> dict[str, str]:
    """Our local key → QBO id, for one entity of one portal."""
    return dict(
        connection.execute(
            select(qbo_entities.c.local_key, qbo_entities.c.qbo_id).where(
                qbo_entities.c.portal_id == portal_id, qbo_entities.c.entity == entity
            )
        ).all()
    )


def save_links(
    connection: Connection, portal_id: str, entity: str, links: Mapping[str, tuple[str, str]]
) -> None:
    """Store local key → (QBO id, name in QBO)."""
    now = datetime.now(UTC)
    upsert(
        connection,
        qbo_entities,
        [
            {
                "portal_id": portal_id,
                "entity": entity,
                "local_key": key,
                "qbo_id": str(qbo_id),
                "name": name[:300] if name else None,
                "updated_at": now,
            }
            for key, (qbo_id, name) in links.items()
        ],
        key=("portal_id", "entity", "local_key"),
    )


# --- what a period's export needs --------------------------------------------------------


@dataclass(frozen=True)
class CustomerInfo:
    halo_id: int
    name: str
    zip: str | None
    address: str | None


@dataclass
class PeriodNeeds:
    """The customers and items the period's not-yet-exported final invoices refer to."""

    customers: dict[int, CustomerInfo] = field(default_factory=dict)
    item_ids: set[int] = field(default_factory=set)
    generic_items: set[str] = field(default_factory=set)


def period_needs(connection: Connection, portal_id: str, period: date) -> PeriodNeeds:
    """What the final invoices of the period that QBO does not have yet refer to."""
    pending = (
        select(invoices.c.id, invoices.c.customer_id)
        .select_from(
            invoices.outerjoin(
                exports, and_(exports.c.invoice_id == invoices.c.id, exports.c.target == QBO)
            )
        )
        .where(
            invoices.c.portal_id == portal_id,
            invoices.c.period == period,
            invoices.c.status == "final",
            (exports.c.status.is_(None)) | (exports.c.status != "exported"),
        )
    ).subquery()
    needs = PeriodNeeds()
    for r in connection.execute(
        select(customers.c.halo_client_id, customers.c.name, customers.c.zip, customers.c.address)
        .where(
            customers.c.portal_id == portal_id,
            customers.c.halo_client_id.in_(select(pending.c.customer_id)),
        )
        .order_by(customers.c.halo_client_id)
    ):
        needs.customers[r.halo_client_id] = CustomerInfo(r.halo_client_id, r.name, r.zip, r.address)
    for item_id, kind in connection.execute(
        select(products.c.item_id, invoice_lines.c.kind)
        .select_from(
            invoice_lines.outerjoin(
                products,
                and_(
                    products.c.portal_id == portal_id,
                    products.c.product_id == invoice_lines.c.product_id,
                ),
            )
        )
        .where(invoice_lines.c.invoice_id.in_(select(pending.c.id)))
        .distinct()
    ):
        if item_id is None:
            needs.generic_items.add(item_key(None, kind))
        else:
            needs.item_ids.add(item_id)
    return needs


# --- customers -----------------------------------------------------------------------------


def _customer_body(customer: CustomerInfo, display_name: str) -> dict[str, Any]:
    body: dict[str, Any] = {"DisplayName": display_name, "CompanyName": display_name[:50]}
    address: dict[str, str] = {}
    if customer.address:
        address["Line1"] = customer.address.splitlines()[0][:500]
    if customer.zip:
        address["PostalCode"] = customer.zip
    if address:
        body["BillAddr"] = address
    return body


@dataclass(frozen=True)
class DisplayNames:
    """How our records (customers, suppliers) become records of one QBO name list, named by
    DisplayName — one namespace with the other two lists (Customer, Vendor, Employee: 6240)."""

    entity: str  # Customer, Vendor
    what: str  # customer, supplier: in messages
    source: str  # HaloPSA client, HaloPSA supplier: in messages
    body: Callable[[Any, str], dict[str, Any]]  # (our record, DisplayName) → the create body
    distinct: Callable[[str, int], str]  # (name, our id) → the deterministic other name

    def label(self, record: Any, our_id: int) -> str:
        return f"{self.what} {record.name!r} ({self.source} {our_id})"


def link_display_names(
    db: Database,
    client: QBOClient,
    portal: PortalSettings,
    names: DisplayNames,
    wanted: Mapping[int, Any],
) -> ReferenceOutcome:
    """Find or create a QBO record for every record in `wanted` (by our id; each has a
    `name`): the stored link, else the record with its DisplayName (escaped, any case,
    inactive ones too), else created in batches. A name another of ours, or someone else,
    has takes the deterministic distinct name."""
    outcome = ReferenceOutcome(names.entity)
    with transaction(db) as connection:
        links = load_links(connection, portal.id, names.entity)
    missing = {key: r for key, r in wanted.items() if str(key) not in links}
    outcome.linked = len(wanted) - len(missing)
    if not missing:
        return outcome
    taken = set(links.values())  # QBO records linked to another of our records
    existing = existing_by_name(
        client, names.entity, "DisplayName", [qbo_name(r.name) for r in missing.values()]
    )
    found: dict[str, tuple[str, str]] = {}
    to_create: dict[int, str] = {}
    for key, record in missing.items():
        name = qbo_name(record.name)
        match = existing.get(name.casefold())
        if match is not None and str(match["Id"]) not in taken:
            match = usable(client, names.entity, match)
            found[str(key)] = (str(match["Id"]), match.get("DisplayName", name))
            taken.add(str(match["Id"]))
            outcome.matched.append(str(key))
        elif match is not None or name.casefold() in {n.casefold() for n in to_create.values()}:
            # Another of our records has this name already: keep them apart in QBO.
            to_create[key] = names.distinct(name, key)
        else:
            to_create[key] = name
    with transaction(db) as connection:
        save_links(connection, portal.id, names.entity, found)
    if not to_create:
        return outcome
    bodies = {str(key): names.body(missing[key], name) for key, name in to_create.items()}
    results = batch_create(client, portal, names.entity, bodies)
    created: dict[str, tuple[str, str]] = {}
    for key, result in results.items():
        if isinstance(result, dict):
            created[key] = (str(result["Id"]), result.get("DisplayName", to_create[int(key)]))
            taken.add(str(result["Id"]))
            outcome.created.append(key)
    # Then the refusals, knowing every record this run created.
    for key, result in results.items():
        if isinstance(result, dict):
            continue
        record = missing[int(key)]
        label = names.label(record, int(key))
        if isinstance(result, QBODuplicateNameError):
            # 6240: the name is taken by a record we did not see (a race, or a run killed
            # after the create) or in another list. Match it, or make ours distinct.
            linked = resolve_duplicate_name(
                client,
                portal,
                names.entity,
                int(key),
                label,
                to_create[int(key)],
                names.distinct(to_create[int(key)], int(key)),
                lambda display, record=record: names.body(record, display),
                taken,
            )
            if isinstance(linked, str):
                outcome.failed[key] = linked
            else:
                created[key] = linked
                taken.add(linked[0])
                outcome.matched.append(key)
        else:
            outcome.failed[key] = f"portal {portal.id}: QBO refused {label}: {result.message}"
    with transaction(db) as connection:
        save_links(connection, portal.id, names.entity, created)
    return outcome


def _distinct_name(name: str, halo_id: int) -> str:
    suffix = f" ({halo_id})"
    return name[: NAME_MAX - len(suffix)] + suffix


CUSTOMERS = DisplayNames(CUSTOMER, "customer", "HaloPSA client", _customer_body, _distinct_name)


def link_customers(
    db: Database, client: QBOClient, portal: PortalSettings, wanted: Mapping[int, CustomerInfo]
) -> ReferenceOutcome:
    """Find or create a QBO customer for every customer in `wanted` (by HaloPSA client id)."""
    return link_display_names(db, client, portal, CUSTOMERS, wanted)


def resolve_duplicate_name(
    client: QBOClient,
    portal: PortalSettings,
    entity: str,
    our_id: Any,
    label: str,
    name: str,
    distinct: str,
    body_for: Callable[[str], dict[str, Any]],
    taken: set[str],
) -> tuple[str, str] | str:
    """After a 6240 on `name` (DisplayName is one namespace for customers, vendors and
    employees): the `entity` record to link as (QBO id, name) — ours under `name` (a race,
    or a run killed after the create), else `distinct` found or created — or the reason
    there is none."""
    match = client.find_by_display_name(entity, name, include_inactive=True)
    if match is not None and str(match["Id"]) not in taken:
        match = usable(client, entity, match)
        return str(match["Id"]), match.get("DisplayName", name)
    body = body_for(distinct)
    try:
        record = client.create(
            entity,
            body,
            request_id=content_request_id(portal.id, entity, [body]),
            our_id=our_id,
        )
    except QBODuplicateNameError:
        match = client.find_by_display_name(entity, distinct, include_inactive=True)
        if match is not None and str(match["Id"]) not in taken:
            return str(match["Id"]), distinct
        return (
            f"portal {portal.id}: {label}: the names {name!r} and {distinct!r} are used in "
            "QBO by a customer, a vendor or an employee"
        )
    except QBOFaultError as error:
        return f"portal {portal.id}: QBO refused {label}: {error.message}"
    return str(record["Id"]), record.get("DisplayName", distinct)


def existing_by_name(
    client: QBOClient, entity: str, name_field: str, names: list[str]
) -> dict[str, dict[str, Any]]:
    """QBO records of a name list by their name, folded (QBO compares names without case);
    inactive ones included (their names are taken too). Active records win a tie."""
    if len(names) <= _PER_NAME_LOOKUPS:
        rows = [
            row
            for name in names
            for row in client.select(entity, include_inactive=True, **{name_field: name})
        ]
    else:
        rows = client.select(entity, include_inactive=True)
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = str(row.get(name_field, "")).casefold()
        current = out.get(key)
        if current is None or (row.get("Active", True) and not current.get("Active", True)):
            out[key] = row
    return out


def usable(client: QBOClient, entity: str, record: dict[str, Any]) -> dict[str, Any]:
    """A matched record made active again if someone deactivated it: QBO refuses
    transactions that name an inactive customer or item."""
    if record.get("Active", True):
        return record
    logger.info("qbo portal %s: reactivating %s %s", client.portal, entity, record["Id"])
    return client.update(
        entity, {"Id": record["Id"], "SyncToken": record["SyncToken"], "Active": True}
    )


def batch_create(
    client: QBOClient, portal: PortalSettings, entity: str, bodies: Mapping[str, dict[str, Any]]
) -> dict[str, dict[str, Any] | QBOError]:
    """Create records in batches (a few in flight at once); each result (record or error)
    by our key. A batch refused as a whole fails its records; QBO unreachable raises."""
    keys = list(bodies)
    chunks = [keys[i : i + client.batch_size] for i in range(0, len(keys), client.batch_size)]
    items = [[BatchItem.create(key, entity, bodies[key]) for key in chunk] for chunk in chunks]
    request_ids = [
        content_request_id(portal.id, entity, [(key, bodies[key]) for key in chunk])
        for chunk in chunks
    ]
    results: dict[str, dict[str, Any] | QBOError] = {}
    for index, answer in send_batches(client, items, request_ids):
        if isinstance(answer, QBOFaultError):
            results.update(dict.fromkeys(chunks[index], answer))
        elif isinstance(answer, BaseException):
            raise answer
        else:
            results.update(answer)
    return results


# --- items ---------------------------------------------------------------------------------


def link_items(
    db: Database,
    client: QBOClient,
    portal: PortalSettings,
    item_ids: Iterable[int],
    generic: Iterable[str] = (),
) -> ReferenceOutcome:
    """Find or create one QBO Service item per HaloPSA item (and the generic items for
    usage and item-less lines), each posting to its income account (exporting/accounts.py:
    the nominal code first; an unmapped code fails the item with its reason)."""
    outcome = ReferenceOutcome(ITEM)
    wanted_keys = {item_key(i): i for i in item_ids}
    wanted_keys.update({key: None for key in generic})
    with transaction(db) as connection:
        links = load_links(connection, portal.id, ITEM)
        missing_keys = [k for k in wanted_keys if k not in links]
        infos = load_items(
            connection, portal.id, [i for k, i in wanted_keys.items() if k in missing_keys and i]
        )
    outcome.linked = len(wanted_keys) - len(missing_keys)
    if not missing_keys:
        return outcome
    names: dict[str, str] = {}
    for key in missing_keys:
        item_id = wanted_keys[key]
        info = infos.get(item_id) if item_id is not None else None
        if item_id is not None and info is None:
            outcome.failed[key] = (
                f"portal {portal.id}: HaloPSA item {item_id} is not in the warehouse "
                "(run a sync, or import its product template)"
            )
            continue
        names[key] = qbo_name(info.name if info else GENERIC_ITEM_NAMES[key])
    # Two of our items with one name: the later ones get their HaloPSA id in the name.
    seen: dict[str, str] = {}
    for key in sorted(names):
        folded = names[key].casefold()
        if folded in seen and wanted_keys[key] is not None:
            names[key] = _distinct_name(names[key], wanted_keys[key])
        seen.setdefault(names[key].casefold(), key)
    taken = set(links.values())
    existing = existing_by_name(client, ITEM, "Name", list(names.values()))
    found: dict[str, tuple[str, str]] = {}
    to_create: dict[str, dict[str, Any]] = {}
    chart: Chart | None = None
    for key, name in names.items():
        match = existing.get(name.casefold())
        if match is not None and str(match["Id"]) not in taken:
            match = usable(client, ITEM, match)
            found[key] = (str(match["Id"]), match.get("Name", name))
            taken.add(str(match["Id"]))
            outcome.matched.append(key)
            continue
        if match is not None:
            name = names[key] = _distinct_name(name, wanted_keys[key] or 0)
        if chart is None:
            chart = Chart.read(client)
        item_id = wanted_keys[key]
        info = infos.get(item_id) if item_id is not None else None
        choice = income_account(portal, chart, info, used_by=item_label(info, f"item {name!r}"))
        if choice.problem is not None:
            outcome.failed[key] = str(IncomeAccountError(choice.problem))
            continue
        to_create[key] = {"Name": name, "Type": "Service", "IncomeAccountRef": choice.ref}
    with transaction(db) as connection:
        save_links(connection, portal.id, ITEM, found)
    if not to_create:
        return outcome
    results = batch_create(client, portal, ITEM, to_create)
    created: dict[str, tuple[str, str]] = {}
    for key, result in results.items():
        if isinstance(result, dict):
            created[key] = (str(result["Id"]), result.get("Name", to_create[key]["Name"]))
            taken.add(str(result["Id"]))
            outcome.created.append(key)
    for key, result in results.items():
        if isinstance(result, dict):
            continue
        if isinstance(result, QBODuplicateNameError):
            rows = client.select(ITEM, include_inactive=True, Name=to_create[key]["Name"])
            mine = [r for r in rows if str(r["Id"]) not in taken]
            if mine:
                created[key] = (str(mine[0]["Id"]), mine[0].get("Name", ""))
                taken.add(str(mine[0]["Id"]))
                outcome.matched.append(key)
                continue
        outcome.failed[key] = (
            f"portal {portal.id}: QBO refused item {to_create[key]['Name']!r}: {result.message}"
        )
    with transaction(db) as connection:
        save_links(connection, portal.id, ITEM, created)
    return outcome


# --- terms ---------------------------------------------------------------------------------


def link_terms(db: Database, client: QBOClient, portal: PortalSettings) -> ReferenceOutcome:
    """The QBO term for the portal's payment terms: "Net N" (N = payment_terms_days),
    matched by its DueDays, created if missing."""
    outcome = ReferenceOutcome(TERM)
    days = portal.invoicing.payment_terms_days
    key = str(days)
    with transaction(db) as connection:
        if key in load_links(connection, portal.id, TERM):
            outcome.linked = 1
            return outcome
    terms = client.terms(include_inactive=True)
    standard = [
        t
        for t in terms
        if t.get("DueDays") == days and "DayOfMonthDue" not in t and t.get("Active", True)
    ]
    standard.sort(key=lambda t: int(t["Id"]))
    if standard:
        term = standard[0]
        outcome.matched.append(key)
    else:
        names = {str(t.get("Name", "")).casefold() for t in terms}
        name = f"Net {days}" if f"net {days}" not in names else f"Net {days} days"
        body = {"Name": name, "DueDays": days}
        try:
            term = client.create(
                TERM, body, request_id=content_request_id(portal.id, TERM, [body]), our_id=key
            )
        except QBOFaultError as error:
            outcome.failed[key] = f"portal {portal.id}: QBO refused term {name!r}: {error.message}"
            return outcome
        outcome.created.append(key)
    with transaction(db) as connection:
        save_links(connection, portal.id, TERM, {key: (str(term["Id"]), term.get("Name", ""))})
    return outcome


def link_period_references(
    db: Database, client: QBOClient, portal: PortalSettings, period: date
) -> dict[str, ReferenceOutcome]:
    """Customers, items and the term the period's unexported final invoices need."""
    with transaction(db) as connection:
        needs = period_needs(connection, portal.id, period)
    return {
        CUSTOMER: link_customers(db, client, portal, needs.customers),
        ITEM: link_items(db, client, portal, needs.item_ids, needs.generic_items),
        TERM: link_terms(db, client, portal),
    }
