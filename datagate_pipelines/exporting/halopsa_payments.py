"""QBO payments recorded on the HaloPSA invoices we exported, each exactly once
(docs/halopsa-api.md §A5; what Halo has not confirmed is decided in halopsa/payments.py).

Every current payment application (payment_records.py) to an invoice of ours that HaloPSA
has becomes one HaloPSA InvoicePayment: its amount, date, method and our reference, so that
HaloPSA shows the invoice paid or part paid. Credit memos applied in QBO are recorded the
same way, with the portal's credit method. `halo_payment_exports` keeps one row per
application and version:

    pending ──> exported (halo_payment_id)
       └──> failed (last_error, attempts) ──> exported on a later run
    exported ──> removed (its HaloPSA payment deleted: the amount, date or method changed
                 in QBO, or the payment went) ──> the next version, pending

The row is committed, pending with its reference, before the create; every create is
preceded by a lookup of the invoice's HaloPSA payments for that reference, so a run killed
between the create and the record finds the payment the next time instead of recording it
twice. A refusal (HaloPSA answered 4xx) is recorded with HaloPSA's message and tried again
on the next run; when HaloPSA does not answer, what was recorded stays and the error goes to
the asset's retry policy. Applications to invoices not (yet) in HaloPSA, or voided there, wait.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from datagate_pipelines import DatagateError
from datagate_pipelines.apiclient.errors import BadRequestError, NotFoundError
from datagate_pipelines.config import PortalSettings
from datagate_pipelines.exporting.database import Database, transaction
from datagate_pipelines.exporting.ledger import HALOPSA
from datagate_pipelines.exporting.payment_records import APPLIED, CREDIT
from datagate_pipelines.halopsa.client import HaloPSAClient
from datagate_pipelines.halopsa.payments import (
    HaloPayment,
    payment_body,
    reference_for,
    reference_of,
)
from datagate_pipelines.warehouse.models import (
    exports,
    halo_payment_exports,
    invoices,
    payment_applications,
)

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 2000
ZERO = Decimal("0.00")


class HaloPSAPaymentError(DatagateError):
    """HaloPSA accepted a payment but did not keep our reference: lookups before creates
    would miss it, so no more payments are written for the portal until this is looked at."""


@dataclass(frozen=True)
class _Wanted:
    """What HaloPSA should hold for one application now (amount 0: nothing)."""

    key: tuple[str, str]
    invoice_id: int
    doc_number: str | None
    halo_invoice_id: int | None
    halo_status: str | None
    amount: Decimal
    payment_date: date | None
    method: int

    @property
    def label(self) -> str:
        return f"QBO payment {self.key[0]} on {self.doc_number or self.key[1]}"


@dataclass(frozen=True)
class _Row:
    id: int
    version: int
    amount: Decimal
    payment_date: date
    method: int
    reference: str
    status: str
    halo_payment_id: int | None
    attempts: int


@dataclass
class WriteBackOutcome:
    """What one write-back did, by application (for logs, metadata and tests)."""

    created: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)
    already: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "recorded": len(self.created),
            "found_in_halopsa": len(self.found),
            "already_recorded": self.already,
            "removed": len(self.removed),
            "failed": len(self.failed),
            "waiting": len(self.waiting),
        }


def write_back_payments(
    db: Database, client: HaloPSAClient, portal: PortalSettings, *, now: datetime | None = None
) -> WriteBackOutcome:
    """Make HaloPSA hold exactly the portal's current payment applications (see above)."""
    now = now or datetime.now(UTC)
    outcome = WriteBackOutcome()
    with transaction(db) as connection:
        wanted = _wanted(connection, portal)
        recorded = _recorded(connection, portal.id)
    halo = _HaloInvoices(client)
    for key, want in sorted(wanted.items()):
        row = recorded.get(key)
        if want.amount > 0 and (want.halo_invoice_id is None or want.halo_status != "exported"):
            outcome.waiting[want.label] = (
                "its invoice is voided in HaloPSA"
                if want.halo_status == "voided"
                else "its invoice is not in HaloPSA yet"
            )
            continue
        same = row is not None and (row.amount, row.payment_date, row.method) == (
            want.amount,
            want.payment_date,
            want.method,
        )
        if row is not None and row.status == "exported" and same:
            outcome.already += 1
            continue
        if row is not None and row.status != "removed" and not same:
            if not _retire(db, halo, want, row, outcome, now):
                continue  # its old payment may still be in HaloPSA: never add a second
            row = replace(row, status="removed")
        if want.amount <= 0:
            continue
        if row is None or row.status == "removed":
            row = _open(db, portal.id, want, 1 if row is None else row.version + 1, now)
        _send(db, halo, want, row, outcome, now)
    for label, reason in list(outcome.failed.items())[:10]:
        logger.warning("halopsa portal %s: %s not recorded: %s", portal.id, label, reason)
    return outcome


class _HaloInvoices:
    """Each HaloPSA invoice's payments, listed once per run and kept up to date here."""

    def __init__(self, client: HaloPSAClient) -> None:
        self.client = client
        self._payments: dict[int, list[dict[str, Any]]] = {}

    def payments(self, halo_invoice_id: int) -> list[dict[str, Any]]:
        if halo_invoice_id not in self._payments:
            self._payments[halo_invoice_id] = list(self.client.invoice_payments(halo_invoice_id))
        return self._payments[halo_invoice_id]

    def find(self, halo_invoice_id: int, reference: str) -> dict[str, Any] | None:
        for record in self.payments(halo_invoice_id):
            if reference_of(record) == reference:
                return record
        return None

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self.client.create_invoice_payment(body)
        self.payments(body["invoice_id"]).append(record)
        return record

    def delete(self, halo_invoice_id: int, payment_id: int) -> None:
        self.client.delete_invoice_payment(payment_id)
        self._payments[halo_invoice_id] = [
            r for r in self.payments(halo_invoice_id) if r.get("id") != payment_id
        ]


def _wanted(connection: Connection, portal: PortalSettings) -> dict[tuple[str, str], _Wanted]:
    """The current application of every payment to an invoice of ours, with its invoice's
    HaloPSA export."""
    t = payment_applications.c
    # The latest version of each application only: the history stays out of the way.
    latest_ids = (
        select(func.max(t.id))
        .where(t.portal_id == portal.id, t.invoice_id.is_not(None))
        .group_by(t.qbo_payment_id, t.qbo_invoice_id)
    )
    rows = connection.execute(
        select(
            t.id,
            t.qbo_payment_id,
            t.qbo_invoice_id,
            t.invoice_id,
            t.kind,
            t.state,
            t.amount,
            t.payment_date,
            t.method,
            invoices.c.doc_number,
            exports.c.external_id,
            exports.c.status,
        )
        .join(invoices, invoices.c.id == t.invoice_id)
        .join(
            exports,
            and_(exports.c.invoice_id == t.invoice_id, exports.c.target == HALOPSA),
            isouter=True,
        )
        .where(t.id.in_(latest_ids))
        .order_by(t.id)
    ).all()
    settings = portal.payments
    latest: dict[tuple[str, str], _Wanted] = {}
    for row in rows:
        if row.kind == CREDIT:
            method = settings.halopsa_credit_method
        else:
            method = settings.halopsa_methods.get(row.method or "", settings.halopsa_method)
        latest[(row.qbo_payment_id, row.qbo_invoice_id)] = _Wanted(
            key=(row.qbo_payment_id, row.qbo_invoice_id),
            invoice_id=row.invoice_id,
            doc_number=row.doc_number,
            halo_invoice_id=int(row.external_id) if row.external_id else None,
            halo_status=row.status,
            amount=row.amount if row.state == APPLIED else ZERO,
            payment_date=row.payment_date,
            method=method,
        )
    return latest


def _recorded(connection: Connection, portal_id: str) -> dict[tuple[str, str], _Row]:
    """The latest version of every application's HaloPSA record."""
    t = halo_payment_exports.c
    latest_ids = (
        select(func.max(t.id))
        .where(t.portal_id == portal_id)
        .group_by(t.qbo_payment_id, t.qbo_invoice_id)
    )
    latest: dict[tuple[str, str], _Row] = {}
    for row in connection.execute(select(halo_payment_exports).where(t.id.in_(latest_ids))):
        latest[(row.qbo_payment_id, row.qbo_invoice_id)] = _Row(
            row.id,
            row.version,
            row.amount,
            row.payment_date,
            row.method,
            row.reference,
            row.status,
            row.halo_payment_id,
            row.attempts,
        )
    return latest


def _open(db: Database, portal_id: str, want: _Wanted, version: int, now: datetime) -> _Row:
    """A pending row for a new version, committed before anything is sent."""
    assert want.halo_invoice_id is not None and want.payment_date is not None
    reference = reference_for(want.key[0], want.key[1], version)
    with transaction(db) as connection:
        row_id = connection.execute(
            insert(halo_payment_exports).values(
                portal_id=portal_id,
                qbo_payment_id=want.key[0],
                qbo_invoice_id=want.key[1],
                version=version,
                invoice_id=want.invoice_id,
                halo_invoice_id=want.halo_invoice_id,
                amount=want.amount,
                payment_date=want.payment_date,
                method=want.method,
                reference=reference,
                status="pending",
                attempts=0,
                updated_at=now,
            )
        ).inserted_primary_key[0]
    return _Row(
        row_id, version, want.amount, want.payment_date, want.method, reference, "pending", None, 0
    )


def _send(
    db: Database,
    halo: _HaloInvoices,
    want: _Wanted,
    row: _Row,
    outcome: WriteBackOutcome,
    now: datetime,
) -> None:
    """Look the payment up by our reference; create it only when HaloPSA has none."""
    assert want.halo_invoice_id is not None
    with _refusals(db, row, want, outcome, now):
        found = halo.find(want.halo_invoice_id, row.reference)
        if found is None:
            body = payment_body(
                HaloPayment(
                    want.halo_invoice_id, row.payment_date, row.amount, row.method, row.reference
                )
            )
            found = halo.create(body)
            if reference_of(found) != row.reference:
                raise HaloPSAPaymentError(
                    f"halopsa portal {halo.client.portal}: HaloPSA recorded payment "
                    f"{found.get('id')} on invoice {want.halo_invoice_id} without our reference "
                    f"{row.reference!r} in thirdpartyid (docs/halopsa-api.md §A5); payments "
                    "are not written back until this is resolved"
                )
            outcome.created.append(want.label)
        else:
            outcome.found.append(want.label)
        _update(
            db,
            row,
            status="exported",
            halo_payment_id=int(found["id"]),
            last_error=None,
            now=now,
            exported=True,
        )


def _retire(
    db: Database,
    halo: _HaloInvoices,
    want: _Wanted,
    row: _Row,
    outcome: WriteBackOutcome,
    now: datetime,
) -> bool:
    """The recorded version no longer matches QBO: delete its HaloPSA payment, if any.
    Whether that worked."""
    halo_invoice_id = want.halo_invoice_id
    with _refusals(db, row, want, outcome, now) as attempt:
        payment_id = row.halo_payment_id
        if payment_id is None and halo_invoice_id is not None:
            found = halo.find(halo_invoice_id, row.reference)
            payment_id = None if found is None else int(found["id"])
        if payment_id is not None and halo_invoice_id is not None:
            halo.delete(halo_invoice_id, payment_id)
        _update(db, row, status="removed", halo_payment_id=payment_id, last_error=None, now=now)
        outcome.removed.append(want.label)
        attempt.ok = True
    return attempt.ok


@dataclass
class _Attempt:
    ok: bool = False


@contextmanager
def _refusals(
    db: Database, row: _Row, want: _Wanted, outcome: WriteBackOutcome, now: datetime
) -> Iterator[_Attempt]:
    """HaloPSA refused (4xx): record why and go on. No answer: record it and stop."""
    attempt = _Attempt()
    try:
        yield attempt
    except (BadRequestError, NotFoundError) as error:
        _update(db, row, status="failed", last_error=str(error), now=now, attempt=True)
        outcome.failed[want.label] = error.message
    except Exception as error:
        _update(db, row, status="failed", last_error=f"no answer: {error}", now=now, attempt=True)
        raise


def _update(
    db: Database,
    row: _Row,
    *,
    status: str,
    now: datetime,
    last_error: str | None,
    halo_payment_id: int | None = None,
    exported: bool = False,
    attempt: bool = False,
) -> None:
    values: dict[str, Any] = {
        "status": status,
        "last_error": None if last_error is None else last_error[:MAX_ERROR_LENGTH],
        "updated_at": now,
    }
    if halo_payment_id is not None:
        values["halo_payment_id"] = halo_payment_id
    if exported:
        values["exported_at"] = now
    if attempt or exported:
        values["attempts"] = halo_payment_exports.c.attempts + 1
    with transaction(db) as connection:
        connection.execute(
            update(halo_payment_exports).where(halo_payment_exports.c.id == row.id).values(**values)
        )
