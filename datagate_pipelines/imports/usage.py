"""Usage import: a period's usage charges per customer (docs/billing.md, Usage).

Each import is one batch (imports/usage_batches.py). A file is refused whole when any row
is bad: a value that does not parse, a customer, site or contract the portal does not have,
a date outside the period, or a row identical to a charge already imported for the portal
and period (unless the operator says they are new charges: `allow_duplicates`). A file
whose charges are exactly those of an earlier batch is refused whatever its name. Identical
rows inside one file are separate charges: both are imported, with a warning.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Connection, insert, select

from datagate_pipelines import DatagateError
from datagate_pipelines.billing.codes import normalize_tax_code
from datagate_pipelines.billing.periods import add_months, period_label
from datagate_pipelines.imports.csv_files import RowCheck, RowProblem, read_csv
from datagate_pipelines.imports.report import ImportReport
from datagate_pipelines.imports.usage_batches import live_batch_with, lock_usage_period
from datagate_pipelines.warehouse.models import (
    contracts,
    customers,
    sites,
    usage_batches,
    usage_charges,
)

USAGE_COLUMNS = (
    "customer_id",
    "customer_name",
    "site_id",
    "description",
    "amount",
    "tax_code",
    "usage_date",
)
OPTIONAL_USAGE_COLUMNS = ("contract_id",)

# What makes two charges the same: every stored field but where it came from.
CHARGE_FIELDS = (
    "customer_id",
    "site_id",
    "contract_id",
    "description",
    "amount",
    "tax_code",
    "usage_date",
)
ChargeKey = tuple[int, int | None, int | None, str, Decimal, str | None, date]


class UsageAlreadyImportedError(DatagateError):
    """The file's charges are exactly those of a batch already imported (any file name)."""


@dataclass(frozen=True)
class UsageCharge:
    line: int
    key: ChargeKey

    @property
    def amount(self) -> Decimal:
        return self.key[4]


def content_fingerprint(keys: Iterable[ChargeKey]) -> str:
    """The same for the same charges, whatever the file's name or its rows' order
    (`customer_name` is not a charge's content: the id decides)."""
    texts = sorted("\x1f".join("" if v is None else str(v) for v in key) for key in keys)
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()


@dataclass
class _Owners:
    """The portal's customers (id → name, active), sites and contracts (id → customer)."""

    customers: dict[int, tuple[str, bool]]
    sites: dict[int, int]
    contracts: dict[int, int]

    @classmethod
    def load(cls, connection: Connection, portal_id: str) -> _Owners:
        return cls(
            {
                r.halo_client_id: (r.name, r.active)
                for r in connection.execute(
                    select(customers.c.halo_client_id, customers.c.name, customers.c.active).where(
                        customers.c.portal_id == portal_id
                    )
                )
            },
            dict(
                connection.execute(
                    select(sites.c.halo_site_id, sites.c.customer_id).where(
                        sites.c.portal_id == portal_id
                    )
                ).all()
            ),
            dict(
                connection.execute(
                    select(contracts.c.halo_id, contracts.c.client_id).where(
                        contracts.c.portal_id == portal_id, contracts.c.deleted_at.is_(None)
                    )
                ).all()
            ),
        )


def import_usage(
    connection: Connection,
    portal_id: str,
    period: date,
    source: str | Path,
    *,
    imported_by: str,
    allow_duplicates: bool = False,
    dry_run: bool = False,
) -> ImportReport:
    """customer_id,customer_name,site_id,description,amount,tax_code,usage_date[,contract_id]
    → one new batch of charges for the portal and period. Raises ImportRefused (listing every
    bad row), UsageAlreadyImportedError or UsagePeriodClosedError; nothing is written then."""
    csv_file = read_csv(source, USAGE_COLUMNS, OPTIONAL_USAGE_COLUMNS)
    lock_usage_period(connection, portal_id, period, "nothing imported")
    report = ImportReport("usage", csv_file.name, dry_run=dry_run, bad=list(csv_file.bad))
    owners = _Owners.load(connection, portal_id)
    charges = []
    for row in csv_file.rows:
        check = RowCheck(row)
        charge = _charge(check, portal_id, period, owners)
        report.bad += check.problems
        if charge is not None:
            charges.append(charge)
    fingerprint = content_fingerprint(c.key for c in charges)
    if not report.bad:
        earlier = live_batch_with(connection, portal_id, period, fingerprint)
        if earlier is not None:
            raise UsageAlreadyImportedError(
                f"{csv_file.name}: these charges were imported already as {earlier.describe()}; "
                f"nothing imported (to replace that import, remove its batch first: "
                f"datagate usage remove --portal {portal_id} --period {period_label(period)} "
                f"--batch {earlier.id})"
            )
    duplicates = _identical_to_earlier(connection, portal_id, period, charges)
    (report.warnings if allow_duplicates else report.bad).extend(
        RowProblem(p.line, p.column, p.reason + ("; imported anyway" if allow_duplicates else ""))
        for p in duplicates
    )
    report.warnings += _identical_within_file(charges)
    report.warnings.sort()
    report.refuse_if_bad(
        "; if they are new charges, import with --allow-duplicates"
        if duplicates and not allow_duplicates
        else ""
    )

    total = sum((c.amount for c in charges), start=Decimal("0.00"))
    report.counts = {"charges": len(charges)}
    batch = "as a new batch"
    if not dry_run:
        batch_id = _write(
            connection,
            portal_id,
            period,
            charges,
            source=csv_file.file_name,
            fingerprint=fingerprint,
            total=total,
            imported_by=imported_by,
        )
        batch = f"as batch {batch_id}"
        report.wrote = True
    report.detail = (
        f" (total {total}) for portal {portal_id}, period {period_label(period)}, {batch}"
    )
    return report


def _charge(check: RowCheck, portal_id: str, period: date, owners: _Owners) -> UsageCharge | None:
    customer_id = check.whole_number("customer_id")
    site_id = check.whole_number("site_id", required=False)
    contract_id = check.whole_number("contract_id", required=False)
    description = check.text("description", max_length=1000)
    amount = check.decimal("amount", 2)
    tax_code = check.text("tax_code", max_length=64, required=False)
    used_on = check.day("usage_date")
    if used_on is not None and not period <= used_on < add_months(period, 1):
        check.fail("usage_date", f"{used_on} is outside the billing period {period_label(period)}")
    if customer_id is not None:
        _check_owners(check, portal_id, owners, customer_id, site_id, contract_id)
    if not check.ok or customer_id is None or description is None or amount is None:
        return None
    assert used_on is not None  # a failed date is a problem, so check.ok was False
    key = (
        customer_id,
        site_id,
        contract_id,
        description,
        amount,
        normalize_tax_code(tax_code),
        used_on,
    )
    return UsageCharge(check.line, key)


def _check_owners(
    check: RowCheck,
    portal_id: str,
    owners: _Owners,
    customer_id: int,
    site_id: int | None,
    contract_id: int | None,
) -> None:
    """The customer is one the portal bills; the site and contract, if given, are its own."""
    customer = owners.customers.get(customer_id)
    if customer is None:
        check.fail(
            "customer_id",
            f"no customer {customer_id} in portal {portal_id} "
            "(not ticked Datagate in HaloPSA, or not synced yet)",
        )
        return
    if not customer[1]:
        check.fail(
            "customer_id",
            f"customer {customer_id} ({customer[0]}) is inactive: its usage would not be billed",
        )
    for column, record_id, known in (
        ("site_id", site_id, owners.sites),
        ("contract_id", contract_id, owners.contracts),
    ):
        if record_id is None:
            continue
        owner = known.get(record_id)
        kind = column.removesuffix("_id")
        if owner is None:
            check.fail(column, f"no {kind} {record_id} in portal {portal_id}")
        elif owner != customer_id:
            check.fail(
                column, f"{kind} {record_id} belongs to customer {owner}, not to {customer_id}"
            )


def _identical_to_earlier(
    connection: Connection, portal_id: str, period: date, charges: list[UsageCharge]
) -> list[RowProblem]:
    """Rows identical to a charge already imported for the portal and period."""
    c = usage_charges.c
    earlier: dict[ChargeKey, tuple[int, str, int | None]] = {}
    for r in connection.execute(
        select(
            *(c[name] for name in CHARGE_FIELDS),
            c.batch_id,
            usage_batches.c.source,
            c.source_line,
        )
        .join(usage_batches, usage_batches.c.id == c.batch_id)
        .where(c.portal_id == portal_id, c.period == period)
        .order_by(c.batch_id, c.source_line)
    ):
        key: ChargeKey = tuple(r[: len(CHARGE_FIELDS)])  # type: ignore[assignment]
        earlier.setdefault(key, (r.batch_id, r.source, r.source_line))
    problems = []
    for charge in charges:
        if charge.key in earlier:
            batch_id, source, line = earlier[charge.key]
            where = f"{source} line {line}" if line is not None else source
            problems.append(
                RowProblem(
                    charge.line,
                    None,
                    f"identical to a charge already imported in batch {batch_id} ({where})",
                )
            )
    return problems


def _identical_within_file(charges: list[UsageCharge]) -> list[RowProblem]:
    first: dict[ChargeKey, int] = {}
    warnings = []
    for charge in charges:
        if charge.key in first:
            warnings.append(
                RowProblem(
                    charge.line,
                    None,
                    f"identical to line {first[charge.key]}: both are imported, as two charges",
                )
            )
        else:
            first[charge.key] = charge.line
    return warnings


def _write(
    connection: Connection,
    portal_id: str,
    period: date,
    charges: list[UsageCharge],
    **batch: object,
) -> int:
    """The batch (source, fingerprint, total, imported_by), then one row per charge."""
    now = datetime.now(UTC)
    batch_id = connection.execute(
        insert(usage_batches).values(
            portal_id=portal_id, period=period, row_count=len(charges), imported_at=now, **batch
        )
    ).inserted_primary_key[0]
    connection.execute(
        insert(usage_charges),
        [
            {
                "portal_id": portal_id,
                # One charge per row of the batch, identical rows included.
                "usage_id": f"u:{batch_id:06d}:{charge.line:07d}",
                "period": period,
                "batch_id": batch_id,
                "source_line": charge.line,
                **dict(zip(CHARGE_FIELDS, charge.key, strict=True)),
                "imported_at": now,
            }
            for charge in charges
        ],
    )
    return int(batch_id)
