"""Tax into QBO companies outside the US: our tax table as QBO tax codes (`qbo.tax_mode:
tax_codes`).

US companies take TAX/NON per line and our tax as the invoice's TotalTax (exporting/qbo.py);
elsewhere every line names a real QBO TaxCode and QBO computes tax per rate
(docs/qbo-api.md §3.6). So:

- each (tax code, zip) of our tax table (docs/billing.md, Tax) becomes a QBO TaxCode whose
  rates are its jurisdictions, each rate filed with the jurisdiction as its TaxAgency.
  Identical sets of rates share one QBO code, named from its content
  (`TEL State 6.25% + County 1.25%`); agencies, rates and codes are looked up by name
  before anything is created (`POST /taxservice/taxcode`, with content-derived request ids),
  and linked in `qbo_entities` (TaxCode by `code|zip`, TaxRate by name). `datagate qbo
  tax-codes` shows and applies this; the invoice export only uses the links.
- lines we did not tax take the portal's `qbo.exempt_tax_code`, an existing QBO code.
- `TxnTaxDetail` carries our tax per rate: each line's tax split over its code's rates in
  proportion (cents left over go to the largest share), summed per rate. QBO may still
  compute its own figure (it rounds per rate, we round per line): the export keeps QBO's
  total and tax on the export record, and the difference is shown — it is not a failure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from datagate_pipelines.billing.money import round_half_away
from datagate_pipelines.billing.tax import NONTAXABLE
from datagate_pipelines.config import PortalSettings
from datagate_pipelines.exporting.database import Database, transaction
from datagate_pipelines.exporting.documents import DocumentLine, InvoiceDocument, number_text
from datagate_pipelines.exporting.qbo_references import (
    content_request_id,
    load_links,
    save_links,
)
from datagate_pipelines.qbo.client import QBOClient
from datagate_pipelines.qbo.errors import QBODuplicateNameError, QBOFaultError
from datagate_pipelines.warehouse.models import tax_rates

TAX_CODE, TAX_RATE, TAX_AGENCY = "TaxCode", "TaxRate", "TaxAgency"
EXEMPT_KEY = "exempt"
NAME_MAX = 100
CENT = Decimal("0.01")

Rates = tuple[tuple[str, Decimal], ...]  # (jurisdiction, rate as a fraction), by jurisdiction


def code_key(tax_code: str, zip_code: str) -> str:
    """The `qbo_entities` key of the QBO tax code for our (tax code, zip)."""
    return f"{tax_code}|{zip_code}"


def percent(rate: Decimal) -> str:
    """0.0625 → "6.25"."""
    return number_text(rate * 100)


def rate_name(jurisdiction: str, rate: Decimal) -> str:
    return _fit(f"{jurisdiction} {percent(rate)}%")


def code_name(tax_code: str, rates: Rates) -> str:
    """A QBO tax code's name, from its content: the same rates give the same name."""
    return _fit(f"{tax_code} " + " + ".join(f"{j} {percent(r)}%" for j, r in rates))


def _fit(name: str) -> str:
    """At most NAME_MAX characters (QBO's limit is unknown; docs/qbo-api.md §3.6), made
    unique by a short hash when cut; no colons (QBO's parent separator)."""
    name = name.replace(":", "-")
    if len(name) <= NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: NAME_MAX - 9]} {digest}"


def our_tax_table(db: Database) -> dict[str, Rates]:
    """Our tax table by `code|zip`: the jurisdictions and their rates."""
    table: dict[str, list[tuple[str, Decimal]]] = {}
    with transaction(db) as connection:
        for row in connection.execute(
            select(
                tax_rates.c.zip, tax_rates.c.tax_code, tax_rates.c.jurisdiction, tax_rates.c.rate
            )
        ):
            table.setdefault(code_key(row.tax_code, row.zip), []).append(
                (row.jurisdiction, row.rate)
            )
    return {key: tuple(sorted(rates)) for key, rates in table.items()}


# --- the plan and applying it (`datagate qbo tax-codes`) ---------------------------------


@dataclass
class PlannedCode:
    """One QBO tax code: the (tax code, zip) pairs it serves, its rates, where it stands."""

    name: str
    rates: Rates
    keys: list[str]
    qbo_id: str | None = None
    state: str = "create"  # linked | found | create | created | failed
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "qbo_name": self.name,
            "rates": [{"jurisdiction": j, "percent": percent(r)} for j, r in self.rates],
            "serves": self.keys,
            "qbo_id": self.qbo_id,
            "state": self.state,
            "problem": self.problem,
        }


@dataclass
class TaxCodePlan:
    codes: list[PlannedCode] = field(default_factory=list)
    exempt_name: str = ""
    exempt_id: str | None = None

    @property
    def problems(self) -> list[str]:
        out = [c.problem for c in self.codes if c.problem]
        if self.exempt_id is None:
            out.append(
                f"the exempt tax code {self.exempt_name!r} (qbo.exempt_tax_code) does not exist "
                "in QBO: lines we did not tax need it; create it there or name an existing one"
            )
        return out


def _by_name(rows: Iterable[Mapping[str, Any]], field_name: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: int(r.get("Id") or 0)):
        out.setdefault(str(row.get(field_name, "")).strip().casefold(), dict(row))
    return out


def plan_tax_codes(db: Database, client: QBOClient, portal: PortalSettings) -> TaxCodePlan:
    """What applying our tax table to the portal's QBO company would do (reads only)."""
    assert portal.qbo is not None
    table = our_tax_table(db)
    with transaction(db) as connection:
        links = load_links(connection, portal.id, TAX_CODE)
    existing = _by_name(client.select(TAX_CODE, include_inactive=True), "Name")
    plan = TaxCodePlan(exempt_name=portal.qbo.exempt_tax_code)
    exempt = existing.get(plan.exempt_name.casefold())
    plan.exempt_id = str(exempt["Id"]) if exempt else None
    grouped: dict[str, PlannedCode] = {}
    for key in sorted(table):
        tax_code = key.split("|", 1)[0]
        if tax_code == NONTAXABLE:
            continue
        name = code_name(tax_code, table[key])
        grouped.setdefault(name, PlannedCode(name, table[key], [])).keys.append(key)
    for planned in grouped.values():
        found = existing.get(planned.name.casefold())
        linked = {links.get(key) for key in planned.keys}
        if found is not None and linked == {str(found["Id"])}:
            planned.qbo_id, planned.state = str(found["Id"]), "linked"
        elif found is not None:
            planned.qbo_id, planned.state = str(found["Id"]), "found"
        plan.codes.append(planned)
    return plan


@dataclass
class TaxCodeOutcome:
    linked: int = 0
    matched: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def apply_tax_codes(
    db: Database, client: QBOClient, portal: PortalSettings, plan: TaxCodePlan
) -> TaxCodeOutcome:
    """Create what the plan lacks (agencies, rates, codes) and link everything; one code
    that fails does not stop the others."""
    outcome = TaxCodeOutcome()
    with transaction(db) as connection:
        if plan.exempt_id is not None:
            save_links(
                connection, portal.id, TAX_CODE, {EXEMPT_KEY: (plan.exempt_id, plan.exempt_name)}
            )
    rates = _by_name(client.select(TAX_RATE, include_inactive=True), "Name")
    agencies = _by_name(client.select(TAX_AGENCY), "DisplayName")
    for planned in plan.codes:
        if planned.state == "linked":
            outcome.linked += 1
            continue
        if planned.state == "create":
            try:
                planned.qbo_id = _create_code(client, portal, planned, rates, agencies)
            except _Conflict as conflict:
                planned.state, planned.problem = "failed", str(conflict)
                outcome.failed[planned.name] = planned.problem
                continue
            planned.state = "created"
            outcome.created.append(planned.name)
        else:
            outcome.matched.append(planned.name)
        _link(db, client, portal, planned)
    return outcome


class _Conflict(Exception):
    pass


def _create_code(
    client: QBOClient,
    portal: PortalSettings,
    planned: PlannedCode,
    rates: dict[str, dict[str, Any]],
    agencies: dict[str, dict[str, Any]],
) -> str:
    details = []
    for jurisdiction, rate in planned.rates:
        name = rate_name(jurisdiction, rate)
        known = rates.get(name.casefold())
        if known is not None:
            if Decimal(str(known.get("RateValue"))) != rate * 100:
                raise _Conflict(
                    f"portal {portal.id}: tax code {planned.name!r}: QBO has a rate named "
                    f"{name!r} at {known.get('RateValue')}%, not {percent(rate)}%"
                )
            details.append({"TaxRateId": str(known["Id"]), "TaxApplicableOn": "Sales"})
            continue
        details.append(
            {
                "TaxRateName": name,
                "RateValue": rate * 100,
                "TaxAgencyId": _agency(client, portal, jurisdiction, agencies),
                "TaxApplicableOn": "Sales",
            }
        )
    body = {"TaxCode": planned.name, "TaxRateDetails": details}
    try:
        answer = client.create_tax_code(
            body, request_id=content_request_id(portal.id, TAX_CODE, [body])
        )
    except QBODuplicateNameError:
        again = _by_name(client.select(TAX_CODE, include_inactive=True), "Name")
        found = again.get(planned.name.casefold())
        if found is None:
            raise _Conflict(f"portal {portal.id}: tax code {planned.name!r}: QBO says the name "
                            "is taken, and no tax code has it") from None  # fmt: skip
        return str(found["Id"])
    except QBOFaultError as error:
        raise _Conflict(
            f"portal {portal.id}: QBO refused tax code {planned.name!r}: {error.message}"
        ) from None
    for detail in answer.get("TaxRateDetails") or []:
        rates[str(detail.get("TaxRateName", "")).casefold()] = {
            "Id": detail.get("TaxRateId"),
            "Name": detail.get("TaxRateName"),
            "RateValue": detail.get("RateValue"),
        }
    return str(answer["TaxCodeId"])


def _agency(
    client: QBOClient,
    portal: PortalSettings,
    jurisdiction: str,
    agencies: dict[str, dict[str, Any]],
) -> str:
    known = agencies.get(jurisdiction.casefold())
    if known is None:
        body = {"DisplayName": jurisdiction, "TaxTrackedOnSales": True}
        known = client.create(
            TAX_AGENCY,
            body,
            request_id=content_request_id(portal.id, TAX_AGENCY, [body]),
            our_id=jurisdiction,
        )
        agencies[jurisdiction.casefold()] = known
    return str(known["Id"])


def _link(db: Database, client: QBOClient, portal: PortalSettings, planned: PlannedCode) -> None:
    """Link the code for each (tax code, zip) it serves, and its rates by name."""
    assert planned.qbo_id is not None
    code = client.get(TAX_CODE, planned.qbo_id)
    rate_links = {}
    for detail in (code.get("SalesTaxRateList") or {}).get("TaxRateDetail") or []:
        ref = detail.get("TaxRateRef") or {}
        rate = client.get(TAX_RATE, ref["value"]) if not ref.get("name") else ref
        name = str(rate.get("name") or rate.get("Name"))
        rate_links[name] = (str(ref["value"]), name)
    with transaction(db) as connection:
        save_links(
            connection,
            portal.id,
            TAX_CODE,
            {k: (planned.qbo_id, planned.name) for k in planned.keys},
        )
        save_links(connection, portal.id, TAX_RATE, rate_links)


# --- the invoice export's half -----------------------------------------------------------


@dataclass(frozen=True)
class TaxLineShare:
    rate_id: str
    rate: Decimal
    net: Decimal
    tax: Decimal


class InvoiceTaxCodes:
    """The QBO tax codes an invoice's lines name, and its TxnTaxDetail, from the links."""

    def __init__(self, db: Database, portal: PortalSettings):
        assert portal.qbo is not None
        self.portal = portal
        self.table = our_tax_table(db)
        with transaction(db) as connection:
            self.codes = load_links(connection, portal.id, TAX_CODE)
            self.rates = load_links(connection, portal.id, TAX_RATE)

    def _key(self, line: DocumentLine) -> str | None:
        """`code|zip` of a taxed line; None for a line we did not tax."""
        if line.tax_code in (None, NONTAXABLE) or line.tax_zip is None:
            return None
        if not line.tax and not line.tax_rate:
            return None
        return code_key(line.tax_code, line.tax_zip)

    def problems(self, document: InvoiceDocument) -> list[str]:
        """Why the invoice cannot be sent with QBO tax codes (nothing: it can)."""
        out: list[str] = []
        exempt_needed = False
        for line in document.lines:
            key = self._key(line)
            if key is None:
                exempt_needed = True
                continue
            rates = self.table.get(key)
            tax_code, zip_code = key.split("|", 1)
            if rates is None or key not in self.codes:
                out.append(
                    f"tax code {tax_code} at {zip_code} has no QBO tax code: run "
                    f"`datagate qbo tax-codes --portal {self.portal.id}`"
                )
            elif sum((r for _, r in rates), Decimal(0)) != line.tax_rate:
                out.append(
                    f"the rates of tax code {tax_code} at {zip_code} changed since the invoice "
                    f"was billed ({percent(line.tax_rate or Decimal(0))}% then, "
                    f"{percent(sum((r for _, r in rates), Decimal(0)))}% now)"
                )
            elif any(rate_name(j, r) not in self.rates for j, r in rates):
                out.append(
                    f"the QBO rates of tax code {tax_code} at {zip_code} are not linked: run "
                    f"`datagate qbo tax-codes --portal {self.portal.id}`"
                )
        if exempt_needed and EXEMPT_KEY not in self.codes:
            out.append(
                f"the exempt tax code {self.portal.qbo.exempt_tax_code!r} "  # type: ignore[union-attr]
                f"(qbo.exempt_tax_code) is not linked: run `datagate qbo tax-codes --portal "
                f"{self.portal.id}`"
            )
        return sorted(set(out))

    def line_code(self, line: DocumentLine) -> str:
        key = self._key(line)
        return self.codes[EXEMPT_KEY if key is None else key]

    def shares(self, document: InvoiceDocument) -> list[TaxLineShare]:
        """Our tax per QBO rate: each line's tax split over its rates in proportion to
        them, the cents left over to the largest share; summed per rate."""
        net: dict[str, Decimal] = {}
        tax: dict[str, Decimal] = {}
        rate_of: dict[str, Decimal] = {}
        for line in document.lines:
            key = self._key(line)
            if key is None:
                continue
            rates = self.table[key]
            parts = split_tax(line.tax, [rate for _, rate in rates])
            for (jurisdiction, rate), part in zip(rates, parts, strict=True):
                rate_id = self.rates[rate_name(jurisdiction, rate)]
                rate_of[rate_id] = rate
                net[rate_id] = net.get(rate_id, Decimal("0.00")) + line.amount
                tax[rate_id] = tax.get(rate_id, Decimal("0.00")) + part
        return [
            TaxLineShare(rate_id, rate_of[rate_id], net[rate_id], tax[rate_id])
            for rate_id in sorted(net, key=lambda i: (len(i), i))
        ]

    def detail(self, document: InvoiceDocument, *, sign: int = 1) -> dict[str, Any]:
        """Our tax per rate for TxnTaxDetail; `sign` -1 flips it for a credit memo."""
        return {
            "TotalTax": sign * document.tax,
            "TaxLine": [
                {
                    "Amount": sign * share.tax,
                    "DetailType": "TaxLineDetail",
                    "TaxLineDetail": {
                        "TaxRateRef": {"value": share.rate_id},
                        "PercentBased": True,
                        "TaxPercent": share.rate * 100,
                        "NetAmountTaxable": sign * share.net,
                    },
                }
                for share in self.shares(document)
            ],
        }


def split_tax(tax: Decimal, rates: Sequence[Decimal]) -> list[Decimal]:
    """`tax` split over `rates` in proportion, in cents, summing exactly to `tax`: each
    share rounded half away from zero, the difference put on the largest share."""
    total = sum(rates, Decimal(0))
    if not rates:
        return []
    if total == 0:
        return [tax] + [Decimal("0.00")] * (len(rates) - 1)
    shares = [round_half_away(tax * rate / total) for rate in rates]
    largest = max(range(len(rates)), key=lambda i: (abs(shares[i]), -i))
    shares[largest] += tax - sum(shares, Decimal(0))
    return shares
