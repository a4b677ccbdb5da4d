"""Payments read back from QBO: real payment records, by change data capture since the
portal's stored cursor (docs/qbo-api.md §3.7, §6.1, §B4, §B6, §B7).

A payment is recorded where QBO keeps it: each QBO Payment line that links an invoice
(`LinkedTxn`, TxnType `Invoice`) is one application — amount, date, method, reference — to
that invoice; a $0 Payment that links a CreditMemo as well applies a credit. Our invoice is
found through the QBO id its export recorded; an application to an invoice we never exported
is kept too (`invoice_id` empty), so nothing read is lost.

One refresh of a portal:
1. decide how to read. Normally CDC since the cursor (Invoice, Payment, CreditMemo; one call
   when nothing changed; `qbo.cdc` pages a full answer). With no cursor yet, another realm,
   or a cursor beyond CDC's 30 days, read our open invoices instead — by Id, `READ_CHUNK` a
   query — and the payments they link;
2. turn the payments read into application versions; an application is removed when its
   payment is deleted or voided, or no longer links the invoice;
3. give each invoice touched its status from its QBO record: `paid`, `partly_paid`,
   `unpaid`, `credited` (nothing owed, and credit memos alone settled it) or `voided`; an
   invoice deleted in QBO keeps its last status and is reported;
4. store everything new and the next cursor in one transaction. A killed refresh leaves the
   old cursor; reading the same versions again stores nothing (payment_records.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from datagate_pipelines.billing.money import round_half_away
from datagate_pipelines.config import PortalSettings
from datagate_pipelines.exporting.database import Database, transaction
from datagate_pipelines.exporting.payment_records import (
    APPLIED,
    CREDIT,
    PAYMENT,
    REMOVED,
    Application,
    OurInvoice,
    current_applications,
    latest_states,
    load_cursor,
    our_qbo_invoices,
    record_applications,
    record_invoice_state,
    save_cursor,
)
from datagate_pipelines.qbo.cdc import Changes, CursorTooOldError, parse_time, read_changes, too_old
from datagate_pipelines.qbo.client import QBOClient

logger = logging.getLogger(__name__)

ENTITIES = ("Invoice", "Payment", "CreditMemo")
UNPAID, PARTLY_PAID, PAID, CREDITED, VOIDED = "unpaid", "partly_paid", "paid", "credited", "voided"
STATUSES = (UNPAID, PARTLY_PAID, PAID, CREDITED, VOIDED)
SETTLED = frozenset({PAID, CREDITED, VOIDED})
CDC, CDC_QUERY, OPEN_INVOICES = "cdc", "cdc+query", "open_invoices"
#: Ids per `Id IN (…)` query: keeps the GET URL short.
READ_CHUNK = 100
#: Each refresh reads again from a little before the last one began, so a change QBO
#: committed while that one was reading is not missed; versions read twice store nothing.
OVERLAP = timedelta(minutes=5)
ZERO = Decimal("0.00")


def payment_status(
    total: Decimal, balance: Decimal, *, voided: bool = False, credited: bool = False
) -> str:
    """voided; nothing owed: credited when credit memos alone settled it, else paid; some
    of it paid: partly_paid; else unpaid."""
    if voided:
        return VOIDED
    if balance <= 0:
        return CREDITED if credited else PAID
    return PARTLY_PAID if balance < total else UNPAID


@dataclass
class PaymentRefresh:
    """What one refresh read and recorded (for logs, metadata and tests)."""

    mode: str = CDC
    reason: str | None = None
    api_calls: int = 0
    changed_objects: int = 0
    recorded: int = 0
    applied: int = 0
    removed: int = 0
    unmatched: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    deleted_in_qbo: list[str] = field(default_factory=list)
    cursor: datetime | None = None

    def counts(self) -> dict[str, int]:
        return {
            "changed_objects": self.changed_objects,
            "applications_recorded": self.recorded,
            "applied": self.applied,
            "removed": self.removed,
            "unmatched": len(self.unmatched),
            "invoices_changed": len(self.changed),
            "deleted_in_qbo": len(self.deleted_in_qbo),
            **{status: self.statuses.get(status, 0) for status in STATUSES},
        }


@dataclass
class _Read:
    """What was read from QBO, whichever way."""

    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted_payments: set[str] = field(default_factory=set)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted_invoices: set[str] = field(default_factory=set)
    credit_memos: dict[str, dict[str, Any]] = field(default_factory=dict)
    server_time: datetime | None = None

    @classmethod
    def of(cls, changes: Changes) -> _Read:
        return cls(
            payments=dict(changes.of("Payment")),
            deleted_payments=set(changes.deleted.get("Payment", set())),
            invoices=dict(changes.of("Invoice")),
            deleted_invoices=set(changes.deleted.get("Invoice", set())),
            credit_memos=dict(changes.of("CreditMemo")),
            server_time=changes.server_time,
        )


def refresh_payments(
    db: Database,
    client: QBOClient,
    portal: PortalSettings,
    *,
    run_id: str | None = None,
    now: datetime | None = None,
) -> PaymentRefresh:
    """Read the portal's QBO changes since its cursor and record them (steps above)."""
    assert portal.qbo is not None, "refresh_payments needs a portal with a qbo section"
    now = now or datetime.now(UTC)
    calls_before = client.stats.calls
    outcome = PaymentRefresh()
    with transaction(db) as connection:
        cursor = load_cursor(connection, portal.id)
        ours = our_qbo_invoices(connection, portal.id)
        states = latest_states(connection, (o.id for o in ours.values()))
    gone = {
        invoice_id for invoice_id, (_, _, qbo_state) in states.items() if qbo_state == "deleted"
    }
    reason = None
    if cursor is None:
        reason = "first refresh"
    elif cursor.realm_id != portal.qbo.realm_id:
        reason = f"realm changed from {cursor.realm_id}"
    elif too_old(
        cursor.changed_since, cursor.changed_since + OVERLAP + (now - cursor.refreshed_at)
    ):
        reason = f"cursor {cursor.changed_since:%Y-%m-%d} is older than CDC's 30 days"
    read: _Read
    if reason is None:
        assert cursor is not None
        try:
            changes = read_changes(client, ENTITIES, cursor.changed_since)
            read, outcome.mode = _Read.of(changes), (CDC_QUERY if changes.capped else CDC)
            outcome.changed_objects = changes.count
        except CursorTooOldError as exc:
            reason = str(exc)
    if reason is not None:
        outcome.mode, outcome.reason = OPEN_INVOICES, reason
        open_ids = [
            qbo_id
            for qbo_id, invoice in ours.items()
            if invoice.payment_status not in SETTLED and invoice.id not in gone
        ]
        read = _read_open_invoices(client, open_ids)
        outcome.changed_objects = len(read.invoices) + len(read.payments)
        logger.info(
            "qbo portal %s: payments read from %d open invoice(s) (%s)",
            portal.id,
            len(open_ids),
            reason,
        )
    _record(db, client, portal, ours, read, outcome, run_id=run_id, now=now, calls=calls_before)
    return outcome


def _read_open_invoices(client: QBOClient, qbo_ids: list[str]) -> _Read:
    """Our open invoices by Id, and the payments they link; those not found are deleted."""
    read = _Read()
    for chunk in _chunks(qbo_ids):
        read.invoices.update({str(r["Id"]): r for r in client.select("Invoice", Id=chunk)})
        # QBO's clock when the reading began: the next refresh starts from there.
        read.server_time = read.server_time or parse_time(client.last_answer_time)
    read.deleted_invoices = set(qbo_ids) - set(read.invoices)
    linked = {pid for record in read.invoices.values() for pid in _linked_payments(record)}
    read.payments = {str(p["Id"]): p for p in _by_id(client, "Payment", linked)}
    return read


def _chunks(ids: Iterable[str]) -> list[list[str]]:
    """Ids in numeric order, `READ_CHUNK` to a query."""
    ordered = sorted(set(ids), key=lambda i: (len(i), i))
    return [ordered[start : start + READ_CHUNK] for start in range(0, len(ordered), READ_CHUNK)]


def _by_id(client: QBOClient, entity: str, ids: Iterable[str]) -> list[dict[str, Any]]:
    return [row for chunk in _chunks(ids) for row in client.select(entity, Id=chunk)]


def _linked_payments(invoice: dict[str, Any]) -> set[str]:
    return {
        str(link["TxnId"])
        for link in invoice.get("LinkedTxn") or []
        if link.get("TxnType") == "Payment" and link.get("TxnId") is not None
    }


def qbo_amount(value: Any) -> Decimal:
    """An amount as QBO's JSON gives it (a number, or none: 0), exact to the cent."""
    return round_half_away(Decimal(str(value if value is not None else "0")))


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def applications_of(
    payment: dict[str, Any], credit_memos: dict[str, dict[str, Any]]
) -> dict[str, Application]:
    """The applications one Payment makes, by QBO invoice Id (docs/qbo-api.md §3.7, §B4).

    A Payment of $0 that links credit memos applies credit (kind `credit`); any other
    applies money. A line of amount 0 (a voided payment's) is a removed application.
    """
    lines = payment.get("Line") or []
    credits = [
        str(link["TxnId"])
        for line in lines
        for link in line.get("LinkedTxn") or []
        if link.get("TxnType") == "CreditMemo"
    ]
    kind = CREDIT if credits and qbo_amount(payment.get("TotalAmt")) == 0 else PAYMENT
    if kind == CREDIT:
        method = "credit memo"
        numbers = [str(credit_memos.get(c, {}).get("DocNumber") or c) for c in credits]
        reference: str | None = f"credit memo {', '.join(numbers)}"
    else:
        ref = payment.get("PaymentMethodRef") or {}
        method = ref.get("name") or ref.get("value")
        reference = payment.get("PaymentRefNum")
    amounts: dict[str, Decimal] = {}
    for line in lines:
        for link in line.get("LinkedTxn") or []:
            if link.get("TxnType") == "Invoice" and link.get("TxnId") is not None:
                invoice_id = str(link["TxnId"])
                amounts[invoice_id] = amounts.get(invoice_id, ZERO) + qbo_amount(line.get("Amount"))
    version = str(payment.get("SyncToken", ""))
    updated = parse_time((payment.get("MetaData") or {}).get("LastUpdatedTime"))
    # QBO dates every payment (TxnDate defaults to the day it was entered, §3.7).
    paid_on = _date(payment.get("TxnDate")) or (updated.date() if updated else None)
    return {
        invoice_id: Application(
            qbo_payment_id=str(payment["Id"]),
            qbo_invoice_id=invoice_id,
            kind=kind,
            state=APPLIED if amount > 0 else REMOVED,
            amount=amount,
            payment_date=paid_on,
            method=None if method is None else str(method)[:100],
            reference=None if reference is None else str(reference)[:200],
            qbo_version=version,
            qbo_updated_at=updated,
        )
        for invoice_id, amount in amounts.items()
    }


def _removed(application: Application, version: str, when: datetime | None) -> Application:
    return Application(
        application.qbo_payment_id,
        application.qbo_invoice_id,
        application.kind,
        REMOVED,
        ZERO,
        application.payment_date,
        application.method,
        application.reference,
        version,
        when,
    )


def _record(
    db: Database,
    client: QBOClient,
    portal: PortalSettings,
    ours: dict[str, OurInvoice],
    read: _Read,
    outcome: PaymentRefresh,
    *,
    run_id: str | None,
    now: datetime,
    calls: int,
) -> None:
    """Steps 2–4: applications, statuses, the cursor; one transaction."""
    assert portal.qbo is not None
    ours_read = set(read.invoices) & set(ours)
    with transaction(db) as connection:
        current = current_applications(
            connection,
            portal.id,
            payment_ids=[*read.payments, *read.deleted_payments],
            qbo_invoice_ids=[*ours_read, *(read.deleted_invoices & set(ours))],
        )
    # Payments our changed invoices link that were neither read nor recorded: read them.
    missing = {
        pid
        for qbo_id in ours_read
        for pid in _linked_payments(read.invoices[qbo_id])
        if pid not in read.payments and (pid, qbo_id) not in current
    }
    if missing:
        read.payments.update({str(p["Id"]): p for p in _by_id(client, "Payment", missing)})
        with transaction(db) as connection:
            current.update(current_applications(connection, portal.id, payment_ids=missing))
    new = [
        application
        for key, application in _observe(read, current, set(ours)).items()
        if not application.same_as(current.get(key))
    ]
    latest = {**current, **{a.key: a for a in new}}
    touched = (set(read.invoices) | read.deleted_invoices | {a.qbo_invoice_id for a in new}) & set(
        ours
    )
    unread = touched - set(read.invoices) - read.deleted_invoices
    if unread:
        found = {str(r["Id"]): r for r in _by_id(client, "Invoice", unread)}
        read.invoices.update(found)
        read.deleted_invoices |= unread - set(found)

    outcome.recorded = len(new)
    outcome.applied = sum(1 for a in new if a.state == APPLIED)
    outcome.removed = sum(1 for a in new if a.state == REMOVED)
    outcome.unmatched = sorted(
        {
            f"QBO payment {a.qbo_payment_id} on QBO invoice {a.qbo_invoice_id}"
            for a in new
            if a.qbo_invoice_id not in ours and a.state == APPLIED
        }
    )
    outcome.api_calls = client.stats.calls - calls
    outcome.cursor = (read.server_time or parse_time(client.last_answer_time) or now) - OVERLAP
    applied_by_invoice: dict[str, list[Application]] = {}
    for application in latest.values():
        if application.state == APPLIED:
            applied_by_invoice.setdefault(application.qbo_invoice_id, []).append(application)
    with transaction(db) as connection:
        record_applications(
            connection,
            portal.id,
            new,
            {qbo_id: invoice.id for qbo_id, invoice in ours.items()},
            recorded_at=now,
            run_id=run_id,
        )
        previous = latest_states(connection, (ours[q].id for q in touched))
        for qbo_id in sorted(touched, key=lambda q: ours[q].invoice_key):
            invoice = ours[qbo_id]
            state = _state(invoice, read.invoices.get(qbo_id), applied_by_invoice.get(qbo_id, []))
            outcome.statuses[state.status] = outcome.statuses.get(state.status, 0) + 1
            before = previous.get(invoice.id) or (invoice.payment_status, invoice.balance, "open")
            if (state.status, state.balance, state.qbo_state) == before:
                continue
            if (state.status, state.balance) != before[:2]:
                outcome.changed.append(invoice.invoice_key)
            if state.qbo_state == "deleted":
                outcome.deleted_in_qbo.append(invoice.invoice_key)
            record_invoice_state(
                connection,
                portal.id,
                invoice,
                payment_status=state.status,
                balance=state.balance,
                qbo_total=state.qbo_total,
                qbo_state=state.qbo_state,
                qbo_version=state.version,
                qbo_updated_at=state.updated,
                recorded_at=now,
                run_id=run_id,
            )
        save_cursor(
            connection,
            portal.id,
            realm_id=portal.qbo.realm_id,
            changed_since=outcome.cursor,
            refreshed_at=now,
            mode=outcome.mode,
            api_calls=outcome.api_calls,
            changed_objects=outcome.changed_objects,
            run_id=run_id,
        )
    for key in outcome.deleted_in_qbo[:10]:
        logger.warning(
            "qbo portal %s: the QBO invoice of %s is gone from QBO (deleted there); it keeps "
            "its last payment status",
            portal.id,
            key,
        )


def _observe(
    read: _Read, current: dict[tuple[str, str], Application], ours: set[str]
) -> dict[tuple[str, str], Application]:
    """The application versions what was read shows: the payments' own, and the removals —
    an application its payment no longer makes, or whose payment was deleted, or that our
    invoice no longer links, or whose invoice was deleted."""
    by_payment: dict[str, list[Application]] = {}
    by_invoice: dict[str, list[Application]] = {}
    for application in current.values():
        if application.state == APPLIED:
            by_payment.setdefault(application.qbo_payment_id, []).append(application)
            by_invoice.setdefault(application.qbo_invoice_id, []).append(application)
    observed: dict[tuple[str, str], Application] = {}
    for payment_id, payment in read.payments.items():
        made = applications_of(payment, read.credit_memos)
        observed.update({a.key: a for a in made.values()})
        updated = parse_time((payment.get("MetaData") or {}).get("LastUpdatedTime"))
        for known in by_payment.get(payment_id, []):
            if known.qbo_invoice_id not in made:
                observed[known.key] = _removed(known, str(payment.get("SyncToken", "")), updated)
    for payment_id in read.deleted_payments:
        for known in by_payment.get(payment_id, []):
            observed[known.key] = _removed(known, "deleted", None)
    for qbo_id, record in read.invoices.items():
        if qbo_id not in ours:
            continue
        linked = _linked_payments(record)
        for known in by_invoice.get(qbo_id, []):
            if known.qbo_payment_id not in linked and known.qbo_payment_id not in read.payments:
                version = f"unlinked:invoice:{record.get('SyncToken', '')}"
                observed[known.key] = _removed(known, version, None)
    for qbo_id in read.deleted_invoices & ours:
        for known in by_invoice.get(qbo_id, []):
            observed[known.key] = _removed(known, "invoice-deleted", None)
    return observed


@dataclass(frozen=True)
class _State:
    status: str
    balance: Decimal | None
    qbo_state: str
    qbo_total: Decimal | None
    version: str
    updated: datetime | None


def _state(
    invoice: OurInvoice, record: dict[str, Any] | None, applied: list[Application]
) -> _State:
    """An invoice's payment state from its QBO record (None: deleted in QBO)."""
    if record is None:
        # Gone from QBO: it keeps the status and balance last read, marked deleted.
        return _State(
            invoice.payment_status or UNPAID, invoice.balance, "deleted", None, "deleted", None
        )
    total, balance = qbo_amount(record.get("TotalAmt")), qbo_amount(record.get("Balance"))
    voided = total == 0 and (invoice.total != 0 or "Voided" in (record.get("PrivateNote") or ""))
    credited = bool(applied) and all(a.kind == CREDIT for a in applied)
    status = payment_status(total, balance, voided=voided, credited=credited)
    return _State(
        status,
        balance,
        VOIDED if voided else "open",
        total,
        # The status is part of the version: the same invoice version can read differently
        # when only its payments changed (paid by credit, then by money).
        f"{record.get('SyncToken', '')}/{status}",
        parse_time((record.get("MetaData") or {}).get("LastUpdatedTime")),
    )
