"""Deterministic HaloPSA tenants: a realistic MSP/telecom book of customers, and Bayside Dental.

``generate_tenant(backend, customers=N, seed=S)`` always builds the same tenant for the same
``(customers, seed, as_of, lines_per_customer)`` on an empty backend: it draws from its own
``random.Random(seed)`` and stamps every write with a fixed time. Everything goes through the
backend's ordinary rules (``backend.load``), so generated records look exactly like records a
client would create.

Dates are relative to ``as_of`` (default: the first day of the current UTC month), so a demo
always has lines that started mid-month last month, lines that ended, and lines that start
next month.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from datagate_simulators.halopsa.backend import HaloPSABackend
from datagate_simulators.halopsa.backend.purchasing import (
    PO_LINE_QUANTITY,
    PO_LINE_UNIT_COST,
    PO_STATUS,
)
from datagate_simulators.halopsa.conventions import (
    NO_DATE,
    UNSET,
    halo_date,
    halo_timestamp,
)

__all__ = [
    "DATAGATE_FIELD",
    "Catalog",
    "GeneratedPurchasing",
    "GeneratedTenant",
    "bayside_dental",
    "ensure_catalog",
    "generate_purchasing",
    "generate_tenant",
]

#: The client custom field that opts a customer into Datagate (a checkbox). DESIGN.md
DATAGATE_FIELD = "CFDatagate"

TAXES = (  # name, code, rate %
    ("CA Sales Tax", "CA", 8.625),
    ("NY Sales Tax", "NY", 8.875),
    ("TX Sales Tax", "TX", 8.25),
    ("WA Sales Tax", "WA", 10.1),
    ("Telecom Excise", "TEL", 5.0),
    ("Exempt", "EX", 0.0),
)
CONTRACT_TYPES = ("Telecom", "Managed Services", "Project")
ASSET_GROUPS = (  # name, sales tax, nominal code, purchase nominal code, recurring by default
    ("Voice", "Telecom Excise", "4010", "5010", True),
    ("Connectivity", "Telecom Excise", "4020", "5020", True),
    ("Managed IT", "CA Sales Tax", "4030", "5030", True),
    ("Hardware", "CA Sales Tax", "4100", "5100", False),
)
ITEMS = (  # name, group (None = no group), price, cost, recurring
    ("Hosted PBX Seat", "Voice", 24.95, 9.50, True),
    ("SIP Trunk Channel", "Voice", 14.99, 4.00, True),
    ("DID Number", "Voice", 1.50, 0.25, True),
    ("Toll-Free Number", "Voice", 4.95, 1.10, True),
    ("E911 Service", "Voice", 1.99, 0.50, True),
    ("Fiber 100 Mbps", "Connectivity", 189.00, 95.00, True),
    ("Fiber 1 Gbps", "Connectivity", 549.00, 260.00, True),
    ("Broadband 50 Mbps", "Connectivity", 79.00, 42.00, True),
    ("LTE Failover", "Connectivity", 39.00, 18.00, True),
    ("Static IP Block /29", "Connectivity", 15.00, 3.00, True),
    ("Managed Workstation", "Managed IT", 45.00, 12.00, True),
    ("Managed Server", "Managed IT", 149.00, 40.00, True),
    ("Microsoft 365 Business Premium", "Managed IT", 22.00, 19.80, True),
    ("Cloud Backup 1 TB", "Managed IT", 59.00, 21.00, True),
    ("Endpoint Security", "Managed IT", 6.50, 2.10, True),
    ("Yealink T54W Phone", "Hardware", 189.00, 121.00, False),
    ("Meraki MX68 Firewall", "Hardware", 695.00, 480.00, False),
    ("Poly Voyager Headset", "Hardware", 129.00, 80.00, False),
    ("Phone Rental", "Hardware", 6.00, 2.00, True),
    ("Multi-Service Discount", None, -10.00, 0.00, True),
)
ITEM_GROUPS = (  # bundle name, items
    (
        "Office Voice Starter",
        ("Hosted PBX Seat", "DID Number", "E911 Service", "Yealink T54W Phone"),
    ),
    ("Connected Office", ("Fiber 100 Mbps", "Static IP Block /29", "LTE Failover")),
)
PLACES = (  # city, state, zip prefix, tax name
    ("San Francisco", "CA", "941", "CA Sales Tax"),
    ("Oakland", "CA", "946", "CA Sales Tax"),
    ("San Jose", "CA", "951", "CA Sales Tax"),
    ("Los Angeles", "CA", "900", "CA Sales Tax"),
    ("New York", "NY", "100", "NY Sales Tax"),
    ("Brooklyn", "NY", "112", "NY Sales Tax"),
    ("Austin", "TX", "787", "TX Sales Tax"),
    ("Houston", "TX", "770", "TX Sales Tax"),
    ("Seattle", "WA", "981", "WA Sales Tax"),
    ("Portland", "OR", "972", "Exempt"),
    ("Denver", "CO", "802", "Exempt"),
    ("Chicago", "IL", "606", "Exempt"),
)
NAME_FIRST = (
    "Bayshore", "Summit", "Harbor", "Pioneer", "Redwood", "Golden Gate", "Evergreen", "Lakeview", "Granite",
    "Silverline", "Northstar", "Bluewater", "Cedar", "Keystone", "Riverbend", "Sunset", "Oak Hill", "Mission",
    "Pacific", "Atlas", "Beacon", "Cascade", "Frontier", "Highland", "Liberty", "Meridian", "Orchard",
    "Prairie", "Sierra", "Union", "Vista", "Westgate", "Alder", "Brightwater", "Coastal", "Delta", "Elm Street",
    "Fairview", "Greenway", "Hillcrest", "Ironwood", "Juniper", "Kingsley", "Lighthouse", "Maple", "Noble",
)  # fmt: skip
NAME_SECOND = (
    "Dental", "Logistics", "Realty", "Law Group", "Veterinary", "Family Medicine", "Architects", "Accounting",
    "Auto Repair", "Bakery", "Construction", "Insurance", "Pharmacy", "Fitness", "Chiropractic", "Credit Union",
    "Engineering", "Florists", "Hardware", "Optometry", "Plumbing", "Printing", "Roofing", "Storage",
    "Title Company", "Travel", "Wealth Partners", "Winery", "Brewing", "Animal Hospital", "Pediatrics",
    "Staffing", "Charter School", "Property Management", "Imaging", "Surgical Center",
)  # fmt: skip
NAME_SUFFIX = ("", "", "", " LLC", " Inc.", " Co.", " Group", " Partners")
STREETS = (
    "Market St",
    "Main St",
    "Broadway",
    "Mission St",
    "Oak Ave",
    "Pine St",
    "2nd Ave",
    "Park Blvd",
    "Lake Dr",
    "Elm St",
)


@dataclass
class Catalog:
    """Ids of the shared set-up: taxes, custom fields, contract types, groups, items, bundles."""

    taxes: dict[str, int] = field(default_factory=dict)
    tax_rates: dict[int, float] = field(default_factory=dict)
    datagate_field_id: int = 0
    customer_type_field_id: int = 0
    contract_types: dict[str, int] = field(default_factory=dict)
    asset_groups: dict[str, int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    item_groups: dict[str, int] = field(default_factory=dict)


@dataclass
class GeneratedTenant:
    """What ``generate_tenant`` built: the catalogue ids and how many of each record."""

    seed: int
    as_of: date
    catalog: Catalog
    client_ids: list[int]
    counts: dict[str, int]

    @property
    def datagate_field_id(self) -> int:
        return self.catalog.datagate_field_id


def _stamp(moment: datetime) -> str:
    return halo_timestamp(moment)


def _by_name(backend: HaloPSABackend, resource: str) -> dict[str, int]:
    return {r["name"]: r["id"] for r in backend.table(resource).values()}


def ensure_catalog(backend: HaloPSABackend, now: str | None = None) -> Catalog:
    """Create (once; matched by name) the taxes, client custom fields, contract types, asset
    groups, items and item groups the generator and the fixtures use."""
    with backend.lock:
        catalog = Catalog()
        taxes = _by_name(backend, "Tax")
        missing = [{"name": n, "code": c, "value": v} for n, c, v in TAXES if n not in taxes]
        if missing:
            backend.load("Tax", missing, now=now)
        catalog.taxes = _by_name(backend, "Tax")
        catalog.tax_rates = {r["id"]: r["value"] for r in backend.table("Tax").values()}

        fields = {r["name"]: r["id"] for r in backend.table("FieldInfo").values()}
        wanted = [
            {"name": "Datagate", "label": "Datagate", "usage": 2, "type": 6, "inputtype": 0},
            {
                "name": "CustomerType",
                "label": "Customer Type",
                "usage": 2,
                "type": 2,
                "new_values": "MSP,Telecom,Retail,Healthcare",
            },
            {"name": "BillingNotes", "label": "Billing Notes", "usage": 2, "type": 0},
        ]
        missing = [f for f in wanted if "CF" + f["name"] not in fields]
        if missing:
            backend.load("FieldInfo", missing, now=now)
        fields = {r["name"]: r["id"] for r in backend.table("FieldInfo").values()}
        catalog.datagate_field_id = fields[DATAGATE_FIELD]
        catalog.customer_type_field_id = fields["CFCustomerType"]

        catalog.contract_types = {name: backend.add_contract_type(name) for name in CONTRACT_TYPES}

        groups = _by_name(backend, "AssetGroup")
        missing = [
            {
                "name": n,
                "showasitem": True,
                "tax_id": catalog.taxes[t],
                "nominalcode": nc,
                "nominalcodepurchase": pnc,
                "item_recurring_default": rec,
            }
            for n, t, nc, pnc, rec in ASSET_GROUPS
            if n not in groups
        ]
        if missing:
            backend.load("AssetGroup", missing, now=now)
        catalog.asset_groups = _by_name(backend, "AssetGroup")

        items = _by_name(backend, "Item")
        missing = []
        for index, (name, group, price, cost, recurring) in enumerate(ITEMS, start=1):
            if name in items:
                continue
            item: dict[str, Any] = {"name": name, "baseprice": price, "costprice": cost, "isrecurringitem": recurring,
                                    "internalreference": f"SKU-{index:04d}", "recurringprice": price if recurring else 0.0}  # fmt: skip
            if group is not None:
                item["assetgroup_id"] = catalog.asset_groups[group]
            else:
                item["taxcode"] = catalog.taxes["Exempt"]
                item["nominalcode"] = "4900"
            missing.append(item)
        if missing:
            backend.load("Item", missing, now=now)
        catalog.items = _by_name(backend, "Item")

        bundles = _by_name(backend, "ItemGroup")
        missing = [
            {
                "name": n,
                "lines": [{"item_id": catalog.items[i], "current_quantity": 1} for i in members],
            }
            for n, members in ITEM_GROUPS
            if n not in bundles
        ]
        if missing:
            backend.load("ItemGroup", missing, now=now)
        catalog.item_groups = _by_name(backend, "ItemGroup")
        return catalog


def _month_start(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _default_as_of() -> date:
    today = datetime.now(UTC).date()
    return today.replace(day=1)


class _TenantBuilder:
    def __init__(
        self,
        backend: HaloPSABackend,
        catalog: Catalog,
        rng: random.Random,
        as_of: date,
        now: str,
        lines_per_customer: int,
    ) -> None:
        self.backend = backend
        self.catalog = catalog
        self.rng = rng
        self.as_of = as_of
        self.now = now
        self.lines_per_customer = lines_per_customer
        self.used_names: set[str] = set()
        self.recurring_items = [
            (n, g, p) for n, g, p, _c, rec in ITEMS if rec and n != "Multi-Service Discount"
        ]

    # -- customers

    def client_name(self) -> str:
        rng = self.rng
        base = f"{rng.choice(NAME_FIRST)} {rng.choice(NAME_SECOND)}{rng.choice(NAME_SUFFIX)}"
        name, n = base, 2
        while name in self.used_names:
            name, n = f"{base} #{n}", n + 1
        self.used_names.add(name)
        return name

    def client(self, number: int) -> dict[str, Any]:
        rng = self.rng
        created = datetime.combine(self.as_of, datetime.min.time()) - timedelta(
            days=rng.randint(30, 2500),
            seconds=rng.randint(0, 86399),
            milliseconds=rng.randint(0, 999),
        )
        ticked = rng.random() < 0.80
        customfields: list[dict[str, Any]] = [
            {"id": self.catalog.datagate_field_id, "value": ticked}
        ]
        if rng.random() < 0.6:
            customfields.append(
                {
                    "name": "CFCustomerType",
                    "value": rng.choice(["MSP", "Telecom", "Retail", "Healthcare"]),
                }
            )
        return {
            "name": self.client_name(),
            "inactive": rng.random() < 0.05,
            "accountsid": f"C-{number:05d}" if rng.random() < 0.7 else "",
            "website": "",
            "datecreated": _stamp(created),
            "startbalance": round(rng.choice([0.0, 0.0, 0.0, rng.uniform(-500, 2500)]), 2),
            "startdate": halo_date(_month_start(self.as_of, -rng.randint(1, 36))),
            "customfields": customfields,
        }

    def sites(self, client_id: int, client_name: str, no_zip: bool) -> list[dict[str, Any]]:
        rng = self.rng
        count = rng.choices((1, 2, 3), weights=(60, 28, 12))[0]
        sites = []
        for index in range(count):
            city, state, prefix, _tax = rng.choice(PLACES)
            zip_code = f"{prefix}{rng.randint(0, 99):02d}"
            roll = rng.random()
            if no_zip or (index > 0 and roll < 0.08):
                postcode = ""
            elif roll < 0.20:
                postcode = f"{zip_code}-{rng.randint(1, 9999):04d}"  # ZIP+4
            else:
                postcode = zip_code
            address = {
                "line1": f"{rng.randint(1, 9999)} {rng.choice(STREETS)}",
                "line2": city,
                "line3": state,
                "postcode": postcode,
            }
            sites.append(
                {
                    "name": "Main" if index == 0 else f"{city} Office",
                    "client_id": client_id,
                    "phonenumber": f"({rng.randint(201, 989)}) 555-{rng.randint(0, 9999):04d}",
                    "delivery_address": address,
                    "invoice_address_isdelivery": True,
                    "inactive": index > 0 and rng.random() < 0.03,
                }
            )
        return sites

    def contracts(
        self, client_id: int, site_ids: Sequence[int], number: int
    ) -> list[dict[str, Any]]:
        rng = self.rng
        how_many = rng.choices((0, 1, 2), weights=(10, 70, 20))[0]
        contracts = []
        for n in range(how_many):
            kind = rng.choices(CONTRACT_TYPES, weights=(45, 40, 15))[0]
            start = _month_start(self.as_of, -rng.randint(1, 48))
            if rng.random() < 0.3:
                start = start.replace(day=rng.randint(2, 28))
            end: date | None = None
            roll = rng.random()
            if kind == "Project" or roll < 0.25:
                end = _month_start(start, rng.choice((3, 6, 12, 24, 36))) - timedelta(days=1)
            expired = end is not None and end < self.as_of
            contracts.append(
                {
                    "client_id": client_id,
                    "site_id": rng.choice(site_ids) if rng.random() < 0.2 else UNSET,
                    "ref": f"{kind[:3].upper()}-{number:05d}-{n + 1}",
                    "contracttype": self.catalog.contract_types[kind],
                    "start_date": halo_date(start),
                    "end_date": halo_date(end),
                    "active": not (expired and rng.random() < 0.5),
                    "periodchargeamount": round(rng.uniform(50, 2000), 2)
                    if kind == "Managed Services"
                    else 0.0,
                    "billingperiod": 2,
                }
            )
        return contracts

    # -- recurring invoices

    def line_dates(self) -> tuple[str, str, bool, float | None]:
        """(startdate, enddate, isinactive, qty override) for one line."""
        rng = self.rng
        as_of = self.as_of
        roll = rng.random()
        start: date | None
        end: date | None = None
        if roll < 0.50:  # running for a while
            start = _month_start(as_of, -rng.randint(2, 30))
            if rng.random() < 0.15:
                start = None  # no start date at all (the 1899 sentinel)
        elif roll < 0.65:  # started mid-month recently
            start = _month_start(as_of, -rng.randint(0, 2)).replace(day=rng.randint(2, 28))
        elif roll < 0.75:  # ended (often mid-month)
            start = _month_start(as_of, -rng.randint(6, 24))
            end = _month_start(as_of, -rng.randint(0, 4)).replace(
                day=rng.choice((10, 15, 20, 28))
            ) - timedelta(days=1)
        elif roll < 0.82:  # starts in the future
            start = _month_start(as_of, rng.randint(1, 3))
            if rng.random() < 0.4:
                start = start.replace(day=rng.randint(2, 28))
        elif roll < 0.88:  # fixed term ending soon, mid-month
            start = _month_start(as_of, -rng.randint(3, 12))
            end = _month_start(as_of, rng.randint(0, 2)).replace(day=rng.randint(10, 25))
        else:  # started on the first of this month
            start = as_of
        inactive = rng.random() < 0.05
        qty = 0.0 if rng.random() < 0.03 else None
        return halo_date(start), halo_date(end), inactive, qty

    def lines(
        self, contract_ids: Sequence[int], site_ids: Sequence[int], count: int
    ) -> list[dict[str, Any]]:
        rng = self.rng
        items = self.catalog.items
        exempt = str(self.catalog.taxes["Exempt"])
        lines = []
        for _ in range(count):
            startdate, enddate, inactive, qty = self.line_dates()
            if rng.random() < 0.04:
                name, price = (
                    "Multi-Service Discount",
                    -round(rng.choice((5, 10, 15, 25, 50)) * 1.0, 2),
                )
            else:
                name, _group, price = rng.choice(self.recurring_items)
                if rng.random() < 0.1:
                    price = round(price * rng.choice((0.8, 0.9, 0.95, 1.1)), 2)
            line: dict[str, Any] = {
                "_itemid": items[name],
                "qty_order": qty
                if qty is not None
                else float(rng.choices((1, 2, 3, 5, 10, 25), weights=(50, 15, 10, 10, 10, 5))[0]),
                "unit_price": price,
                "startdate": startdate,
                "enddate": enddate,
                "isinactive": inactive,
                "contract_id": rng.choice(contract_ids)
                if contract_ids and rng.random() < 0.7
                else UNSET,
                "site": rng.choice(site_ids) if len(site_ids) > 1 and rng.random() < 0.5 else UNSET,
            }
            if rng.random() < 0.03:
                line["tax_code"] = exempt
            lines.append(line)
        return lines

    def recurring_invoices(
        self, client_id: int, contract_ids: Sequence[int], site_ids: Sequence[int]
    ) -> list[dict[str, Any]]:
        rng = self.rng
        if not contract_ids and rng.random() < 0.5:
            return []
        how_many = 2 if rng.random() < 0.05 else 1
        invoices = []
        total_lines = max(1, rng.randint(1, 2 * self.lines_per_customer - 1))
        for n in range(how_many):
            count = max(1, total_lines // how_many)
            invoices.append(
                {
                    "client_id": client_id,
                    "sitenumber": site_ids[n % len(site_ids)] if site_ids else 0,
                    "contract_id": contract_ids[0] if contract_ids and rng.random() < 0.6 else 0,
                    "reference": "Monthly Billing",
                    "period": 2,
                    "lastcreated": halo_date(_month_start(self.as_of, -1)),
                    "nextcreationdate": halo_date(self.as_of),
                    "lines": self.lines(contract_ids, site_ids, count),
                }
            )
        return invoices


def generate_tenant(
    backend: HaloPSABackend,
    customers: int = 100,
    seed: int = 0,
    *,
    as_of: date | None = None,
    lines_per_customer: int = 10,
    batch_size: int = 500,
) -> GeneratedTenant:
    """Fill ``backend`` with a realistic MSP/telecom tenant; deterministic for a given seed.

    Per customer: 1–3 sites with US zips (ZIP+4 on some, some secondary sites without one, ~2%
    of customers with no zip anywhere); 0–2 contracts of type Telecom / Managed Services /
    Project; ~5% inactive; ~80% ticked in ``CFDatagate``; usually one recurring invoice (period
    2) whose lines start and end on assorted dates (mid-month, ended, future, no date),
    including discounts (negative prices), zero quantities and inactive lines. About
    ``lines_per_customer`` lines per customer on average.
    """
    rng = random.Random(seed)
    as_of = as_of or _default_as_of()
    now = f"{as_of.isoformat()}T06:00:00"
    catalog = ensure_catalog(backend, now)
    builder = _TenantBuilder(backend, catalog, rng, as_of, now, lines_per_customer)
    counts = {"clients": 0, "sites": 0, "contracts": 0, "recurring_invoices": 0, "lines": 0}
    client_ids: list[int] = []
    with backend.lock:
        for start in range(0, customers, batch_size):
            numbers = range(start + 1, min(customers, start + batch_size) + 1)
            clients = [builder.client(n) for n in numbers]
            ids = backend.load("Client", clients, now=now)
            client_ids += ids
            no_zip = [rng.random() < 0.02 for _ in ids]
            sites, site_owner = [], []
            for client_id, client, flag in zip(ids, clients, no_zip, strict=True):
                for site in builder.sites(client_id, client["name"], flag):
                    sites.append(site)
                    site_owner.append(client_id)
            site_ids = backend.load("Site", sites, now=now)
            sites_by_client: dict[int, list[int]] = {}
            for owner, site_id in zip(site_owner, site_ids, strict=True):
                sites_by_client.setdefault(owner, []).append(site_id)
            contracts, contract_owner = [], []
            for client_id, number in zip(ids, numbers, strict=True):
                for contract in builder.contracts(client_id, sites_by_client[client_id], number):
                    contracts.append(contract)
                    contract_owner.append(client_id)
            contract_ids = backend.load("ClientContract", contracts, now=now) if contracts else []
            contracts_by_client: dict[int, list[int]] = {}
            for owner, contract_id in zip(contract_owner, contract_ids, strict=True):
                contracts_by_client.setdefault(owner, []).append(contract_id)
            invoices = []
            for client_id in ids:
                invoices += builder.recurring_invoices(
                    client_id, contracts_by_client.get(client_id, []), sites_by_client[client_id]
                )
            if invoices:
                backend.load("RecurringInvoice", invoices, now=now)
            counts["clients"] += len(ids)
            counts["sites"] += len(site_ids)
            counts["contracts"] += len(contract_ids)
            counts["recurring_invoices"] += len(invoices)
            counts["lines"] += sum(len(i["lines"]) for i in invoices)
    return GeneratedTenant(
        seed=seed, as_of=as_of, catalog=catalog, client_ids=client_ids, counts=counts
    )


@dataclass
class BaysideDental:
    """Ids of the hand-written Bayside Dental fixture."""

    catalog: Catalog
    client_id: int
    main_site_id: int
    annex_site_id: int
    contract_id: int
    recurring_invoice_id: int
    line_ids: list[int]
    #: A second, not-ticked client (CFDatagate = false) with its own recurring invoice.
    other_client_id: int


def bayside_dental(backend: HaloPSABackend, *, as_of: date = date(2026, 7, 1)) -> BaysideDental:
    """A tiny tenant for tests: Bayside Dental (ticked) with two sites, a Telecom contract and a
    recurring invoice of six lines covering the awkward cases; plus Harbor Realty (not ticked).

    Lines: PBX seats running for months; a fiber line that started mid-month (the 15th of the
    month before ``as_of``); a DID line that ended on the 10th of that month; LTE failover
    starting next month; a discount (negative price); a zero-quantity inactive phone rental.
    """
    now = f"{as_of.isoformat()}T06:00:00"
    catalog = ensure_catalog(backend, now)
    last_month = _month_start(as_of, -1)
    with backend.lock:
        client_id = backend.load(
            "Client",
            [
                {
                    "name": "Bayside Dental",
                    "accountsid": "C-00001",
                    "customfields": [{"id": catalog.datagate_field_id, "value": True}],
                }
            ],
            now=now,
        )[0]
        main_site_id, annex_site_id = backend.load(
            "Site",
            [
                {
                    "name": "Main",
                    "client_id": client_id,
                    "delivery_address": {
                        "line1": "1 Market St",
                        "line2": "San Francisco",
                        "line3": "CA",
                        "postcode": "94107",
                    },
                },
                {
                    "name": "Annex",
                    "client_id": client_id,
                    "delivery_address": {
                        "line1": "500 Howard St",
                        "line2": "San Francisco",
                        "line3": "CA",
                        "postcode": "94107-1234",
                    },
                },
            ],
            now=now,
        )
        contract_id = backend.load(
            "ClientContract",
            [
                {
                    "client_id": client_id,
                    "ref": "TEL-00001",
                    "contracttype": catalog.contract_types["Telecom"],
                    "start_date": halo_date(_month_start(as_of, -12)),
                }
            ],
            now=now,
        )[0]
        items = catalog.items
        lines = [
            {
                "_itemid": items["Hosted PBX Seat"],
                "qty_order": 12.0,
                "contract_id": contract_id,
                "site": main_site_id,
                "startdate": halo_date(_month_start(as_of, -6)),
            },
            {
                "_itemid": items["Fiber 100 Mbps"],
                "qty_order": 1.0,
                "contract_id": contract_id,
                "site": annex_site_id,
                "startdate": halo_date(last_month.replace(day=15)),
            },
            {
                "_itemid": items["DID Number"],
                "qty_order": 20.0,
                "contract_id": contract_id,
                "startdate": halo_date(_month_start(as_of, -9)),
                "enddate": halo_date(last_month.replace(day=10)),
            },
            {
                "_itemid": items["LTE Failover"],
                "qty_order": 1.0,
                "contract_id": UNSET,
                "site": annex_site_id,
                "startdate": halo_date(_month_start(as_of, 1)),
            },
            {
                "_itemid": items["Multi-Service Discount"],
                "qty_order": 1.0,
                "unit_price": -25.0,
                "startdate": NO_DATE,
            },
            {
                "_itemid": items["Phone Rental"],
                "qty_order": 0.0,
                "isinactive": True,
                "site": main_site_id,
            },
        ]
        recurring_id = backend.load(
            "RecurringInvoice",
            [
                {
                    "client_id": client_id,
                    "sitenumber": main_site_id,
                    "contract_id": contract_id,
                    "reference": "Monthly Billing",
                    "lines": lines,
                }
            ],
            now=now,
        )[0]
        line_ids = [
            line["id"] for line in backend.table("RecurringInvoice").get(recurring_id)["lines"]
        ]  # type: ignore[index]
        other_client_id = backend.load(
            "Client",
            [
                {
                    "name": "Harbor Realty",
                    "customfields": [{"id": catalog.datagate_field_id, "value": False}],
                }
            ],
            now=now,
        )[0]
        backend.load(
            "Site",
            [
                {
                    "name": "Main",
                    "client_id": other_client_id,
                    "delivery_address": {"postcode": "10001"},
                }
            ],
            now=now,
        )
        backend.load(
            "RecurringInvoice",
            [
                {
                    "client_id": other_client_id,
                    "reference": "Monthly Billing",
                    "lines": [{"_itemid": items["Broadband 50 Mbps"], "qty_order": 1.0}],
                }
            ],
            now=now,
        )
    return BaysideDental(
        catalog,
        client_id,
        main_site_id,
        annex_site_id,
        contract_id,
        recurring_id,
        line_ids,
        other_client_id,
    )


SUPPLIER_FIRST = (
    "Ingram", "Synnex", "Pax8", "Sherweb", "Datto", "Yealink", "Poly", "Meraki", "Lumen",
    "Zayo", "Comcast Business", "Bandwidth", "Twilio", "Telarus", "Avant", "Jenne", "ScanSource",
    "Westcon", "Arrow", "D&H", "Climb", "Carahsoft", "Insight", "CDW", "SHI", "Connection",
)  # fmt: skip
SUPPLIER_SECOND = (
    "Distribution", "Supply", "Wholesale", "Networks", "Telecom", "Solutions", "Direct",
    "Channel", "Cloud", "Hardware", "Logistics",
)  # fmt: skip
#: Lines without an item: (description, purchase nominal code, unit cost).
PO_SUNDRIES = (
    ("Freight", "5900", 35.0),
    ("Installation labour (subcontracted)", "5200", 180.0),
    ("Site survey", "5200", 95.0),
    ("Restocking fee", "5900", 20.0),
)
#: How a generated PO is spread over the statuses (the simulator's [I] integers).
PO_STATUS_MIX = (
    ("draft", 0.08),
    ("awaiting_approval", 0.07),
    ("approved", 0.25),
    ("sent", 0.25),
    ("received", 0.15),
    ("closed", 0.15),
    ("cancelled", 0.05),
)


@dataclass
class GeneratedPurchasing:
    """What ``generate_purchasing`` built."""

    supplier_ids: list[int]
    purchase_order_ids: list[int]
    counts: dict[str, int]


def generate_purchasing(
    backend: HaloPSABackend,
    suppliers: int = 20,
    purchase_orders: int = 50,
    seed: int = 0,
    *,
    as_of: date | None = None,
    lines_per_order: int = 4,
    batch_size: int = 500,
) -> GeneratedPurchasing:
    """Suppliers and purchase orders, deterministic for a given seed (drawn from their own
    ``random.Random``, so a tenant's customers do not change when purchasing is added).

    Every 33rd supplier carries the name of an existing client (a QBO DisplayName clash, 6240),
    ~5% are inactive, some have no email or address. POs (about ``lines_per_order`` lines,
    mostly catalogue items at cost, some sundries with their own nominal code) spread over
    every status; received and closed ones have their goods in, and closed ones a linked
    supplier invoice.
    """
    rng = random.Random(f"purchasing:{seed}")
    as_of = as_of or _default_as_of()
    now = f"{as_of.isoformat()}T06:00:00"
    catalog = ensure_catalog(backend, now)
    counts = {"suppliers": 0, "purchase_orders": 0, "lines": 0, "supplier_invoices": 0}
    with backend.lock:
        client_names = [r["name"] for r in backend.table("Client").values()]
        used: set[str] = set()
        rows = []
        for number in range(1, suppliers + 1):
            if client_names and number % 33 == 0:  # every 33rd: a client's name
                name = rng.choice(client_names)
            else:
                name = f"{rng.choice(SUPPLIER_FIRST)} {rng.choice(SUPPLIER_SECOND)}"
            base, n = name, 2
            while name in used:
                name, n = f"{base} {n}", n + 1
            used.add(name)
            place = rng.choice(PLACES)
            rows.append(
                {
                    "name": name,
                    "inactive": rng.random() < 0.05,
                    "contact_name": f"Accounts {number}",
                    "email_address": f"ap{number}@supplier.example" if rng.random() < 0.9 else "",
                    "phone_number": f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
                    "address": (
                        f"{rng.randint(1, 999)} {rng.choice(STREETS)}\n{place[0]}\n{place[1]}\n"
                        f"{place[2]}{rng.randint(0, 99):02d}"
                        if rng.random() < 0.9
                        else ""
                    ),
                }
            )
        supplier_ids: list[int] = []
        for start in range(0, len(rows), batch_size):
            supplier_ids += backend.load("Supplier", rows[start : start + batch_size], now=now)
        counts["suppliers"] = len(supplier_ids)
        active = [i for i, r in zip(supplier_ids, rows, strict=True) if not r["inactive"]]
        items = [catalog.items[name] for name, *_ in ITEMS if name != "Multi-Service Discount"]
        hardware = [catalog.items[name] for name, group, *_ in ITEMS if group == "Hardware"]
        statuses = [s for s, _ in PO_STATUS_MIX]
        weights = [w for _, w in PO_STATUS_MIX]
        orders, meanings = [], []
        for number in range(1, (purchase_orders if active else 0) + 1):
            meaning = rng.choices(statuses, weights)[0]
            lines = []
            for _ in range(max(1, round(rng.gauss(lines_per_order, 1.5)))):
                if rng.random() < 0.15:
                    description, code, cost = rng.choice(PO_SUNDRIES)
                    lines.append(
                        {
                            "name": description,
                            PO_LINE_QUANTITY: 1.0,
                            PO_LINE_UNIT_COST: cost,
                            "accounts_code": code,
                        }
                    )
                else:
                    pool = hardware if rng.random() < 0.6 else items
                    lines.append(
                        {"item_id": rng.choice(pool), PO_LINE_QUANTITY: float(rng.randint(1, 24))}
                    )
            ordered = _month_start(as_of, -rng.randint(0, 2)) + timedelta(days=rng.randint(0, 27))
            orders.append(
                {
                    "supplier_id": rng.choice(active),
                    "po_ref": f"PO-{number:05d}",
                    "status": PO_STATUS[meaning],
                    "date": halo_date(ordered),
                    "duedate": halo_date(ordered + timedelta(days=30)),
                    "lines": lines,
                }
            )
            meanings.append(meaning)
        order_ids: list[int] = []
        for start in range(0, len(orders), batch_size):
            order_ids += backend.load("PurchaseOrder", orders[start : start + batch_size], now=now)
        invoices = []
        for order_id, order, meaning in zip(order_ids, orders, meanings, strict=True):
            if meaning in ("received", "closed"):
                backend.confirm_receipt({"id": order_id}, now=now)
            if meaning == "closed":
                invoices.append(
                    {
                        "supplier_id": order["supplier_id"],
                        "purchaseorder_id": order_id,
                        "thirdpartyinvoicenumber": f"SI-{order_id:05d}",
                        "invoice_date": halo_date(as_of),
                    }
                )
        if invoices:
            backend.load("Invoice", invoices, now=now)
        counts["purchase_orders"] = len(order_ids)
        counts["lines"] = sum(len(o["lines"]) for o in orders)
        counts["supplier_invoices"] = len(invoices)
    return GeneratedPurchasing(supplier_ids, order_ids, counts)
