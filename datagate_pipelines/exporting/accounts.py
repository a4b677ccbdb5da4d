"""The chart of accounts: which QBO account a sale or a purchase posts to.

HaloPSA says it with nominal (GL) codes: an item's `nominalcode` (sales) and
`purchasenominalcode` (purchases), its asset group's `nominalcode` / `nominalcodepurchase`,
and a purchase-order line's `accounts_code`. A code maps to the QBO account whose AcctNum
is the code, else whose name is the code; `qbo.nominal_accounts` maps a code to an account
(name or number) explicitly.

The order (docs/operations.md, "Chart of accounts"):
- income (the QBO item a product is sold as): the nominal code when there is one, then the
  portal's account per item group, the product template's, the portal default;
- expense (purchase-order and bill lines): the line's nominal code, else the item's, then
  the portal's expense account per item group, the portal default.

A nominal code that maps to no account is a problem with a reason, never a fallback to the
next account in the order: a document that needs it fails its export (never posted to a
wrong account). `qbo.use_nominal_codes: false` leaves nominal codes out of the order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from datagate_pipelines.config import PortalSettings, QBOSettings
from datagate_pipelines.exporting.documents import ItemInfo
from datagate_pipelines.qbo.client import QBOClient
from datagate_pipelines.warehouse.models import (
    halo_purchase_order_lines,
    item_groups,
    items,
)

INCOME, EXPENSE = "income", "expense"


@dataclass(frozen=True)
class Chart:
    """A QBO company's active accounts, by AcctNum and by folded name (and full name)."""

    by_number: Mapping[str, dict[str, Any]]
    by_name: Mapping[str, dict[str, Any]]

    @classmethod
    def of(cls, accounts: Iterable[Mapping[str, Any]]) -> Chart:
        by_number: dict[str, dict[str, Any]] = {}
        by_name: dict[str, dict[str, Any]] = {}
        for account in accounts:
            if account.get("AcctNum"):
                by_number.setdefault(str(account["AcctNum"]).strip(), dict(account))
            for name in (account.get("FullyQualifiedName"), account.get("Name")):
                if name:
                    by_name.setdefault(str(name).strip().casefold(), dict(account))
        return cls(by_number, by_name)

    @classmethod
    def read(cls, client: QBOClient) -> Chart:
        """The company's active accounts (one query, paged)."""
        return cls.of(client.select("Account"))

    def by_name_only(self, name: str) -> dict[str, Any] | None:
        return self.by_name.get(name.strip().casefold())

    def find(self, number_or_name: str) -> dict[str, Any] | None:
        """The account with this AcctNum, else with this name."""
        wanted = number_or_name.strip()
        return self.by_number.get(wanted) or self.by_name_only(wanted)


@dataclass(frozen=True)
class Choice:
    """The account something posts to, where that came from, or why there is none."""

    account: dict[str, Any] | None
    source: str
    problem: str | None = None
    code: str | None = None  # the nominal code it came from

    @property
    def ref(self) -> dict[str, str]:
        assert self.account is not None
        return {"value": str(self.account["Id"]), "name": str(self.account.get("Name", ""))}


def _qbo(portal: PortalSettings) -> QBOSettings:
    assert portal.qbo is not None, "the chart of accounts needs the portal's qbo section"
    return portal.qbo


def nominal_choice(portal: PortalSettings, chart: Chart, code: str, used_by: str) -> Choice:
    """The account of a nominal code: `qbo.nominal_accounts`, else AcctNum, else name."""
    settings = _qbo(portal)
    mapped = settings.nominal_accounts.get(code)
    account = chart.find(mapped) if mapped else chart.find(code)
    source = f"nominal code {code}" + (f" (qbo.nominal_accounts: {mapped!r})" if mapped else "")
    if account is not None:
        return Choice(account, source, code=code)
    return Choice(None, source, unmapped(portal, code, used_by, mapped), code)


def unmapped(portal: PortalSettings, code: str, used_by: str, mapped: str | None = None) -> str:
    """Why a nominal code has no QBO account, and what to do about it."""
    why = (
        f"qbo.nominal_accounts maps it to {mapped!r}, which is no account"
        if mapped
        else "no account has that number or name"
    )
    return (
        f"portal {portal.id}: nominal code {code} ({used_by}) maps to no account in QBO "
        f"company {_qbo(portal).realm_id} ({why}): give an account that number or name, or "
        "map the code under qbo.nominal_accounts"
    )


def _by_group(mapping: Mapping[str, str], item: ItemInfo | None) -> str | None:
    if item is None:
        return None
    for key in (item.group_id, item.group_name):
        if key is not None and str(key) in mapping:
            return mapping[str(key)]
    return None


def _named(portal: PortalSettings, chart: Chart, name: str, source: str, used_by: str) -> Choice:
    account = chart.by_name_only(name)
    if account is not None:
        return Choice(account, source)
    return Choice(
        None,
        source,
        f"portal {portal.id}: {used_by}: account {name!r} does not exist in QBO company "
        f"{_qbo(portal).realm_id} ({source})",
    )


def item_label(item: ItemInfo | None, fallback: str = "a line without an item") -> str:
    return f"HaloPSA item {item.name!r} ({item.item_id})" if item is not None else fallback


def income_account(
    portal: PortalSettings, chart: Chart, item: ItemInfo | None, *, used_by: str | None = None
) -> Choice:
    """The income account a product (a QBO item) posts to (the order above)."""
    settings = _qbo(portal)
    used_by = used_by or item_label(item)
    if settings.use_nominal_codes and item is not None and item.nominal_code:
        return nominal_choice(portal, chart, item.nominal_code, used_by)
    group = _by_group(settings.income_accounts, item)
    if group is not None:
        return _named(portal, chart, group, "qbo.income_accounts for its item group", used_by)
    if item is not None and item.template_income_account:
        return _named(portal, chart, item.template_income_account, "its product template", used_by)
    return _named(portal, chart, settings.income_account, "qbo.income_account", used_by)


def expense_account(
    portal: PortalSettings,
    chart: Chart,
    item: ItemInfo | None,
    line_code: str | None,
    *,
    used_by: str,
) -> Choice:
    """The expense account of a purchase-order or bill line (the order above)."""
    settings = _qbo(portal)
    code = line_code or (item.purchase_nominal_code if item is not None else None)
    if settings.use_nominal_codes and code:
        return nominal_choice(portal, chart, code, used_by)
    group = _by_group(settings.expense_accounts, item)
    if group is not None:
        return _named(portal, chart, group, "qbo.expense_accounts for its item group", used_by)
    return _named(portal, chart, settings.expense_account, "qbo.expense_account", used_by)


# --- the codes in use (`datagate accounts`) ----------------------------------------------


@dataclass
class CodeInUse:
    """One nominal code, what uses it, and the QBO account it maps to."""

    code: str
    kinds: set[str] = field(default_factory=set)  # income, expense
    used_by: dict[str, int] = field(default_factory=dict)  # "items": 3, "PO lines": 12 …
    account: dict[str, Any] | None = None
    source: str = ""
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "kinds": sorted(self.kinds),
            "used_by": dict(sorted(self.used_by.items())),
            "account": None
            if self.account is None
            else {
                "id": str(self.account["Id"]),
                "name": self.account.get("Name"),
                "number": self.account.get("AcctNum"),
                "type": self.account.get("AccountType"),
            },
            "mapped_by": self.source if self.account is not None else None,
            "problem": self.problem,
        }


def codes_in_use(connection: Connection, portal_id: str) -> dict[str, CodeInUse]:
    """Every nominal code the portal's live HaloPSA records use, by code."""
    found: dict[str, CodeInUse] = {}

    def add(code: str | None, kind: str, what: str, count: int) -> None:
        if not code:
            return
        entry = found.setdefault(code, CodeInUse(code))
        entry.kinds.add(kind)
        entry.used_by[what] = entry.used_by.get(what, 0) + count

    live_items = (items.c.portal_id == portal_id) & items.c.deleted_at.is_(None)
    live_groups = (item_groups.c.portal_id == portal_id) & item_groups.c.deleted_at.is_(None)
    lines = halo_purchase_order_lines.c
    for column, table, where, kind, what in (
        (items.c.nominal_code, items, live_items, INCOME, "items"),
        (items.c.purchase_nominal_code, items, live_items, EXPENSE, "items"),
        (item_groups.c.nominal_code, item_groups, live_groups, INCOME, "item groups"),
        (item_groups.c.purchase_nominal_code, item_groups, live_groups, EXPENSE, "item groups"),
        (
            lines.nominal_code,
            halo_purchase_order_lines,
            (lines.portal_id == portal_id) & lines.deleted_at.is_(None),
            EXPENSE,
            "purchase order lines",
        ),
    ):
        for code, count in connection.execute(
            select(column, func.count()).select_from(table).where(where).group_by(column)
        ):
            add(code, kind, what, count)
    return found


def map_codes(
    portal: PortalSettings, chart: Chart, codes: Mapping[str, CodeInUse]
) -> list[CodeInUse]:
    """Each code with its account (or its problem), in code order."""
    out = []
    for code in sorted(codes):
        entry = codes[code]
        used_by = ", ".join(f"{n} {what}" for what, n in sorted(entry.used_by.items()))
        choice = nominal_choice(portal, chart, code, used_by)
        entry.account, entry.source, entry.problem = choice.account, choice.source, choice.problem
        out.append(entry)
    return out
